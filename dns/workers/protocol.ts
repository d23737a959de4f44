// Messages between the agent's main thread and its DNS worker threads.
import type { Config } from '../../common/config.js';
import type { Kind } from '../../common/types.js';
import type { FeedElement, FeedTable } from '../answer-feed.js';
import type { FamilyDelta } from '../metrics.js';
import type { Bound } from '../server/listeners.js';

export const FED_KINDS: readonly Kind[] = ['services', 'endpointslices', 'namespaces', 'pods', 'nodes'];

export interface ObjectUpdate {
  readonly kind: Kind;
  readonly key: string;
  /** Absent: deleted. */
  readonly obj?: unknown;
}

export type ToWorker =
  | {
      readonly t: 'init';
      readonly config: Config;
      readonly addresses: readonly string[];
      readonly port: number;
      /** Per address: the port the first thread bound when asked for port 0 (native UDP only). */
      readonly ports?: readonly number[];
      /** How many threads share each address (the SO_REUSEPORT group size). */
      readonly workers: number;
      /** Whether this thread also serves TCP (only one thread can bind it). */
      readonly tcp: boolean;
      /** Sockets an earlier agent left open: "udp|tcp address port" -> descriptor (handoff.ts). */
      readonly inherited?: Readonly<Record<string, number>>;
      readonly updates: readonly ObjectUpdate[];
      readonly synced: readonly Kind[];
      readonly forward?: { timeoutMs?: number; deadlineMs?: number; healthIntervalMs?: number };
      /** The answer feed's table (answer-feed.ts), when the agent wired one. */
      readonly feed?: FeedTable;
    }
  | { readonly t: 'batch'; readonly updates: readonly ObjectUpdate[]; readonly synced: readonly Kind[] }
  | { readonly t: 'config'; readonly config: Config }
  | { readonly t: 'feed'; readonly table: FeedTable }
  /** The main thread's answer to a feed-add: the addresses are in force (or error says why not). */
  | { readonly t: 'feed-done'; readonly id: number; readonly error?: string }
  | { readonly t: 'stop' };

export type FromWorker =
  | { readonly t: 'ready' }
  | { readonly t: 'listening'; readonly bound: readonly Bound[]; readonly fds: Readonly<Record<string, number>> }
  | { readonly t: 'metrics'; readonly deltas: readonly FamilyDelta[] }
  | { readonly t: 'error'; readonly message: string }
  /** A reply waits for these addresses to be in force; answered by feed-done with the same id. */
  | { readonly t: 'feed-add'; readonly id: number; readonly elements: readonly FeedElement[] };

/** What a thread is started with (its workerData), before it loads anything else. */
export interface ThreadData {
  /** The CPUs the agent set aside for DNS threads (common/cpu-split.ts); absent: any. */
  readonly cpus?: readonly number[];
}
