// Giving back the heap a burst of work left behind. V8 grows its old space for the transient
// garbage of a big job (a proxy full sync at 50,000 Services, a DNS thread's first feed) and
// keeps it: a normal major GC frees the dead objects but leaves the pages they shared with live
// ones, so a heap holding 274 MB kept 390 MB committed (and resident). One fully compacting GC
// once the job is done moves the live objects together and returns the emptied pages.
// The C heap is trimmed too (common/native/malloc-trim.c): glibc's main arena keeps the buffers
// the job freed (netlink batches, nft texts) between live chunks, ~46 MB at 50,000 Services.
// Measured by `npm run bench -- footprint` (README.md, Memory and idle CPU).
import { performance } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from './log.js';
import { trimMalloc } from './malloc-trim.js';

/** V8's `gc()` function; its options pick a minor or a major collection. */
export type GcFunction = (options?: { type?: 'minor' | 'major' }) => void;

let gc: GcFunction | undefined;
/** This thread's used heap right after its last compaction (bytes); 0 before the first. */
let compactedUsed = 0;
/**
 * V8's `gc()` without `--expose-gc` on the command line: the flag, then a fresh context picks it
 * up (no node flag in the image needed). Throws where the runtime refuses.
 */
export function collector(): GcFunction {
  if (!gc) {
    const exposed = (globalThis as { gc?: GcFunction }).gc;
    if (typeof exposed === 'function') gc = exposed;
    else {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as GcFunction;
    }
  }
  return gc;
}

/**
 * One major GC that evacuates every page (not only those V8 judges fragmented), in this thread's
 * heap only. It stops the thread: ~0.1 s per 100 MB live. For after a big job, not on a hot path.
 */
export function compactHeap(): { ms: number; heapMbBefore: number; heapMbAfter: number; mallocTrimmed: boolean } {
  const run = collector();
  const mb = (): number => Math.round(getHeapStatistics().total_heap_size / 104857.6) / 10;
  const heapMbBefore = mb();
  const t = performance.now();
  // Evacuated by this thread alone: V8's parallel helpers would take the second core from the DNS
  // thread while it answers (a full sync is what the DNS p99 target is measured during).
  setFlagsFromString('--compact-on-every-full-gc --no-parallel-compaction --no-parallel-pointer-update');
  try {
    run();
    // The first scavenge after a compaction costs ~30 ms at 50,000 Services (~1.5 ms later on):
    // run here, inside this planned pause, it no longer lands in the first update's sync.
    run({ type: 'minor' });
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc --parallel-compaction --parallel-pointer-update');
  }
  const heapMbAfter = mb();
  compactedUsed = getHeapStatistics().used_heap_size;
  // After the GC: it frees the external memory (Buffers) that dead objects held.
  const mallocTrimmed = trimMalloc();
  return { ms: Math.round(performance.now() - t), heapMbBefore, heapMbAfter, mallocTrimmed };
}

/** compactHeap() where a failure must cost only the memory: logged with why it ran. */
export function compactHeapLogged(log: Logger, after: string): void {
  try {
    log.info({ ...compactHeap(), after }, 'heap compacted');
  } catch (e) {
    log.warn({ err: (e as Error).message, after }, 'heap compaction failed');
  }
}

let soon: NodeJS.Timeout | undefined;

/**
 * compactHeapLogged a little later, once: after a full sync the agent first answers what queued
 * meanwhile (metrics, conntrack, health checks), and the compaction's CPU (~0.2 s at 10,000
 * Services, ~0.5 s at 50,000) does not land on the sync's tail. Calls close together make one.
 */
export function compactHeapSoon(log: Logger, after: string, delayMs: number): void {
  clearTimeout(soon);
  soon = setTimeout(() => {
    soon = undefined;
    compactHeapLogged(log, after);
  }, delayMs).unref();
}

/**
 * During a relist: a plain major GC when the used heap has grown by `factor` since the last
 * compaction. A relist's pages are garbage that outlives the small young generation; left to V8,
 * the old space grows by up to its growing factor (~+65 MB at 10,000 Services) before it collects,
 * and a compacted heap has no slack left to absorb that. Collecting here keeps the relist's peak
 * near the steady size. Returns whether it collected.
 */
export function collectIfGrown(factor = 1.15): boolean {
  if (compactedUsed === 0 || getHeapStatistics().used_heap_size < compactedUsed * factor) return false;
  collector()();
  return true;
}
