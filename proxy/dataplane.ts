// What the sync loop needs from a kernel backend. Both backends consume the same ServicePorts.
import type { Bounds } from './bounds.js';
import type { NodeContext, ServicePort } from './model.js';

export interface ServiceChange {
  readonly key: string;
  /** The Service's ports after the change; empty when it went away or is ignored. */
  readonly ports: readonly ServicePort[];
}

export interface FullSyncHooks {
  /**
   * Sizes what is written before `services` is iterated (default: counted from `services`).
   * Called while the backend waits for the kernel's answer about the table, so it costs no time.
   */
  readonly bounds?: () => Bounds;
  /**
   * Called once, after every entry of `services` has been read and handed to the kernel and
   * before the kernel has confirmed: work done here overlaps that wait (at 10,000 Services the
   * last loads take ~80 ms after the render). The sync can still fail after it.
   */
  readonly whileApplying?: () => void;
}

export interface Dataplane {
  readonly name: 'nftables' | 'iptables';
  /**
   * Rewrites everything from scratch: the first sync, after a failure, and drift repair.
   * `services` may compute its entries as they are iterated.
   */
  full(services: ReadonlyMap<string, readonly ServicePort[]>, ctx: NodeContext, hooks?: FullSyncHooks): Promise<void>;
  /** Applies only these Services' changes; a throw leaves the backend needing a full sync. */
  partial(changes: readonly ServiceChange[], ctx: NodeContext): Promise<void>;
  /** Differences between the kernel and what was written; empty means in sync. */
  verify(): Promise<string[]>;
  /** Removes every kernel object this backend owns. */
  cleanup(): Promise<void>;
}

/** Stable small integers per ServicePort id; freed ids are reused only after the sync that freed them. */
export class SlotAllocator {
  private readonly slots = new Map<string, number>();
  private readonly free: number[] = [];
  private readonly pendingFree: number[] = [];
  private next = 1;

  constructor(private readonly max: number) {}

  get(id: string): number {
    let s = this.slots.get(id);
    if (s !== undefined) return s;
    s = this.free.pop() ?? this.next++;
    if (s >= this.max) throw new Error(`too many service ports (limit ${this.max})`);
    this.slots.set(id, s);
    return s;
  }
  ids(): string[] {
    return [...this.slots.keys()];
  }
  release(id: string): void {
    const s = this.slots.get(id);
    if (s === undefined) return;
    this.slots.delete(id);
    this.pendingFree.push(s);
  }
  /** Called after a sync: slots released during it become reusable. */
  commit(): void {
    this.free.push(...this.pendingFree.splice(0));
    this.free.sort((a, b) => b - a);
  }
  reset(): void {
    this.slots.clear();
    this.free.length = 0;
    this.pendingFree.length = 0;
    this.next = 1;
  }
}
