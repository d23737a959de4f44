// What a DNS thread is sent of the agent's cache: only what the zone index, autopath and the
// source ACL read, so the thread's heap does not hold a second copy of every endpoint. Only a
// headless Service's endpoints become DNS records (A/AAAA/SRV/PTR per endpoint); a ClusterIP
// Service answers with its VIPs, so its slices travel without endpoints. At 10,000 Services and
// 100,000 endpoints the thread's heap went from 74 MB to a few MB (bench/heap-summary.ts).
import type { EndpointInfo, EndpointSliceInfo, Kind, ServiceInfo } from '../../common/types.js';

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
  return { ...rest, labels: NO_LABELS, endpoints: headless ? s.endpoints.map(dnsEndpoint) : [] };
}

/** The key under which the proxy (proxy/proxier.ts) indexes slices by Service: shared, built once. */
export const SLICE_SERVICE_INDEX = 'service';
export const sliceService = (s: EndpointSliceInfo): readonly string[] => (s.serviceName ? [`${s.namespace}/${s.serviceName}`] : []);

/** Whether a Service change alters which of its slices' endpoints DNS needs. */
export function headlessChanged(kind: Kind, previous: unknown, current: unknown): boolean {
  if (kind !== 'services') return false;
  return ((previous as ServiceInfo | undefined)?.headless ?? false) !== ((current as ServiceInfo | undefined)?.headless ?? false);
}
