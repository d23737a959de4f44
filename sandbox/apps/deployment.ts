// The Deployment controller's decisions as a pure function of the Deployment and the ReplicaSets it
// owns: which ReplicaSet is new (its pod-template-hash is the template's), how far to scale each
// (RollingUpdate within maxSurge/maxUnavailable, or Recreate), and the status `kubectl rollout
// status` reads. One sync takes one step; the ReplicaSets' status changes trigger the next.
import type { KubeObject } from '../apiserver/resources.js';
import { any, condition, ownerRef, resolveIntOrPercent, templateHash } from './common.js';

export const HASH_LABEL = 'pod-template-hash';
export const REVISION = 'deployment.kubernetes.io/revision';

export interface DeploymentPlan {
  /** A new ReplicaSet to create (the template changed or the Deployment is new). */
  readonly create?: KubeObject;
  /** ReplicaSet name -> replicas. */
  readonly scale: ReadonlyMap<string, number>;
  /** Old ReplicaSets beyond revisionHistoryLimit, already at zero. */
  readonly remove: readonly string[];
  /** The new ReplicaSet's revision, when it must change (a rollback makes an old template new again). */
  readonly revision: { readonly replicaSet?: string; readonly value: string };
  readonly status: Record<string, unknown>;
}

const replicasOf = (rs: KubeObject): number => Number(any(rs.spec).replicas ?? 0);
const st = (rs: KubeObject, f: string): number => Number(any(rs.status)[f] ?? 0);
const revisionOf = (rs: KubeObject): number => Number(rs.metadata.annotations?.[REVISION] ?? 0);

export function newReplicaSet(d: KubeObject, hash: string, revision: number, replicas: number): KubeObject {
  const spec = any(d.spec);
  const t = structuredClone(spec.template ?? {});
  t.metadata = { ...(t.metadata ?? {}), labels: { ...(t.metadata?.labels ?? {}), [HASH_LABEL]: hash } };
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: `${d.metadata.name}-${hash}`,
      namespace: d.metadata.namespace,
      labels: { ...(t.metadata.labels ?? {}) },
      annotations: { [REVISION]: String(revision), 'deployment.kubernetes.io/desired-replicas': String(spec.replicas ?? 1) },
      ownerReferences: [ownerRef(d)],
    },
    spec: {
      replicas,
      ...(spec.minReadySeconds ? { minReadySeconds: spec.minReadySeconds } : {}),
      selector: { ...spec.selector, matchLabels: { ...(spec.selector?.matchLabels ?? {}), [HASH_LABEL]: hash } },
      template: t,
    },
  };
}

export function planDeployment(d: KubeObject, owned: readonly KubeObject[]): DeploymentPlan {
  const spec = any(d.spec);
  const replicas = Number(spec.replicas ?? 1);
  const hash = templateHash(spec.template);
  const scale = new Map<string, number>();
  const existingNew = owned.find((rs) => rs.metadata.labels?.[HASH_LABEL] === hash);
  const old = owned.filter((rs) => rs !== existingNew).sort((a, b) => revisionOf(a) - revisionOf(b));
  const rolling = (spec.strategy?.type ?? 'RollingUpdate') === 'RollingUpdate';
  let surge = rolling ? resolveIntOrPercent(spec.strategy?.rollingUpdate?.maxSurge, replicas, true, '25%') : 0;
  let unavailable = rolling ? resolveIntOrPercent(spec.strategy?.rollingUpdate?.maxUnavailable, replicas, false, '25%') : replicas;
  if (rolling && surge === 0 && unavailable === 0) unavailable = 1;
  unavailable = Math.min(unavailable, replicas);
  surge = Math.max(surge, 0);
  const oldTotal = old.reduce((n, rs) => n + replicasOf(rs), 0);

  let create: KubeObject | undefined;
  let newReplicas = existingNew ? replicasOf(existingNew) : 0;
  if (!spec.paused) {
    if (rolling) {
      // Scale up the new ReplicaSet within maxSurge.
      if (newReplicas > replicas) newReplicas = replicas;
      else if (newReplicas < replicas) {
        const room = replicas + surge - (oldTotal + newReplicas);
        if (room > 0) newReplicas = Math.min(replicas, newReplicas + room);
      }
      // Scale down old ones within maxUnavailable: first their unhealthy pods, then healthy ones.
      const minAvailable = replicas - unavailable;
      const newUnavailable = existingNew ? Math.max(0, replicasOf(existingNew) - st(existingNew, 'availableReplicas')) : 0;
      let cleanup = oldTotal + (existingNew ? replicasOf(existingNew) : 0) - minAvailable - newUnavailable;
      const target = new Map(old.map((rs) => [rs.metadata.name!, replicasOf(rs)]));
      for (const rs of old) {
        const unhealthy = target.get(rs.metadata.name!)! - st(rs, 'availableReplicas');
        if (cleanup <= 0 || unhealthy <= 0) continue;
        const n = Math.min(cleanup, unhealthy);
        target.set(rs.metadata.name!, target.get(rs.metadata.name!)! - n);
        cleanup -= n;
      }
      const available = owned.reduce((n, rs) => n + st(rs, 'availableReplicas'), 0);
      let down = available - minAvailable;
      for (const rs of old) {
        const t = target.get(rs.metadata.name!)!;
        if (down <= 0 || t === 0) continue;
        const n = Math.min(down, t);
        target.set(rs.metadata.name!, t - n);
        down -= n;
      }
      for (const [name, n] of target) if (n !== replicasOf(old.find((rs) => rs.metadata.name === name)!)) scale.set(name, n);
    } else {
      // Recreate: every old pod gone before the new ReplicaSet gets any.
      for (const rs of old) if (replicasOf(rs) !== 0) scale.set(rs.metadata.name!, 0);
      const oldPods = old.reduce((n, rs) => n + st(rs, 'replicas'), 0);
      newReplicas = oldTotal === 0 && oldPods === 0 ? replicas : 0;
    }
  }
  const maxOld = Math.max(0, ...old.map(revisionOf));
  let revision: DeploymentPlan['revision'];
  if (!existingNew) {
    create = newReplicaSet(d, hash, maxOld + 1, spec.paused ? 0 : newReplicas);
    revision = { value: String(maxOld + 1) };
  } else {
    if (newReplicas !== replicasOf(existingNew)) scale.set(existingNew.metadata.name!, newReplicas);
    // Back to an older template (rollout undo): its ReplicaSet becomes the newest revision.
    revision = revisionOf(existingNew) > maxOld ? { value: String(revisionOf(existingNew)) } : { replicaSet: existingNew.metadata.name!, value: String(maxOld + 1) };
  }

  const limit = Number(spec.revisionHistoryLimit ?? 10);
  const idle = old.filter((rs) => replicasOf(rs) === 0 && st(rs, 'replicas') === 0 && !scale.has(rs.metadata.name!));
  const remove = idle.slice(0, Math.max(0, idle.length - limit)).map((rs) => rs.metadata.name!);

  const sum = (f: string): number => owned.reduce((n, rs) => n + st(rs, f), 0);
  const updated = existingNew ? st(existingNew, 'replicas') : 0;
  const availableNow = sum('availableReplicas');
  const total = sum('replicas');
  const newName = existingNew?.metadata.name ?? create?.metadata.name ?? '';
  const complete = updated === replicas && total === replicas && availableNow >= replicas && (!existingNew || Number(any(existingNew.status).observedGeneration ?? 0) >= Number(existingNew.metadata.generation ?? 1));
  const prev = any(d.status).conditions as Record<string, unknown>[] | undefined;
  const prevProgress = prev?.find((c) => c.type === 'Progressing');
  let progressing = condition(prev, 'Progressing', true, complete ? 'NewReplicaSetAvailable' : 'ReplicaSetUpdated', complete ? `ReplicaSet "${newName}" has successfully progressed.` : `ReplicaSet "${newName}" is progressing.`, true);
  // Progress is any change of the counts; none for progressDeadlineSeconds means the rollout is stuck.
  const counts = JSON.stringify([total, updated, availableNow, sum('readyReplicas')]);
  const prevCounts = JSON.stringify([any(d.status).replicas ?? 0, any(d.status).updatedReplicas ?? 0, any(d.status).availableReplicas ?? 0, any(d.status).readyReplicas ?? 0]);
  if (!complete && counts !== prevCounts) progressing = { ...progressing, lastUpdateTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
  const deadline = Number(spec.progressDeadlineSeconds ?? 600);
  if (!complete && prevProgress && counts === prevCounts && Date.parse(String(prevProgress.lastUpdateTime)) + deadline * 1000 < Date.now()) {
    progressing = condition(prev, 'Progressing', false, 'ProgressDeadlineExceeded', `ReplicaSet "${newName}" has timed out progressing.`, true);
  }
  const status: Record<string, unknown> = {
    observedGeneration: d.metadata.generation ?? 1,
    replicas: total,
    updatedReplicas: updated,
    readyReplicas: sum('readyReplicas'),
    availableReplicas: availableNow,
    unavailableReplicas: Math.max(0, replicas - availableNow),
    conditions: [
      condition(prev, 'Available', availableNow >= replicas - unavailable, availableNow >= replicas - unavailable ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable', availableNow >= replicas - unavailable ? 'Deployment has minimum availability.' : 'Deployment does not have minimum availability.', true),
      progressing,
    ],
  };
  for (const k of ['replicas', 'updatedReplicas', 'readyReplicas', 'availableReplicas', 'unavailableReplicas']) if (status[k] === 0) delete status[k];
  return { ...(create ? { create } : {}), scale, remove, revision, status };
}
