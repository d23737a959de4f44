// A young-generation collection while the agent is idle, before latency-critical work. With the
// policy engine's heap (~150 MB) every scavenge costs 1-2 ms on its own (and 5-10 ms on a busy
// node), and one pod ADD's sync allocates enough that a scavenge lands inside every second ADD.
// Scavenging in the idle moment before one leaves the young generation empty for it.
// The collector is V8's `gc` extension (common/memory.ts).
import { getHeapSpaceStatistics } from 'node:v8';
import { collector, type GcFunction } from './memory.js';

let loaded: GcFunction | null | undefined;

function load(): GcFunction | null {
  if (loaded === undefined) {
    try {
      loaded = collector();
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

/** Runs a minor (young generation) collection now; false when the runtime offers none. */
export function minorGC(): boolean {
  const gc = load();
  if (!gc) return false;
  gc({ type: 'minor' });
  return true;
}

/**
 * Runs a full (mark-compact) collection now, on this thread: for right after a job that grew the
 * old generation by a lot (a full policy load), so the collection V8 would start soon after runs
 * now instead of in pieces inside the next latency-critical work. False when unavailable.
 */
export function majorGC(): boolean {
  const gc = load();
  if (!gc) return false;
  gc({ type: 'major' });
  return true;
}

/** How full the young generation is (0..1): used over used plus available in its current size. */
export function youngGenerationFill(): number {
  const s = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
  if (!s) return 0;
  const total = s.space_used_size + s.space_available_size;
  return total > 0 ? s.space_used_size / total : 0;
}

/**
 * Schedules one minor collection for the next turn of the event loop (after the I/O callbacks
 * that answer the work just done), skipped when `busy()` says new work has started meanwhile, or
 * when the young generation is less than `fill` full (nothing worth a collection). Calls while
 * one is pending share it.
 */
export function idleMinorGC(busy: () => boolean = () => false, fill = 0.1): void {
  if (pending) return;
  pending = true;
  setImmediate(() => {
    pending = false;
    if (!busy() && youngGenerationFill() >= fill) minorGC();
  });
}
let pending = false;
