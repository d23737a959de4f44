// Namespace lifecycle as kube-apiserver has it: the NamespaceLifecycle admission plugin (no new
// content in a namespace that does not exist or is being terminated; the system namespaces cannot
// be deleted) and the namespace registry's two-phase delete (deletionTimestamp and phase
// Terminating first; the namespace goes once the namespace controller, namespace-controller.ts,
// has emptied it and removed the `kubernetes` finalizer).
import { ApiError } from './errors.js';
import type { KubeObject, ResourceDef } from './resources.js';
import type { FakeStore } from './store.js';

/** The namespace controller's finalizer, set on every new namespace. */
export const NAMESPACE_FINALIZER = 'kubernetes';
/** What NamespaceLifecycle refuses to delete. */
const IMMORTAL = new Set(['default', 'kube-system', 'kube-public']);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

export function isTerminating(ns: KubeObject): boolean {
  return Boolean(ns.metadata.deletionTimestamp) || (isObj(ns.status) && ns.status.phase === 'Terminating');
}

export function specFinalizers(ns: KubeObject): string[] {
  const f = isObj(ns.spec) ? ns.spec.finalizers : undefined;
  return Array.isArray(f) ? f.filter((x): x is string => typeof x === 'string') : [];
}

/** The namespace strategy's PrepareForCreate: phase Active and the controller's finalizer (in place). */
export function prepareNamespace(ns: KubeObject): void {
  const spec = isObj(ns.spec) ? ns.spec : {};
  const fin = Array.isArray(spec.finalizers) ? spec.finalizers : [];
  if (!fin.includes(NAMESPACE_FINALIZER)) spec.finalizers = [...fin, NAMESPACE_FINALIZER];
  ns.spec = spec;
  const status = isObj(ns.status) ? ns.status : {};
  status.phase ??= 'Active';
  ns.status = status;
}

/** 403 for a create in a namespace being terminated, worded and caused as NamespaceLifecycle does. */
export function terminatingError(def: ResourceDef, name: string, namespace: string): ApiError {
  const what = def.group ? `${def.name}.${def.group}` : def.name;
  return new ApiError(403, 'Forbidden', `${what} "${name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`, {
    name,
    group: def.group,
    kind: def.name,
    causes: [{ reason: 'NamespaceTerminating', message: `namespace ${namespace} is being terminated`, field: 'metadata.namespace' }],
  });
}

/** NamespaceLifecycle on create over HTTP: the namespace must exist (404 naming the namespace). */
export function requireNamespace(store: FakeStore, def: ResourceDef, namespace: string): void {
  if (!def.namespaced) return;
  try {
    store.get('namespaces', namespace);
  } catch (e) {
    if (e instanceof ApiError && e.code === 404) throw new ApiError(404, 'NotFound', `namespaces "${namespace}" not found`, { name: namespace, kind: 'namespaces' });
    throw e;
  }
}

/**
 * The first phase of a namespace's deletion: deletionTimestamp and phase Terminating. Returns the
 * marked namespace; the namespace controller does the rest. A second DELETE meanwhile is a 409.
 */
export function markNamespaceDeleted(store: FakeStore, old: KubeObject, dryRun: boolean): KubeObject {
  const name = old.metadata.name ?? '';
  if (IMMORTAL.has(name)) throw new ApiError(403, 'Forbidden', `namespaces "${name}" is forbidden: this namespace may not be deleted`, { name, kind: 'namespaces' });
  if (old.metadata.deletionTimestamp) {
    throw new ApiError(409, 'Conflict', `Operation cannot be fulfilled on namespaces "${name}": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.`, { name, kind: 'namespaces' });
  }
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const status = { ...(isObj(old.status) ? old.status : {}), phase: 'Terminating' };
  if (dryRun) return { ...old, metadata: { ...old.metadata, deletionTimestamp: now, deletionGracePeriodSeconds: 0 }, status };
  // Phase first: from then on creates are refused, before anyone sees the deletionTimestamp.
  const withPhase = store.update('namespaces', { ...old, status }, { subresource: 'status' });
  return store.update('namespaces', { ...withPhase, metadata: { ...withPhase.metadata, deletionTimestamp: now, deletionGracePeriodSeconds: 0 } });
}

/** Creates each namespace that does not exist yet (idempotent): what fixtures call before creating into them. */
export function ensureNamespaces(store: FakeStore, ...names: string[]): void {
  for (const name of names) {
    try {
      store.get('namespaces', name);
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 404)) throw e;
      store.create('namespaces', { metadata: { name } });
    }
  }
}
