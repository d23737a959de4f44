import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { projectRoot } from './self.js';
import type { Logger } from './log.js';
import { collectIfGrown, compactHeap, compactHeapSoon } from './memory.js';

const addon = join(projectRoot, 'dist', 'native', 'malloc-trim.node');

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

  it('ends with a scavenge, so the first one after the compaction is not left to the next job', async () => {
    const kinds: number[] = [];
    const obs = new PerformanceObserver((list) => kinds.push(...list.getEntries().map((e) => (e as unknown as { detail: { kind: number } }).detail.kind)));
    obs.observe({ entryTypes: ['gc'] });
    compactHeap();
    // The entries are delivered asynchronously.
    await new Promise((r) => setTimeout(r, 50));
    obs.disconnect();
    expect(kinds).toContain(constants.NODE_PERFORMANCE_GC_MAJOR);
    expect(kinds.at(-1)).toBe(constants.NODE_PERFORMANCE_GC_MINOR);
  });

  // Needs `npm run build` (scripts/build-native.sh) like the other addons' suites.
  it.skipIf(!existsSync(addon))('trims the C heap the collected Buffers left behind', () => {
    // Buffers under glibc's mmap threshold come from the main arena; one in ten stays, so the
    // freed ones lie between live chunks where only malloc_trim returns them.
    const kept: Buffer[] = [];
    let dropped: Buffer[] | undefined = [];
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.allocUnsafeSlow(60 * 1024).fill(1);
      if (i % 10 === 0) kept.push(b);
      else dropped.push(b);
    }
    dropped = undefined;
    expect(compactHeap().mallocTrimmed).toBe(true);
    expect(kept.every((b) => b[0] === 1)).toBe(true);
    expect(dropped).toBeUndefined();
  });

  it('compactHeapSoon compacts once, after the last of calls close together', async () => {
    const logged: { after: string; ms: number }[] = [];
    const log = { info: (o: { after: string; ms: number }) => logged.push(o), warn: () => undefined } as unknown as Logger;
    compactHeapSoon(log, 'first', 400);
    await new Promise((r) => setTimeout(r, 50));
    compactHeapSoon(log, 'second', 400);
    await new Promise((r) => setTimeout(r, 100));
    expect(logged).toEqual([]);
    await new Promise((r) => setTimeout(r, 700));
    expect(logged.map((l) => l.after)).toEqual(['second']);
    expect(logged[0]!.ms).toBeGreaterThanOrEqual(0);
  });

  it('collectIfGrown collects once the used heap outgrew the last compaction by the factor', () => {
    compactHeap();
    expect(collectIfGrown(1.5)).toBe(false);
    const base = getHeapStatistics().used_heap_size;
    let junk: object[] | undefined = [];
    while (getHeapStatistics().used_heap_size < base * 1.6) for (let i = 0; i < 10_000; i++) junk.push({ i, s: `x${i}` });
    junk = undefined;
    expect(collectIfGrown(1.5)).toBe(true);
    expect(getHeapStatistics().used_heap_size).toBeLessThan(base * 1.5);
    expect(collectIfGrown(1.5)).toBe(false);
    expect(junk).toBeUndefined();
  });
});
