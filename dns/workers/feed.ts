// What a DNS thread is sent of the agent's cache: only what the zone index, autopath and the
// source ACL read, so the thread's heap does not hold a second copy of every endpoint. Only a
// headless Service's endpoints become DNS records (A/AAAA/SRV/PTR per endpoint); a ClusterIP
// Service answers with its VIPs, so its slices travel without endpoints. At 10,000 Services and
// 100,000 endpoints the thread's heap went from 74 MB to a few MB (bench/heap-summary.ts).
import type { EndpointInfo, EndpointSliceInfo, Kind, ServiceInfo } from '../../common/types.js';
import { Interner } from '../../common/watch/fields.js';

const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/** A Service as DNS reads it: labels and selector are never looked at. */
export function dnsService(s: ServiceInfo): ServiceInfo {
  if (s.selector === undefined && Object.keys(s.labels).length === 0) return s;
  const { selector: _selector, labels: _labels, ...rest } = s;
  return { ...rest, labels: NO_LABELS };
}

/** An endpoint as a headless Service's records need it: addresses, readiness and hostname (not its node, zone or hints). */
function dnsEndpoint(e: EndpointInfo): EndpointInfo {
  const out: { addresses: readonly string[]; ready: boolean; serving: boolean; terminating: boolean; hostname?: string } = { addresses: e.addresses, ready: e.ready, serving: e.serving, terminating: e.terminating };
  if (e.hostname !== undefined) out.hostname = e.hostname;
  return out;
}

/** A slice as DNS reads it; `headless` is whether its Service is headless now. */
export function dnsSlice(s: EndpointSliceInfo, headless: boolean): EndpointSliceInfo {
  const { triggerTimeMs: _t, labels: _l, ...rest } = s;
  return { ...rest, labels: NO_LABELS, endpoints: headless ? Array.from(s.endpoints, dnsEndpoint) : [] };
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

/** A Service as received by a DNS thread, at its smallest (see above). */
export function receivedService(v: ServiceInfo): ServiceInfo {
  const out = {
    namespace: str(v.namespace),
    name: v.name,
    uid: v.uid,
    type: str(v.type),
    clusterIPs: v.clusterIPs.length === 0 ? NO_LIST : v.clusterIPs,
    headless: v.headless,
    ipFamilies: list(v.ipFamilies),
    ports: list(v.ports),
    externalIPs: list(v.externalIPs),
    loadBalancerIPs: list(v.loadBalancerIPs),
    loadBalancerSourceRanges: list(v.loadBalancerSourceRanges),
    externalTrafficPolicy: str(v.externalTrafficPolicy),
    internalTrafficPolicy: str(v.internalTrafficPolicy),
    sessionAffinity: str(v.sessionAffinity),
    sessionAffinityTimeoutSeconds: v.sessionAffinityTimeoutSeconds,
    publishNotReadyAddresses: v.publishNotReadyAddresses,
    labels: NO_LABELS,
  } as { -readonly [K in keyof ServiceInfo]: ServiceInfo[K] };
  if (v.selector !== undefined) out.selector = v.selector;
  if (v.externalName !== undefined) out.externalName = v.externalName;
  if (v.healthCheckNodePort !== undefined) out.healthCheckNodePort = v.healthCheckNodePort;
  if (v.trafficDistribution !== undefined) out.trafficDistribution = v.trafficDistribution;
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
