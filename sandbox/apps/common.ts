// What the workload controllers share: template hashes, label selectors, owner references and pod
// availability, as kube-controller-manager's controller utilities define them.
import { parseLabelSelector } from '../apiserver/selectors.js';
import type { KubeObject } from '../apiserver/resources.js';

/* eslint-disable-next-line @typescript-eslint/no-explicit-any -- raw API JSON, read only */
export const any = (v: unknown): any => v ?? {};

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** A LabelSelector object in the string form the store's matcher reads. */
export function selectorString(sel: LabelSelector | undefined): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(sel?.matchLabels ?? {})) parts.push(`${k}=${v}`);
  for (const e of sel?.matchExpressions ?? []) {
    if (e.operator === 'In') parts.push(`${e.key} in (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

export function selects(sel: LabelSelector | undefined, obj: KubeObject): boolean {
  const s = selectorString(sel);
  // An empty selector selects nothing for workloads (validation rejects it anyway).
  return s !== '' && parseLabelSelector(s)(obj);
}

const empty = (v: unknown): boolean => v === null || v === undefined || (typeof v === 'object' && Object.keys(v).length === 0);

/**
 * Canonical JSON (sorted keys, no null or empty values) so equal templates hash equally whatever
 * their key order and however a client spelled "unset" (typed clients send `resources: {}` and
 * `creationTimestamp: null`, e.g. in kubectl rollout undo's patch).
 */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => !empty((v as Record<string, unknown>)[k]) && !(k === 'creationTimestamp'))
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

const SAFE = 'bcdfghjklmnpqrstvwxz2456789';

/** FNV-1a of the template, its decimal digits mapped onto consonants and digits like rand.SafeEncodeString. */
export function templateHash(template: unknown): string {
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(canonical(template))) {
    h ^= ch;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return [...String(h)].map((d) => SAFE[(d.charCodeAt(0) * 7) % SAFE.length]).join('');
}

export function ownerRef(owner: KubeObject): Record<string, unknown> {
  return { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true };
}

export function controllerUid(obj: KubeObject): string | undefined {
  const refs = any(obj.metadata).ownerReferences as { uid?: string; controller?: boolean }[] | undefined;
  return refs?.find((r) => r.controller)?.uid;
}

export function ownedBy(objs: readonly KubeObject[], owner: KubeObject): KubeObject[] {
  return objs.filter((o) => controllerUid(o) === owner.metadata.uid);
}

/** Counts toward a controller: not being deleted, not finished. */
export function podActive(p: KubeObject): boolean {
  const phase = any(p.status).phase;
  return !p.metadata.deletionTimestamp && phase !== 'Succeeded' && phase !== 'Failed';
}

export function podIsReady(p: KubeObject): boolean {
  return (any(p.status).conditions ?? []).some((c: { type?: string; status?: string }) => c.type === 'Ready' && c.status === 'True');
}

/** Ready for at least minReadySeconds. */
export function podAvailable(p: KubeObject, minReadySeconds: number, now: number): boolean {
  if (!podIsReady(p)) return false;
  if (minReadySeconds <= 0) return true;
  const c = (any(p.status).conditions ?? []).find((x: { type?: string }) => x.type === 'Ready');
  const since = Date.parse(c?.lastTransitionTime ?? '');
  return Number.isFinite(since) && since + minReadySeconds * 1000 <= now;
}

/** An int-or-percent field (maxSurge, maxUnavailable) against a total. */
export function resolveIntOrPercent(v: unknown, total: number, roundUp: boolean, dflt: string): number {
  const val = v ?? dflt;
  if (typeof val === 'number') return Math.max(0, Math.floor(val));
  const m = /^(\d+)%$/.exec(String(val));
  if (!m) return Number.parseInt(String(val), 10) || 0;
  const x = (Number(m[1]) * total) / 100;
  return roundUp ? Math.ceil(x) : Math.floor(x);
}

export const nowIso = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/** A status condition that keeps its lastTransitionTime while status and reason hold. */
export function condition(prev: readonly Record<string, unknown>[] | undefined, type: string, status: boolean, reason: string, message: string, withUpdate = false): Record<string, unknown> {
  const old = prev?.find((c) => c.type === type);
  const s = status ? 'True' : 'False';
  const now = nowIso();
  const same = old && old.status === s;
  return {
    type,
    status: s,
    ...(withUpdate ? { lastUpdateTime: same && old.reason === reason && old.message === message ? old.lastUpdateTime : now } : {}),
    lastTransitionTime: same ? old.lastTransitionTime : now,
    reason,
    message,
  };
}
