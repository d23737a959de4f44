// Giving back the heap a burst of work left behind. V8 grows its old space for the transient
// garbage of a big job (a proxy full sync at 50,000 Services, a DNS thread's first feed) and
// keeps it: a normal major GC frees the dead objects but leaves the pages they shared with live
// ones, so a heap holding 274 MB kept 390 MB committed (and resident). One fully compacting GC
// once the job is done moves the live objects together and returns the emptied pages.
// The C heap is trimmed too (common/native/malloc-trim.c): glibc's main arena keeps the buffers
// the job freed (netlink batches, nft texts) between live chunks, ~46 MB at 50,000 Services.
// Measured by `npm run bench -- footprint` (README.md, Memory and idle CPU).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from './log.js';

let gc: (() => void) | undefined;
let trimmer: { trim(): boolean } | null | undefined;

/** The malloc-trim addon where the build made it (from the sources and from dist/common), else null. */
function mallocTrimmer(): { trim(): boolean } | null {
  if (trimmer !== undefined) return trimmer;
  const here = dirname(fileURLToPath(import.meta.url));
  const path = [join(here, '../native/malloc-trim.node'), join(here, '../dist/native/malloc-trim.node')].find((p) => existsSync(p));
  try {
    trimmer = path ? (createRequire(import.meta.url)(path) as { trim(): boolean }) : null;
  } catch {
    trimmer = null;
  }
  return trimmer;
}

/** Gives the C heap's free pages back to the kernel; false when nothing was or the addon is missing. */
export function trimMalloc(): boolean {
  return mallocTrimmer()?.trim() ?? false;
}

/** V8's `gc()` without `--expose-gc` on the command line: the flag, then a fresh context picks it up. */
function collector(): () => void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
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
  setFlagsFromString('--compact-on-every-full-gc');
  try {
    run();
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc');
  }
  const heapMbAfter = mb();
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
