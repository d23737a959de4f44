import { describe, expect, it } from 'vitest';
import { Backoff } from './backoff.js';

describe('backoff', () => {
  it('doubles from min to max within the upper half of each window, and resets', () => {
    const top = new Backoff({ minMs: 200, maxMs: 30_000, random: () => 1 });
    expect(Array.from({ length: 10 }, () => top.next())).toEqual([200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
    const bottom = new Backoff({ minMs: 200, maxMs: 30_000, random: () => 0 });
    expect([bottom.next(), bottom.next(), bottom.next()]).toEqual([100, 200, 400]);
    top.reset();
    expect(top.next()).toBe(200);
  });
});
