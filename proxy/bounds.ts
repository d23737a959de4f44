// Upper bounds of what a full sync will write, known before any Service is computed. A full sync
// sizes its big nft sets first and only then streams elements into them while the desired state
// is still being computed Service by Service (proxier.ts), so the sizes cannot wait for the
// ServicePorts. The bounds come from the raw objects in one cheap pass: they may overshoot
// (invalid entries, unmatched slice ports, duplicates), never undershoot.
import type { EndpointSliceInfo, ServiceInfo } from '../common/types.js';
import { familyOf, ignoredService } from './desired.js';
import type { Family, L4, ServicePort } from './model.js';

export interface FamilyBounds {
  /** Service ports with a cluster IP of this family (cluster-ips elements). */
  clusterIPs: number;
  /** Dispatch keys: (cluster, external or load-balancer IP, port) pairs. */
  keys: number;
  /** Endpoint elements per protocol (cluster and node-local lists). */
  endpoints: Record<L4, number>;
}

export type Bounds = Record<Family, FamilyBounds>;

const PROTOCOLS: Readonly<Record<string, L4>> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

function emptyBounds(): Bounds {
  const fam = (): FamilyBounds => ({ clusterIPs: 0, keys: 0, endpoints: { tcp: 0, udp: 0, sctp: 0 } });
  return { 4: fam(), 6: fam() };
}

/** From the Services and all EndpointSlices as the watch cache holds them (one pass over each). */
export function boundsOfObjects(services: Iterable<ServiceInfo>, slices: Iterable<EndpointSliceInfo>): Bounds {
  // Endpoints per Service and address family, from the slices' service-name label.
  const eps = new Map<string, [v4: number, v6: number]>();
  for (const s of slices) {
    if (s.addressType === 'FQDN') continue;
    const key = `${s.namespace}/${s.serviceName}`;
    let n = eps.get(key);
    if (!n) eps.set(key, (n = [0, 0]));
    n[s.addressType === 'IPv4' ? 0 : 1] += s.endpoints.length;
  }
  const b = emptyBounds();
  for (const svc of services) {
    if (ignoredService(svc)) continue;
    const families = new Set<Family>();
    for (const ip of svc.clusterIPs) {
      const f = familyOf(ip);
      if (f !== undefined) families.add(f);
    }
    if (families.size === 0) continue;
    const counts = eps.get(`${svc.namespace}/${svc.name}`) ?? [0, 0];
    const extra = svc.externalIPs.length + svc.loadBalancerIPs.length;
    // eTP Local keeps a second, node-local endpoint list.
    const lists = svc.externalTrafficPolicy === 'Local' ? 2 : 1;
    for (const f of families) {
      const n = counts[f === 4 ? 0 : 1];
      const fb = b[f];
      for (const p of svc.ports) {
        const proto = PROTOCOLS[p.protocol];
        if (!proto) continue;
        fb.clusterIPs++;
        fb.keys += 1 + extra;
        fb.endpoints[proto] += n * lists;
      }
    }
  }
  return b;
}

/** Exact counts from ServicePorts already computed (callers that have them all). */
export function boundsOfPorts(services: ReadonlyMap<string, readonly ServicePort[]>): Bounds {
  const b = emptyBounds();
  for (const ports of services.values()) {
    for (const sp of ports) {
      const fb = b[sp.family];
      fb.clusterIPs += sp.clusterIPs.length;
      fb.keys += sp.clusterIPs.length + sp.externalIPs.length + sp.loadBalancerIPs.length;
      fb.endpoints[sp.protocol] += sp.clusterEndpoints.length + sp.localEndpoints.length;
    }
  }
  return b;
}
