// What a DNS thread is sent of the agent's cache: only what the zone index, autopath and the
// source ACL read, so the thread's heap does not hold a second copy of every endpoint. Only a
// headless Service's endpoints become DNS records (A/AAAA/SRV/PTR per endpoint); a ClusterIP
// Service answers with its VIPs, so its slices travel without endpoints. At 10,000 Services and
// 100,000 endpoints the thread's heap went from 74 MB to a few MB (bench/heap-summary.ts).
import type { EndpointInfo, EndpointSliceInfo, Kind, ServiceInfo } from '../../common/types.js';
import { Interner } from '../../common/watch/fields.js';

const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * A Service as it travels to a DNS thread: only what DNS reads (the zone index: names, type,
 * cluster IPs, headless, named ports, publishNotReadyAddresses, externalName), as a tuple with its
 * ports flat (name, protocol, port, ...). The structured clone writes every key name of every
 * object again, so at 50,000 Services the thread's initial snapshot as whole objects cost the
 * main thread 0.46 s in the middle of the proxy's full sync.
 */
export type WireService = readonly [
  namespace: string,
  name: string,
  type: ServiceInfo['type'],
  clusterIPs: readonly string[],
  headless: boolean,
  ports: readonly (string | number)[],
  publishNotReadyAddresses: boolean,
  externalName?: string,
];

/** A Service as DNS reads it (see WireService). */
export function dnsService(s: ServiceInfo): WireService {
  const ports: (string | number)[] = [];
  for (const p of s.ports) ports.push(p.name, p.protocol, p.port);
  const base = [s.namespace, s.name, s.type, s.clusterIPs, s.headless, ports, s.publishNotReadyAddresses] as const;
  return s.externalName === undefined ? base : [...base, s.externalName];
}

/** An endpoint as a headless Service's records need it: addresses, readiness and hostname (not its node, zone or hints). */
function dnsEndpoint(e: EndpointInfo): EndpointInfo {
  const out: { addresses: readonly string[]; ready: boolean; serving: boolean; terminating: boolean; hostname?: string } = { addresses: e.addresses, ready: e.ready, serving: e.serving, terminating: e.terminating };
  if (e.hostname !== undefined) out.hostname = e.hostname;
  return out;
}

/**
 * A slice as DNS reads it; `headless` is whether its Service is headless now. Only a headless
 * Service's slices make records: any other slice does not travel at all (undefined: the thread
 * holds none for it), half the objects of a snapshot and every endpoint change of a ClusterIP
 * Service a removal of nothing.
 */
export function dnsSlice(s: EndpointSliceInfo, headless: boolean): EndpointSliceInfo | undefined {
  if (!headless) return undefined;
  const { triggerTimeMs: _t, labels: _l, ...rest } = s;
  return { ...rest, labels: NO_LABELS, endpoints: Array.from(s.endpoints, dnsEndpoint) };
}

/** The key under which the proxy (proxy/proxier.ts) indexes slices by Service: shared, built once. */
export const SLICE_SERVICE_INDEX = 'service';
export const sliceService = (s: EndpointSliceInfo): readonly string[] => (s.serviceName ? [`${s.namespace}/${s.serviceName}`] : []);

/** Whether a Service change alters which of its slices' endpoints DNS needs. */
export function headlessChanged(kind: Kind, previous: unknown, current: unknown): boolean {
  if (kind !== 'services') return false;
  return ((previous as ServiceInfo | undefined)?.headless ?? false) !== ((current as ServiceInfo | undefined)?.headless ?? false);
}

// What arrives over the message port is a fresh copy of every string and list (structured
// clone shares nothing between objects), and an object grown key by key, as the deserializer
// builds it, keeps its fields past the fourth in a separate property array. So the thread
// rebuilds each Service and slice as one literal over shared copies of what repeats: namespaces,
// enum-like strings, empty lists, port lists. At 50,000 Services the DNS thread's heap went
// from 89 to 64 MB after its compaction (common/memory.ts; the agent's log).
const strings = new Interner<string>(10_000);
const lists = new Interner<readonly unknown[]>(10_000);
const NO_LIST: readonly never[] = Object.freeze([]);
const str = <T extends string>(x: T): T => strings.get(x, x) as T;

function list<T>(xs: readonly T[]): readonly T[] {
  if (xs.length === 0) return NO_LIST;
  return lists.get(JSON.stringify(xs), xs) as readonly T[];
}

/**
 * A Service as received by a DNS thread, at its smallest (see above). What DNS does not read did
 * not travel: those fields hold their defaults here.
 */
export function receivedService(w: WireService): ServiceInfo {
  const [namespace, name, type, clusterIPs, headless, flat, publishNotReadyAddresses, externalName] = w;
  const out = {
    namespace: str(namespace),
    name,
    uid: '',
    type: str(type),
    clusterIPs: clusterIPs.length === 0 ? NO_LIST : clusterIPs,
    headless,
    ipFamilies: NO_LIST,
    ports: flat.length === 0 ? NO_LIST : (lists.get(JSON.stringify(flat), portsOf(flat)) as ServiceInfo['ports']),
    externalIPs: NO_LIST,
    loadBalancerIPs: NO_LIST,
    loadBalancerSourceRanges: NO_LIST,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 0,
    publishNotReadyAddresses,
    labels: NO_LABELS,
  } as { -readonly [K in keyof ServiceInfo]: ServiceInfo[K] };
  if (externalName !== undefined) out.externalName = externalName;
  return out;
}

function portsOf(flat: readonly (string | number)[]): ServiceInfo['ports'] {
  const out: { name: string; protocol: ServiceInfo['ports'][number]['protocol']; port: number; targetPort: number }[] = [];
  for (let i = 0; i + 2 < flat.length; i += 3) out.push({ name: str(flat[i] as string), protocol: str(flat[i + 1] as ServiceInfo['ports'][number]['protocol']), port: flat[i + 2] as number, targetPort: flat[i + 2] as number });
  return out;
}

/** A slice as received by a DNS thread, at its smallest (see above). */
export function receivedSlice(v: EndpointSliceInfo): EndpointSliceInfo {
  const out = {
    namespace: str(v.namespace),
    name: v.name,
    serviceName: v.serviceName,
    addressType: str(v.addressType),
    ports: list(v.ports),
    endpoints: v.endpoints.length === 0 ? NO_LIST : v.endpoints,
    labels: NO_LABELS,
  } as { -readonly [K in keyof EndpointSliceInfo]: EndpointSliceInfo[K] };
  if (v.triggerTimeMs !== undefined) out.triggerTimeMs = v.triggerTimeMs;
  return out;
}
