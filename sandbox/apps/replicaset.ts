// The ReplicaSet controller: keeps spec.replicas active pods made from the template, each owned by
// the ReplicaSet, and reports how many exist, are ready and available. The plan is a pure function
// of the ReplicaSet and its pods; the controller only writes it.
import type { KubeObject } from '../apiserver/resources.js';
import { any, ownerRef, podActive, podAvailable, podIsReady, selects } from './common.js';

export interface ReplicaSetPlan {
  readonly create: number;
  /** Pods to delete, the cheapest first (unscheduled, then not ready, then newest). */
  readonly remove: readonly KubeObject[];
  readonly status: Record<string, unknown>;
}

const rank = (p: KubeObject): number => (!any(p.spec).nodeName ? 0 : !podIsReady(p) ? 1 : 2);

export function planReplicaSet(rs: KubeObject, owned: readonly KubeObject[], now = Date.now()): ReplicaSetPlan {
  const spec = any(rs.spec);
  const want = Number(spec.replicas ?? 1);
  const active = owned.filter(podActive);
  const diff = active.length - want;
  const remove =
    diff > 0
      ? [...active].sort((a, b) => rank(a) - rank(b) || String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp))).slice(0, diff)
      : [];
  const minReady = Number(spec.minReadySeconds ?? 0);
  // The status describes the pods after this plan, so the Deployment controller never counts a pod
  // being deleted as available.
  const kept = active.filter((p) => !remove.includes(p));
  const created = Math.max(0, -diff);
  const status = {
    replicas: kept.length + created,
    fullyLabeledReplicas: kept.filter((p) => selects(spec.selector, p)).length + created,
    readyReplicas: kept.filter(podIsReady).length,
    availableReplicas: kept.filter((p) => podAvailable(p, minReady, now)).length,
    observedGeneration: rs.metadata.generation ?? 1,
  };
  return { create: created, remove, status };
}

/** A pod from a workload's template, owned by it; the API server names it (generateName). */
export function podFromTemplate(owner: KubeObject, extraLabels: Record<string, string> = {}, nodeName?: string): KubeObject {
  const t = any(any(owner.spec).template);
  const meta = any(t.metadata);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${owner.metadata.name}-`,
      namespace: owner.metadata.namespace,
      labels: { ...(meta.labels ?? {}), ...extraLabels },
      ...(meta.annotations ? { annotations: meta.annotations } : {}),
      ownerReferences: [ownerRef(owner)],
    },
    spec: { ...structuredClone(t.spec ?? {}), ...(nodeName ? { nodeName } : {}) },
  };
}
