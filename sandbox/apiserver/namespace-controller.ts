// The namespace controller of kube-controller-manager, run beside the API server because nothing
// else would finish a namespace's deletion: for every namespace being terminated it deletes each
// namespaced object in it as a client's DELETE would (a scheduled Pod gracefully, so its node's
// kubelet stops it and tears its network down), and once nothing is left it removes the
// `kubernetes` finalizer and deletes the namespace. Level-triggered: a write into or out of a
// terminating namespace queues a sweep, and a slow timer retries while any is terminating.
import { ApiError } from './errors.js';
import type { StoreEvent } from './history.js';
import { isTerminating, NAMESPACE_FINALIZER, specFinalizers } from './namespaces.js';
import { RESOURCE_NAMES, RESOURCES, type KubeObject, type ResourceName } from './resources.js';
import type { FakeStore } from './store.js';
import { remove } from './writes.js';

interface Condition {
  type: string;
  status: 'True' | 'False';
  reason: string;
  message: string;
}

const NAMESPACED = RESOURCE_NAMES.filter((r) => RESOURCES[r].namespaced);
const RETRY_MS = 500;

export class NamespaceController {
  private readonly terminating = new Set<string>();
  private queued = false;
  private stopped = false;
  private readonly unsubscribe: () => void;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly store: FakeStore) {
    for (const ns of store.select('namespaces')) if (isTerminating(ns)) this.terminating.add(ns.metadata.name ?? '');
    this.unsubscribe = store.onEvent((e) => this.observe(e));
    this.timer = setInterval(() => {
      if (this.terminating.size > 0) this.sync();
    }, RETRY_MS);
    this.timer.unref();
    if (this.terminating.size > 0) this.queue();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    clearInterval(this.timer);
  }

  private observe(e: StoreEvent): void {
    const o = e.object as KubeObject;
    if (e.resource === 'namespaces') {
      const name = o.metadata?.name ?? '';
      if (e.type !== 'DELETED' && isTerminating(o)) {
        this.terminating.add(name);
        this.queue();
      } else this.terminating.delete(name);
    } else if (this.terminating.size > 0 && RESOURCES[e.resource].namespaced && this.terminating.has(o.metadata?.namespace ?? '')) this.queue();
  }

  /** Writes never happen inside a store listener: the sweep runs on the next turn. */
  private queue(): void {
    if (this.queued) return;
    this.queued = true;
    setImmediate(() => {
      this.queued = false;
      this.sync();
    });
  }

  private sync(): void {
    if (this.stopped) return;
    for (const name of [...this.terminating]) {
      try {
        this.sweep(name);
      } catch {
        // The next event or the retry timer sweeps again; one failure never stops other namespaces.
      }
    }
  }

  private sweep(namespace: string): void {
    let left = 0;
    for (const r of NAMESPACED) {
      for (const o of this.store.select(r, { namespace })) {
        left++;
        const name = o.metadata.name ?? '';
        const route = { def: RESOURCES[r], namespace, name };
        // Marked already (a pod in its grace period): its kubelet or its deadline removes it.
        if (o.metadata.deletionTimestamp) continue;
        try {
          remove(this.store, route, { dryRun: false, propagationPolicy: 'Background' });
        } catch (e) {
          if (!(e instanceof ApiError && e.code === 404)) throw e;
        }
      }
    }
    let ns: KubeObject;
    try {
      ns = this.store.get('namespaces', namespace);
    } catch {
      this.terminating.delete(namespace);
      return;
    }
    const remaining = left > 0 ? this.remaining(namespace) : new Map<string, number>();
    if (remaining.size > 0) {
      this.report(ns, remaining);
      return;
    }
    const rest = specFinalizers(ns).filter((f) => f !== NAMESPACE_FINALIZER);
    if (rest.length !== specFinalizers(ns).length) ns = this.store.update('namespaces', { ...ns, spec: { ...(ns.spec as object), finalizers: rest } });
    if (rest.length === 0) this.store.delete('namespaces', namespace);
  }

  /** Objects left per group resource ("pods.", "deployments.apps"), as the controller counts them. */
  private remaining(namespace: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of NAMESPACED as ResourceName[]) {
      const n = this.store.select(r, { namespace }).length;
      if (n > 0) out.set(`${r}.${RESOURCES[r].group}`, n);
    }
    return out;
  }

  /** The deletion conditions kube-controller-manager keeps on a terminating namespace's status. */
  private report(ns: KubeObject, remaining: Map<string, number>): void {
    const left = [...remaining].sort(([a], [b]) => a.localeCompare(b)).map(([gr, n]) => `${gr} has ${n} resource instances`).join(', ');
    const want: Condition[] = [
      { type: 'NamespaceDeletionDiscoveryFailure', status: 'False', reason: 'ResourcesDiscovered', message: 'All resources successfully discovered' },
      { type: 'NamespaceDeletionGroupVersionParsingFailure', status: 'False', reason: 'ParsedGroupVersions', message: 'All legacy kube types successfully parsed' },
      { type: 'NamespaceDeletionContentFailure', status: 'False', reason: 'ContentDeleted', message: 'All content successfully deleted, may be waiting on finalization' },
      { type: 'NamespaceContentRemaining', status: 'True', reason: 'SomeResourcesRemain', message: `Some resources are remaining: ${left}` },
      { type: 'NamespaceFinalizersRemaining', status: 'False', reason: 'ContentHasNoFinalizers', message: 'All content-preserving finalizers finished' },
    ];
    const status = (ns.status ?? {}) as { conditions?: (Condition & { lastTransitionTime?: string })[] };
    const have = status.conditions ?? [];
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const same = (a: Condition, b: Condition | undefined): boolean => !!b && a.status === b.status && a.reason === b.reason && a.message === b.message;
    if (want.length === have.length && want.every((c) => same(c, have.find((h) => h.type === c.type)))) return;
    const conditions = want.map((c) => {
      const old = have.find((h) => h.type === c.type);
      return { ...c, lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : now };
    });
    this.store.update('namespaces', { ...ns, status: { ...status, conditions } }, { subresource: 'status' });
  }
}
