import { describe, expect, it } from 'vitest';
import { AddressKeys } from './address-keys.js';

describe('AddressKeys', () => {
  it('holds the same keys as a Map would through adds and deletes, across growth and rebuilds', () => {
    const keys = new AddressKeys();
    const ref = new Map<string, string>();
    // A fixed pseudo-random sequence: consecutive pod addresses, repeats, and some keys that are not IPv4.
    let x = 12345;
    const next = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
    const pool = [
      ...Array.from({ length: 3000 }, (_, i) => `10.244.${i >> 8}.${i & 255}`),
      'fd00::1', '10.0.0.0/8', '010.1.1.1', '0.0.0.0', '255.255.255.255', '192.168.1.1', '172.16.0.5',
    ];
    for (let step = 0; step < 40_000; step++) {
      const k = pool[next() % pool.length]!;
      // More adds than deletes early, then more deletes: the table grows, fills with deleted slots, and shrinks.
      const add = next() % 100 < (step < 20_000 ? 70 : 30);
      if (add) {
        keys.set(k, '');
        ref.set(k, '');
      } else expect(keys.delete(k)).toBe(ref.delete(k));
      if (step % 997 === 0) {
        expect(keys.size).toBe(ref.size);
        expect(new Set(keys.keys())).toEqual(new Set(ref.keys()));
      }
    }
    expect(keys.size).toBe(ref.size);
    expect(new Set(keys.keys())).toEqual(new Set(ref.keys()));
    for (const k of pool) expect(keys.get(k)).toBe(ref.get(k));
    expect([...keys].every(([, v]) => v === '')).toBe(true);
    keys.clear();
    expect(keys.size).toBe(0);
    expect([...keys.keys()]).toEqual([]);
  });

  it('counts a key added twice once, and refuses a value: it holds a plain set', () => {
    const keys = new AddressKeys();
    keys.set('10.0.0.1', '').set('10.0.0.1', '').set('fd00::1', '').set('fd00::1', '');
    expect(keys.size).toBe(2);
    expect(keys.has('10.0.0.1') && keys.has('fd00::1')).toBe(true);
    expect(keys.has('10.0.0.2')).toBe(false);
    expect(() => keys.set('10.0.0.2', 'goto x')).toThrow(/plain set/);
    expect(keys.has('10.0.0.2')).toBe(false);
  });
});
