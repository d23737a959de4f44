import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { compactHeap } from './memory.js';

describe('compactHeap', () => {
  it('returns the pages that a burst of garbage interleaved with live objects left behind', () => {
    // One object in four survives: a plain major GC frees the rest but keeps every page they
    // shared with the survivors; the compacting one moves the survivors together.
    const keep: object[] = [];
    let junk: object[] | undefined = [];
    for (let i = 0; i < 1_000_000; i++) {
      const o = { a: `x${i}`, b: i };
      if (i % 4 === 0) keep.push(o);
      else junk.push(o);
    }
    junk = undefined;
    const r = compactHeap();
    expect(r.heapMbAfter).toBeLessThan(r.heapMbBefore - 30);
    expect(getHeapStatistics().total_heap_size / 1048576).toBeCloseTo(r.heapMbAfter, -1);
    expect(keep).toHaveLength(250_000);
    expect(junk).toBeUndefined();
  });
});
