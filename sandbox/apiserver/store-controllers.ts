// What keeps running beside a store however many servers share it (the sandbox serves one store
// over HTTP and HTTPS): the namespace controller, what the service account and root CA publisher
// controllers put in every namespace, and graceful deletion's deadline. A pod marked
// for deletion by any path (a client's DELETE, the garbage collector, the namespace controller) is
// normally removed by its node's kubelet once its containers stopped; this removes one whose node
// never confirms at its deadline (10 s past it when the Node exists, so a live kubelet, which
// kills and tears down at the deadline, confirms first), so nothing stays Terminating forever.
import type { StoreEvent } from './history.js';
import { NamespaceController } from './namespace-controller.js';
import { isTerminating } from './namespaces.js';
import type { KubeObject } from './resources.js';
import type { FakeStore } from './store.js';

const KUBELET_SLACK_MS = 10_000;

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
    const nodeName = (p.spec as { nodeName?: string } | undefined)?.nodeName ?? '';
    // A pod on an existing node waits a little past its deadline: the kubelet kills what outlived
    // the grace period, runs CNI DEL, then confirms, and should stay the one to remove it.
    const slack = nodeName && this.nodeExists(nodeName) ? KUBELET_SLACK_MS : 0;
    const t = setTimeout(() => {
      this.timers.delete(uid);
      try {
        const cur = this.store.get('pods', name, namespace);
        if (cur.metadata.uid === uid && cur.metadata.deletionTimestamp) this.store.delete('pods', name, namespace);
      } catch {
        // Already gone.
      }
    }, Math.max(0, Date.parse(at) - Date.now()) + slack);
    t.unref();
    this.timers.set(uid, t);
  }

  private nodeExists(name: string): boolean {
    try {
      this.store.get('nodes', name);
      return true;
    } catch {
      return false;
    }
  }

  private untrack(p: KubeObject): void {
    const uid = p.metadata?.uid ?? '';
    clearTimeout(this.timers.get(uid));
    this.timers.delete(uid);
  }
}

/**
 * Every active namespace holds a `default` ServiceAccount (the serviceaccounts controller) and the
 * `kube-root-ca.crt` ConfigMap with the cluster's CA (root-ca-cert-publisher); both come back when
 * deleted. The CA is the certificate of a TLS server on this store, empty while there is none.
 */
class NamespaceDefaults {
  private ca = '';
  private queued = false;
  private stopped = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly store: FakeStore) {
    this.unsubscribe = store.onEvent((e: StoreEvent) => {
      const o = e.object as KubeObject;
      if (e.resource === 'namespaces' ? e.type === 'ADDED' : e.type === 'DELETED' && (e.resource === 'serviceaccounts' || e.resource === 'configmaps')) this.queue();
      else if (e.resource === 'configmaps' && o.metadata?.name === ROOT_CA) this.queue();
    });
    this.queue();
  }

  setCa(pem: string): void {
    if (pem === this.ca) return;
    this.ca = pem;
    this.queue();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
  }

  private queue(): void {
    if (this.queued) return;
    this.queued = true;
    setImmediate(() => {
      this.queued = false;
      if (!this.stopped) this.sync();
    });
  }

  private sync(): void {
    for (const ns of this.store.select('namespaces')) {
      if (isTerminating(ns)) continue;
      const namespace = ns.metadata.name ?? '';
      const data = { 'ca.crt': this.ca };
      try {
        if (!this.find('serviceaccounts', 'default', namespace)) this.store.create('serviceaccounts', { metadata: { name: 'default', namespace } });
        const cm = this.find('configmaps', ROOT_CA, namespace);
        if (!cm) this.store.create('configmaps', { metadata: { name: ROOT_CA, namespace, annotations: { 'kubernetes.io/description': CA_DESCRIPTION } }, data });
        else if (JSON.stringify(cm.data) !== JSON.stringify(data)) this.store.update('configmaps', { ...cm, data });
      } catch {
        // Terminating meanwhile, or a racing writer: the next event syncs again.
      }
    }
  }

  private find(r: 'serviceaccounts' | 'configmaps', name: string, namespace: string): KubeObject | undefined {
    try {
      return this.store.get(r, name, namespace);
    } catch {
      return undefined;
    }
  }
}

const ROOT_CA = 'kube-root-ca.crt';
const CA_DESCRIPTION = 'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.';

interface Running {
  stop: () => void;
  defaults: NamespaceDefaults;
  users: number;
}
const running = new WeakMap<FakeStore, Running>();

/**
 * Starts the store's controllers unless a server already did; the returned function releases them.
 * `ca`: the PEM certificate clients verify the server with, published in every namespace.
 */
export function startStoreControllers(store: FakeStore, ca?: string): () => void {
  let entry = running.get(store);
  if (!entry) {
    const ns = new NamespaceController(store);
    const deadlines = new PodDeadlines(store);
    const defaults = new NamespaceDefaults(store);
    entry = { stop: () => (ns.stop(), deadlines.stop(), defaults.stop()), defaults, users: 0 };
    running.set(store, entry);
  }
  const e = entry;
  if (ca) e.defaults.setCa(ca);
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
