import { describe, expect, it } from 'vitest';
import { ElementList } from './state.js';

describe('ElementList', () => {
  it('a range keeps only its values and reads like the key, value pairs it stands for', () => {
    const l = new ElementList();
    l.pushRange(32768, ['10.244.1.5', '10.244.2.6']);
    expect(l.size).toBe(2);
    expect(l.get('32769')).toBe('10.244.2.6');
    expect([l.get('32770'), l.get('32767'), l.get('032768'), l.get('32768.5'), l.get('')]).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect([...l]).toEqual([
      ['32768', '10.244.1.5'],
      ['32769', '10.244.2.6'],
    ]);
    expect([...l.keys()]).toEqual(['32768', '32769']);
    const seen: string[] = [];
    l.forEach((v, k) => seen.push(`${k}=${v}`));
    expect(seen).toEqual(['32768=10.244.1.5', '32769=10.244.2.6']);
  });

  it('a second range or a push turns the range into pairs', () => {
    const l = new ElementList();
    l.pushRange(32768, ['a']);
    l.pushRange(40960, ['b', 'c']);
    l.set('32768', 'z');
    expect([...l]).toEqual([
      ['32768', 'z'],
      ['40960', 'b'],
      ['40961', 'c'],
    ]);
    expect(l.size).toBe(3);
  });
});
