// The EndpointSlice controller's desired state as a pure function, modelled on
// kube-controller-manager: one set of slices per Service with a selector, endpoints grouped by
// the port numbers their named ports resolve to, at most 100 endpoints per slice.
import { createHash } from 'node:crypto';
import type { KubeObject } from './apiserver/resources.js';

export const MANAGED_BY = 'endpointslice-controller.k8s.io';
export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';
export const LABEL_MANAGED_BY = 'endpointslice.kubernetes.io/managed-by';
export const ANNOTATION_TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';
export const MAX_ENDPOINTS_PER_SLICE = 100;

interface SlicePort {
  name: string;
  port: number;
  protocol: string;
  appProtocol?: string;
}

interface Endpoint {
  addresses: string[];
  conditions: { ready: boolean; serving: boolean; terminating: boolean };
  nodeName?: string;
  zone?: string;
  hostname?: string;
  targetRef: { kind: 'Pod'; namespace: string; name: string; uid: string };
}

/* eslint-disable @typescript-eslint/no-explicit-any -- raw API JSON is navigated loosely and read only */
const spec = (o: KubeObject): any => (o.spec ?? {}) as any;
const status = (o: KubeObject): any => (o.status ?? {}) as any;
/* eslint-enable @typescript-eslint/no-explicit-any */

export function selectorMatches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

export function podReady(pod: KubeObject): boolean {
  const conds: { type?: string; status?: string }[] = status(pod).conditions ?? [];
  return conds.some((c) => c.type === 'Ready' && c.status === 'True');
}

export function podIPs(pod: KubeObject): string[] {
  const st = status(pod);
  const ips: string[] = (st.podIPs ?? []).map((p: { ip?: string }) => p.ip).filter((ip: unknown): ip is string => typeof ip === 'string' && ip !== '');
  if (ips.length === 0 && typeof st.podIP === 'string' && st.podIP) ips.push(st.podIP);
  return ips;
}

/** The container port a Service targetPort names on this pod, or undefined (the pod is left out of that port). */
export function resolveTargetPort(pod: KubeObject, targetPort: number | string | undefined, port: number, protocol: string): number | undefined {
  if (targetPort === undefined || targetPort === '') return port;
  if (typeof targetPort === 'number') return targetPort;
  if (/^\d+$/.test(targetPort)) return Number(targetPort);
  for (const c of spec(pod).containers ?? []) {
    for (const p of c.ports ?? []) if (p.name === targetPort && (p.protocol ?? 'TCP') === protocol) return p.containerPort;
  }
  return undefined;
}

export function sliceName(service: KubeObject, ports: readonly SlicePort[], index: number): string {
  const h = createHash('sha256').update(`${service.metadata.uid ?? ''}|${JSON.stringify(ports)}|${index}`).digest('hex').slice(0, 5);
  return `${(service.metadata.name ?? '').slice(0, 56)}-${h}`;
}

/**
 * The slices a Service should have. `existing` only supplies the trigger-time annotation of slices
 * whose content did not change; `triggerTime` stamps the ones that did.
 */
export function desiredSlices(service: KubeObject, pods: readonly KubeObject[], nodes: readonly KubeObject[], triggerTime: string): KubeObject[] {
  const svc = spec(service);
  const selector: Record<string, string> | undefined = svc.selector;
  if (!selector || svc.type === 'ExternalName') return [];
  const ns = service.metadata.namespace ?? 'default';
  const zoneOf = new Map<string, string | undefined>(nodes.map((n) => [n.metadata.name ?? '', n.metadata.labels?.['topology.kubernetes.io/zone']]));
  const publishNotReady = svc.publishNotReadyAddresses === true;
  const svcPorts: { name?: string; port: number; protocol?: string; targetPort?: number | string; appProtocol?: string }[] = svc.ports ?? [];

  const groups = new Map<string, { ports: SlicePort[]; endpoints: Endpoint[] }>();
  for (const pod of pods) {
    if (pod.metadata.namespace !== ns || !selectorMatches(selector, pod.metadata.labels)) continue;
    const phase = status(pod).phase;
    if (phase === 'Succeeded' || phase === 'Failed') continue;
    const ips = podIPs(pod).filter((ip) => !ip.includes(':'));
    if (ips.length === 0) continue;
    const ports: SlicePort[] = [];
    for (const p of svcPorts) {
      const protocol = p.protocol ?? 'TCP';
      const n = resolveTargetPort(pod, p.targetPort, p.port, protocol);
      if (n === undefined) continue;
      ports.push({ name: p.name ?? '', port: n, protocol, ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) });
    }
    const terminating = pod.metadata.deletionTimestamp !== undefined;
    const ready = podReady(pod);
    const nodeName: string | undefined = spec(pod).nodeName || undefined;
    const ep: Endpoint = {
      addresses: [ips[0]!],
      conditions: { ready: publishNotReady || (ready && !terminating), serving: publishNotReady || ready, terminating },
      targetRef: { kind: 'Pod', namespace: ns, name: pod.metadata.name ?? '', uid: pod.metadata.uid ?? '' },
    };
    if (nodeName) ep.nodeName = nodeName;
    const zone = nodeName ? zoneOf.get(nodeName) : undefined;
    if (zone) ep.zone = zone;
    if (spec(pod).hostname && spec(pod).subdomain === service.metadata.name) ep.hostname = spec(pod).hostname;
    const key = JSON.stringify(ports);
    const g = groups.get(key) ?? { ports, endpoints: [] };
    g.endpoints.push(ep);
    groups.set(key, g);
  }

  const labels: Record<string, string> = { ...(service.metadata.labels ?? {}), [LABEL_SERVICE_NAME]: service.metadata.name ?? '', [LABEL_MANAGED_BY]: MANAGED_BY };
  const owner = { apiVersion: 'v1', kind: 'Service', name: service.metadata.name, uid: service.metadata.uid, controller: true, blockOwnerDeletion: true };
  const make = (ports: SlicePort[], endpoints: Endpoint[], index: number): KubeObject => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: sliceName(service, ports, index), namespace: ns, labels, annotations: { [ANNOTATION_TRIGGER_TIME]: triggerTime }, ownerReferences: [owner] },
    addressType: 'IPv4',
    ports,
    endpoints,
  });

  // Like the real controller, a Service with no endpoints still gets one empty slice.
  if (groups.size === 0) return [make([], [], 0)];
  const out: KubeObject[] = [];
  for (const key of [...groups.keys()].sort()) {
    const g = groups.get(key)!;
    const eps = g.endpoints.sort((a, b) => (a.targetRef.name < b.targetRef.name ? -1 : a.targetRef.name > b.targetRef.name ? 1 : 0));
    for (let i = 0; i * MAX_ENDPOINTS_PER_SLICE < eps.length; i++) out.push(make(g.ports, eps.slice(i * MAX_ENDPOINTS_PER_SLICE, (i + 1) * MAX_ENDPOINTS_PER_SLICE), i));
  }
  return out;
}

/** Whether two slices carry the same content, ignoring server-set metadata and the trigger time. */
export function sameSlice(a: KubeObject, b: KubeObject): boolean {
  const strip = (s: KubeObject): unknown => ({
    labels: s.metadata.labels ?? {},
    owner: s.metadata.ownerReferences,
    addressType: s.addressType,
    ports: s.ports ?? [],
    endpoints: s.endpoints ?? [],
  });
  return JSON.stringify(strip(a)) === JSON.stringify(strip(b));
}

export interface SlicePlan {
  readonly create: KubeObject[];
  readonly update: KubeObject[];
  readonly delete: KubeObject[];
}

/** The writes that turn the existing managed slices of a Service into the desired ones. */
export function planSlices(desired: readonly KubeObject[], existing: readonly KubeObject[]): SlicePlan {
  const have = new Map(existing.map((s) => [s.metadata.name ?? '', s]));
  const create: KubeObject[] = [];
  const update: KubeObject[] = [];
  for (const d of desired) {
    const e = have.get(d.metadata.name ?? '');
    have.delete(d.metadata.name ?? '');
    if (!e) create.push(d);
    else if (!sameSlice(d, e)) update.push({ ...d, metadata: { ...d.metadata, resourceVersion: e.metadata.resourceVersion } });
  }
  return { create, update, delete: [...have.values()] };
}
