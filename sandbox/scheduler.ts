// The scheduler stand-in: binds each unscheduled pod to the Ready node running the fewest pods,
// ties broken round-robin, which spreads a Deployment-like set evenly across the nodes.
import type { KubeObject } from './apiserver/resources.js';

/* eslint-disable-next-line @typescript-eslint/no-explicit-any -- raw API JSON, read only */
const any = (v: unknown): any => v ?? {};

export function nodeSchedulable(node: KubeObject): boolean {
  if (any(node.spec).unschedulable === true) return false;
  const conds: { type?: string; status?: string }[] = any(node.status).conditions ?? [];
  return conds.some((c) => c.type === 'Ready' && c.status === 'True');
}

export function selectorFits(nodeSelector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  return Object.entries(nodeSelector ?? {}).every(([k, v]) => labels?.[k] === v);
}

/** Pod name -> node name for every pod that has no node yet. `turn` rotates the tie-break. */
export function schedule(pods: readonly KubeObject[], nodes: readonly KubeObject[], turn = 0): Map<string, string> {
  const ready = nodes.filter(nodeSchedulable).map((n) => n.metadata.name ?? '').sort();
  const out = new Map<string, string>();
  if (ready.length === 0) return out;
  const load = new Map(ready.map((n) => [n, 0]));
  const labels = new Map(nodes.map((n) => [n.metadata.name ?? '', n.metadata.labels ?? {}]));
  for (const p of pods) {
    const n = any(p.spec).nodeName as string | undefined;
    if (n && load.has(n)) load.set(n, load.get(n)! + 1);
  }
  let t = turn;
  for (const p of pods) {
    if (any(p.spec).nodeName || p.metadata.deletionTimestamp) continue;
    const phase = any(p.status).phase;
    if (phase === 'Succeeded' || phase === 'Failed') continue;
    // nodeSelector narrows the candidates; a pod no node fits stays Pending, as with the real one.
    const fits = ready.filter((n) => selectorFits(any(p.spec).nodeSelector, labels.get(n)));
    if (fits.length === 0) continue;
    const min = Math.min(...fits.map((n) => load.get(n)!));
    const candidates = fits.filter((n) => load.get(n) === min);
    const pick = candidates[t++ % candidates.length]!;
    load.set(pick, min + 1);
    out.set(`${p.metadata.namespace ?? 'default'}/${p.metadata.name ?? ''}`, pick);
  }
  return out;
}
