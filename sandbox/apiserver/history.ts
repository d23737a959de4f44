// The event log behind watch: every write gets the next global resourceVersion and is kept until
// compaction, so a watch can resume from any resourceVersion not older than the window, and an
// older one gets 410 Gone exactly like etcd compaction makes the real API server answer.
import { gone } from './errors.js';
import type { KubeObject, ResourceName } from './resources.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  readonly rv: number;
  readonly resource: ResourceName;
  readonly type: EventType;
  /** The object after the write; for DELETED the last state, carrying the deletion's resourceVersion. */
  readonly object: KubeObject;
  /** The object before the write (undefined for ADDED), so filtered watches see objects move in and out. */
  readonly previous?: KubeObject;
}

export class History {
  private events: StoreEvent[] = [];
  /** Every event with rv <= compactedRev has been dropped. */
  private compactedRev: number;

  constructor(
    private readonly window: number,
    startRev: number,
  ) {
    this.compactedRev = startRev;
  }

  get oldestResumable(): number {
    return this.compactedRev;
  }

  append(e: StoreEvent): void {
    this.events.push(e);
    // Trim in chunks so a long run does not shift the array on every write.
    if (this.events.length > this.window + Math.max(16, this.window >> 3)) this.dropBefore(this.events.length - this.window);
  }

  /** Drops every event up to `rev` (default: all of them); a watch from an older rv then gets 410. */
  compact(rev: number): void {
    let i = 0;
    while (i < this.events.length && this.events[i]!.rv <= rev) i++;
    this.dropBefore(i);
    this.compactedRev = Math.max(this.compactedRev, rev);
  }

  /** The events after `rv`; throws 410 Gone when some of them were compacted away. */
  since(rv: number, current: number): StoreEvent[] {
    if (rv < this.compactedRev) throw gone(rv, this.compactedRev);
    if (rv >= current) return [];
    // Binary search: the log is sorted by rv.
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.events[mid]!.rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    return this.events.slice(lo);
  }

  private dropBefore(i: number): void {
    if (i <= 0) return;
    this.compactedRev = Math.max(this.compactedRev, this.events[i - 1]!.rv);
    this.events = this.events.slice(i);
  }
}
