// The DaemonSet controller's decisions as a pure function: one active pod per eligible node (Ready,
// schedulable, matching the template's nodeSelector), bound to it directly; pods of an older
// template replaced at most maxUnavailable at a time; the status `kubectl rollout status` reads.
import type { KubeObject } from '../apiserver/resources.js';
import { nodeSchedulable } from '../scheduler.js';
import { any, podActive, podAvailable, podIsReady, resolveIntOrPercent, templateHash } from './common.js';

export const DS_HASH_LABEL = 'controller-revision-hash';

export interface DaemonSetPlan {
  /** Node names that need a pod. */
  readonly create: readonly string[];
  readonly remove: readonly KubeObject[];
  readonly hash: string;
  readonly status: Record<string, unknown>;
}

export function nodeMatches(nodeSelector: Record<string, string> | undefined, node: KubeObject): boolean {
  return Object.entries(nodeSelector ?? {}).every(([k, v]) => node.metadata.labels?.[k] === v);
}

export function planDaemonSet(ds: KubeObject, owned: readonly KubeObject[], nodes: readonly KubeObject[], now = Date.now()): DaemonSetPlan {
  const spec = any(ds.spec);
  const hash = templateHash(spec.template);
  const selector = any(any(spec.template).spec).nodeSelector as Record<string, string> | undefined;
  const eligible = nodes.filter((n) => nodeSchedulable(n) && nodeMatches(selector, n)).map((n) => n.metadata.name!);
  const active = owned.filter(podActive);
  const byNode = new Map<string, KubeObject[]>();
  for (const p of active) {
    const n = any(p.spec).nodeName ?? '';
    byNode.set(n, [...(byNode.get(n) ?? []), p]);
  }
  const create: string[] = [];
  const remove: KubeObject[] = [];
  for (const [node, pods] of byNode) {
    if (!eligible.includes(node)) remove.push(...pods);
    else remove.push(...pods.slice(1)); // one per node
  }
  for (const n of eligible) if (!byNode.has(n)) create.push(n);
  const minReady = Number(spec.minReadySeconds ?? 0);
  const current = eligible.map((n) => byNode.get(n)?.[0]).filter((p): p is KubeObject => p !== undefined);
  const updated = current.filter((p) => p.metadata.labels?.[DS_HASH_LABEL] === hash);
  const available = current.filter((p) => podAvailable(p, minReady, now));
  if ((spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate') {
    const maxUnavailable = Math.max(1, resolveIntOrPercent(spec.updateStrategy?.rollingUpdate?.maxUnavailable, eligible.length, true, '1'));
    let budget = maxUnavailable - (eligible.length - available.length);
    // Not-ready old pods first: replacing them costs no availability.
    const stale = current.filter((p) => p.metadata.labels?.[DS_HASH_LABEL] !== hash).sort((a, b) => Number(podIsReady(a)) - Number(podIsReady(b)));
    for (const p of stale) {
      if (podIsReady(p) && budget <= 0) break;
      remove.push(p);
      if (podIsReady(p)) budget--;
    }
  }
  const status = {
    desiredNumberScheduled: eligible.length,
    currentNumberScheduled: current.length,
    numberMisscheduled: [...byNode.keys()].filter((n) => !eligible.includes(n)).length,
    numberReady: current.filter(podIsReady).length,
    numberAvailable: available.length,
    ...(eligible.length - available.length > 0 ? { numberUnavailable: eligible.length - available.length } : {}),
    updatedNumberScheduled: updated.length,
    observedGeneration: ds.metadata.generation ?? 1,
  };
  return { create, remove, hash, status };
}
