// What keeps running beside a store however many servers share it (the sandbox serves one store
// over HTTP and HTTPS): the namespace controller, and graceful deletion's deadline. A pod marked
// for deletion by any path (a client's DELETE, the garbage collector, the namespace controller) is
// normally removed by its node's kubelet once its containers stopped; this removes one whose node
// never confirms at its deadline, so nothing stays Terminating forever.
import type { StoreEvent } from './history.js';
import { NamespaceController } from './namespace-controller.js';
import type { KubeObject } from './resources.js';
import type { FakeStore } from './store.js';

class PodDeadlines {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly unsubscribe: () => void;

  constructor(private readonly store: FakeStore) {
    for (const p of store.select('pods')) this.track(p);
    this.unsubscribe = store.onEvent((e: StoreEvent) => {
      if (e.resource !== 'pods') return;
      const p = e.object as KubeObject;
      if (e.type === 'DELETED') this.untrack(p);
      else this.track(p);
    });
  }

  stop(): void {
    this.unsubscribe();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private track(p: KubeObject): void {
    const uid = p.metadata?.uid;
    const at = p.metadata?.deletionTimestamp;
    if (!uid || !at || this.timers.has(uid)) return;
    const { name = '', namespace } = p.metadata;
    const t = setTimeout(() => {
      this.timers.delete(uid);
      try {
        const cur = this.store.get('pods', name, namespace);
        if (cur.metadata.uid === uid && cur.metadata.deletionTimestamp) this.store.delete('pods', name, namespace);
      } catch {
        // Already gone.
      }
    }, Math.max(0, Date.parse(at) - Date.now()));
    t.unref();
    this.timers.set(uid, t);
  }

  private untrack(p: KubeObject): void {
    const uid = p.metadata?.uid ?? '';
    clearTimeout(this.timers.get(uid));
    this.timers.delete(uid);
  }
}

const running = new WeakMap<FakeStore, { stop: () => void; users: number }>();

/** Starts the store's controllers unless a server already did; the returned function releases them. */
export function startStoreControllers(store: FakeStore): () => void {
  let entry = running.get(store);
  if (!entry) {
    const ns = new NamespaceController(store);
    const deadlines = new PodDeadlines(store);
    entry = { stop: () => (ns.stop(), deadlines.stop()), users: 0 };
    running.set(store, entry);
  }
  const e = entry;
  e.users++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--e.users === 0) {
      e.stop();
      running.delete(store);
    }
  };
}
