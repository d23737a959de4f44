// Hands the free memory inside glibc's malloc arenas back to the kernel while the agent is quiet.
// glibc keeps what a thread freed in that thread's arena for its next malloc: after the start,
// V8's compiler threads, the DNS thread and libuv's pool leave ~10 MB of free arena memory resident
// in an idle agent (issue 16: 9 MB of a 100 MB node in a 2-node sandbox). malloc_trim(0) returns it
// (common/native/malloc-trim.c). Only when the main thread was nearly idle over the last interval (a
// trim takes each arena's lock in turn, and right after a sync the memory would be wanted again),
// and once per quiet spell, after a busy interval: never amid a stream of small updates (at 50,000
// Services a periodic trim among partial syncs measured 28 ms against 18 ms for the slowest of 30).
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { Logger } from './log.js';
import { loadNativeAddon } from './native-addon.js';

export interface MallocTrim {
  /** malloc_trim(0): whether any memory went back to the kernel. */
  trim(): boolean;
}

let addon: MallocTrim | null | undefined;

/** The malloc-trim addon from dist/native (seen from dist/common and from the sources), or undefined. */
export function mallocTrimmer(): MallocTrim | undefined {
  if (addon === undefined) addon = loadNativeAddon<MallocTrim>('malloc-trim') ?? null;
  return addon ?? undefined;
}

/** Gives the C heap's free pages back to the kernel; false when nothing was or the addon is missing. */
export function trimMalloc(): boolean {
  return mallocTrimmer()?.trim() ?? false;
}

/** Below this share of the interval spent running JavaScript and callbacks, the agent is quiet. */
const QUIET_UTILIZATION = 0.05;

/**
 * Looks every intervalMs; trims when the event loop was quiet since the last look and busy before
 * (the start counts). Returns the stop function; without the addon (not built) nothing runs.
 */
export function trimWhenQuiet(log: Logger, intervalMs = 2_000, trimmer = mallocTrimmer()): () => void {
  if (!trimmer) {
    log.debug('malloc-trim.node not built: free malloc arena memory stays resident');
    return () => undefined;
  }
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  // The start was busy.
  let worked = true;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, last).utilization >= QUIET_UTILIZATION;
    last = now;
    if (busy) {
      worked = true;
      return;
    }
    if (!worked) return;
    worked = false;
    const start = performance.now();
    const released = trimmer.trim();
    log.debug({ released, ms: Math.round((performance.now() - start) * 100) / 100 }, 'malloc arenas trimmed');
  }, intervalMs).unref();
  return () => clearInterval(timer);
}
