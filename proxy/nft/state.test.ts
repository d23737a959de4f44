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
    // What a full sync reads: the first key, no flat pairs for a range, and number keys.
    expect(l.firstKey()).toBe(32768);
    expect(l.flat()).toBeUndefined();
    const raw: (string | number)[] = [];
    l.forEachRaw((v, k) => raw.push(k, v));
    expect(raw).toEqual([32768, '10.244.1.5', 32769, '10.244.2.6']);
  });

  it('pairs are read flat, first key first, with string keys', () => {
    const l = new ElementList();
    expect(l.firstKey()).toBeUndefined();
    l.set('b', '1');
    l.set('a', '');
    l.set('b', '2');
    expect(l.firstKey()).toBe('b');
    expect(l.flat()).toEqual(['b', '2', 'a', '']);
    const raw: (string | number)[] = [];
    l.forEachRaw((v, k) => raw.push(k, v));
    expect(raw).toEqual(['b', '2', 'a', '']);
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
