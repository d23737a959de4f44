// Object builders for tests and benches: the few fields that matter, defaults for the rest.
import type { EndpointInfo, EndpointSliceInfo, PodInfo, ServiceInfo } from '../../common/types.js';
import { MemoryCache } from '../../common/watch/store.js';
import { serviceInfo } from '../../test/support/objects.js';

export const service = serviceInfo;

export function endpoint(addresses: string[], o: Partial<EndpointInfo> = {}): EndpointInfo {
  return { addresses, ready: true, serving: true, terminating: false, ...o };
}

export function slice(ns: string, svcName: string, name: string, o: Partial<EndpointSliceInfo> = {}): EndpointSliceInfo {
  return { namespace: ns, name, serviceName: svcName, addressType: 'IPv4', ports: [], endpoints: [], labels: {}, ...o };
}

export function pod(ns: string, name: string, ips: string[], o: Partial<PodInfo> = {}): PodInfo {
  return { namespace: ns, name, uid: `uid-${name}`, nodeName: 'node-a', hostNetwork: false, podIPs: ips, phase: 'Running', ready: true, deleting: false, labels: {}, ...o };
}

/** A synced cache holding the given objects. */
export function cacheWith(objs: { services?: ServiceInfo[]; slices?: EndpointSliceInfo[]; namespaces?: string[]; pods?: PodInfo[] }): MemoryCache {
  const c = new MemoryCache();
  c.replace('services', new Map((objs.services ?? []).map((s) => [`${s.namespace}/${s.name}`, s])));
  c.replace('endpointslices', new Map((objs.slices ?? []).map((s) => [`${s.namespace}/${s.name}`, s])));
  c.replace('namespaces', new Map((objs.namespaces ?? []).map((n) => [n, { name: n, labels: {} }])));
  c.replace('pods', new Map((objs.pods ?? []).map((p) => [`${p.namespace}/${p.name}`, p])));
  return c;
}
