// The in-memory half of the watch cache: typed stores with secondary indexes, and subscribers that
// receive coalesced change batches. The informer half (informer.ts) only feeds it, so components'
// unit tests can drive a MemoryCache directly with no API server at all.
import { isDeepStrictEqual } from 'node:util';
import { ALL_KINDS, KINDS, type Kind, type KindTypes } from '../types.js';

export interface Change<K extends Kind = Kind> {
  readonly kind: K;
  readonly key: string;
  /** The object before the batch's first change; undefined when it was added in the batch. */
  readonly previous?: KindTypes[K];
  /** The object after the batch's last change; undefined when it was deleted in the batch. */
  readonly current?: KindTypes[K];
}

export interface ChangeBatch {
  readonly changes: readonly Change[];
  /** Kinds whose initial list (or a relist) completed since the previous batch. */
  readonly synced: readonly Kind[];
}

export type Listener = (batch: ChangeBatch) => void;

export interface SubscribeOptions {
  /** Minimum time between two batches; a burst inside it is delivered as one batch. */
  readonly minIntervalMs?: number;
}

export interface Store<T> {
  get(key: string): T | undefined;
  values(): IterableIterator<T>;
  keys(): IterableIterator<string>;
  readonly size: number;
  readonly synced: boolean;
  /** Objects whose index function returned `value`; the index must have been added first. */
  byIndex(index: string, value: string): T[];
  addIndex(index: string, fn: (obj: T) => readonly string[]): void;
}

export interface WatchCache {
  store<K extends Kind>(kind: K): Store<KindTypes[K]>;
  synced(kinds?: readonly Kind[]): boolean;
  waitForSync(kinds: readonly Kind[], signal?: AbortSignal): Promise<void>;
  /** Returns an unsubscribe function. The listener never sees a no-op change (reverted in the batch). */
  subscribe(kinds: readonly Kind[], listener: Listener, opts?: SubscribeOptions): () => void;
}

class IndexedStore<T> implements Store<T> {
  private readonly items = new Map<string, T>();
  private readonly indexFns = new Map<string, (obj: T) => readonly string[]>();
  /** index -> value -> its one key, or a Set of keys: most values (a Service's slices) have one. */
  private readonly indexes = new Map<string, Map<string, string | Set<string>>>();
  synced = false;

  get size(): number {
    return this.items.size;
  }
  get(key: string): T | undefined {
    return this.items.get(key);
  }
  values(): IterableIterator<T> {
    return this.items.values();
  }
  keys(): IterableIterator<string> {
    return this.items.keys();
  }

  addIndex(index: string, fn: (obj: T) => readonly string[]): void {
    if (this.indexFns.has(index)) return;
    this.indexFns.set(index, fn);
    const idx = new Map<string, string | Set<string>>();
    this.indexes.set(index, idx);
    for (const [key, obj] of this.items) this.indexAdd(idx, fn(obj), key);
  }

  byIndex(index: string, value: string): T[] {
    const idx = this.indexes.get(index);
    if (!idx) throw new Error(`no index ${index}`);
    const keys = idx.get(value);
    if (keys === undefined) return [];
    if (typeof keys === 'string') {
      const o = this.items.get(keys);
      return o === undefined ? [] : [o];
    }
    const out: T[] = [];
    for (const k of keys) {
      const o = this.items.get(k);
      if (o !== undefined) out.push(o);
    }
    return out;
  }

  /** Returns the previous object. */
  set(key: string, obj: T | undefined): T | undefined {
    const prev = this.items.get(key);
    for (const [name, fn] of this.indexFns) {
      const idx = this.indexes.get(name)!;
      if (prev !== undefined) this.indexRemove(idx, fn(prev), key);
      if (obj !== undefined) this.indexAdd(idx, fn(obj), key);
    }
    if (obj === undefined) this.items.delete(key);
    else this.items.set(key, obj);
    return prev;
  }

  private indexAdd(idx: Map<string, string | Set<string>>, values: readonly string[], key: string): void {
    for (const v of values) {
      const s = idx.get(v);
      if (s === undefined) idx.set(v, key);
      else if (typeof s === 'string') {
        if (s !== key) idx.set(v, new Set([s, key]));
      } else s.add(key);
    }
  }
  private indexRemove(idx: Map<string, string | Set<string>>, values: readonly string[], key: string): void {
    for (const v of values) {
      const s = idx.get(v);
      if (s === undefined) continue;
      if (typeof s === 'string') {
        if (s === key) idx.delete(v);
        continue;
      }
      s.delete(key);
      if (s.size === 1) idx.set(v, s.values().next().value!);
    }
  }
}

class Subscription {
  private pending = new Map<string, { kind: Kind; key: string; previous?: unknown; current?: unknown }>();
  private pendingSynced = new Set<Kind>();
  private timer: NodeJS.Timeout | undefined;
  private lastFlush = 0;
  closed = false;

  constructor(
    readonly kinds: ReadonlySet<Kind>,
    private readonly listener: Listener,
    private readonly minIntervalMs: number,
  ) {}

  add(kind: Kind, key: string, previous: unknown, current: unknown): void {
    const id = `${kind}\u0000${key}`;
    const p = this.pending.get(id);
    if (p) p.current = current;
    else this.pending.set(id, { kind, key, previous, current });
    this.schedule();
  }

  /**
   * Delivers at once, with every change queued so far: a component that waits for the sync and then
   * computes everything from the store would otherwise get the whole initial list again as changes
   * right after (at 50,000 Services the proxy recomputed all of them, 0.2 s, to find nothing new).
   */
  markSynced(kind: Kind): void {
    this.pendingSynced.add(kind);
    if (this.closed) return;
    if (this.timer) {
      clearTimeout(this.timer);
      clearImmediate(this.timer as unknown as NodeJS.Immediate);
    }
    this.flush();
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    const wait = Math.max(0, this.lastFlush + this.minIntervalMs - Date.now());
    // setImmediate lets a whole burst of synchronous watch events land before the first flush.
    this.timer = wait === 0 ? (setImmediate(() => this.flush()) as unknown as NodeJS.Timeout) : setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.timer = undefined;
    if (this.closed) return;
    this.lastFlush = Date.now();
    const changes: Change[] = [];
    for (const c of this.pending.values()) {
      if (c.previous === undefined && c.current === undefined) continue;
      if (c.previous !== undefined && c.current !== undefined && isDeepStrictEqual(c.previous, c.current)) continue;
      changes.push(c as Change);
    }
    const synced = [...this.pendingSynced];
    this.pending = new Map();
    this.pendingSynced.clear();
    if (changes.length === 0 && synced.length === 0) return;
    this.listener({ changes, synced });
  }

  close(): void {
    this.closed = true;
    if (this.timer) {
      clearTimeout(this.timer);
      clearImmediate(this.timer as unknown as NodeJS.Immediate);
    }
  }
}

/** A writable cache: the informers feed one, and unit tests drive one by hand. */
export class MemoryCache implements WatchCache {
  private readonly stores = new Map<Kind, IndexedStore<unknown>>();
  private readonly subs = new Set<Subscription>();
  private readonly syncWaiters = new Set<() => void>();

  constructor() {
    for (const k of ALL_KINDS) this.stores.set(k, new IndexedStore());
  }

  store<K extends Kind>(kind: K): Store<KindTypes[K]> {
    return this.stores.get(kind) as unknown as Store<KindTypes[K]>;
  }

  synced(kinds: readonly Kind[] = KINDS): boolean {
    return kinds.every((k) => this.stores.get(k)!.synced);
  }

  waitForSync(kinds: readonly Kind[], signal?: AbortSignal): Promise<void> {
    if (this.synced(kinds)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!this.synced(kinds)) return;
        this.syncWaiters.delete(check);
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        this.syncWaiters.delete(check);
        reject(signal!.reason ?? new Error('aborted'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.add(check);
    });
  }

  subscribe(kinds: readonly Kind[], listener: Listener, opts: SubscribeOptions = {}): () => void {
    const sub = new Subscription(new Set(kinds), listener, opts.minIntervalMs ?? 0);
    this.subs.add(sub);
    return () => {
      sub.close();
      this.subs.delete(sub);
    };
  }

  /** Adds or replaces one object. A write equal to what is stored notifies nobody. */
  upsert<K extends Kind>(kind: K, key: string, obj: KindTypes[K]): void {
    const store = this.stores.get(kind)!;
    const prev = store.get(key);
    if (prev !== undefined && isDeepStrictEqual(prev, obj)) return;
    store.set(key, obj);
    this.notify(kind, key, prev, obj);
  }

  remove(kind: Kind, key: string): void {
    const store = this.stores.get(kind)!;
    const prev = store.set(key, undefined);
    if (prev !== undefined) this.notify(kind, key, prev, undefined);
  }

  /**
   * Makes the store hold exactly `objs` (a list or relist) and marks it synced; only the true
   * differences reach subscribers.
   */
  replace<K extends Kind>(kind: K, objs: ReadonlyMap<string, KindTypes[K]>): void {
    const store = this.stores.get(kind)!;
    for (const key of [...store.keys()]) if (!objs.has(key)) this.remove(kind, key);
    for (const [key, obj] of objs) this.upsert(kind, key, obj);
    this.markSynced(kind);
  }

  /**
   * Ends a list applied object by object (upserts as its pages arrived): removes whatever the list
   * did not have and marks the kind synced.
   */
  retain(kind: Kind, listed: ReadonlySet<string>): void {
    const store = this.stores.get(kind)!;
    for (const key of [...store.keys()]) if (!listed.has(key)) this.remove(kind, key);
    this.markSynced(kind);
  }

  markSynced(kind: Kind): void {
    this.stores.get(kind)!.synced = true;
    for (const s of this.subs) if (s.kinds.has(kind)) s.markSynced(kind);
    for (const w of [...this.syncWaiters]) w();
  }

  private notify(kind: Kind, key: string, prev: unknown, cur: unknown): void {
    for (const s of this.subs) if (s.kinds.has(kind)) s.add(kind, key, prev, cur);
  }
}
