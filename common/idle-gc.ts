// A young-generation collection right after latency-critical work, while the agent is idle. With
// the policy engine's heap (~150 MB) every scavenge costs 1-2 ms on its own (and 5-10 ms on a
// busy node), and one work item allocates enough that a scavenge lands inside every second pod
// ADD. Scavenging as soon as a sync is over leaves the young generation empty for the next one.
// The collector is V8's `gc` extension, exposed at run time (no node flag in the image needed).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFunction = (options?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let collector: GcFunction | null | undefined;

function load(): GcFunction | null {
  if (collector !== undefined) return collector;
  try {
    const g = (globalThis as { gc?: GcFunction }).gc;
    if (typeof g === 'function') collector = g;
    else {
      setFlagsFromString('--expose-gc');
      collector = runInNewContext('gc') as GcFunction;
    }
  } catch {
    collector = null;
  }
  return collector;
}

/** Runs a minor (young generation) collection now; false when the runtime offers none. */
export function minorGC(): boolean {
  const gc = load();
  if (!gc) return false;
  gc({ type: 'minor' });
  return true;
}

/**
 * Schedules one minor collection for the next turn of the event loop (after the I/O callbacks
 * that answer the work just done), skipped when `busy()` says new work has started meanwhile.
 * Calls while one is pending share it.
 */
export function idleMinorGC(busy: () => boolean = () => false): void {
  if (pending) return;
  pending = true;
  setImmediate(() => {
    pending = false;
    if (!busy()) minorGC();
  });
}
let pending = false;
