// Pure desired state: one Service, its EndpointSlices and the node -> validated ServicePorts.
// No I/O and no clock, so every rule about which endpoint receives traffic is unit-tested here.
import { isIP } from 'node:net';
import type { EndpointSliceInfo, ServiceInfo } from '../common/types.js';
import { ENDPOINT_READY, ENDPOINT_SERVING, ENDPOINT_TERMINATING, ENDPOINT_WHOLE, PackedEndpoints } from '../common/watch/packed-endpoints.js';
import type { Endpoint, Family, L4, NodeContext, Problem, ServicePort } from './model.js';

export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name';

export interface ServiceResult {
  readonly ports: ServicePort[];
  readonly problems: Problem[];
}

const PROTOCOLS: Record<string, L4> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

export function familyOf(ip: string): Family | undefined {
  if (isDottedQuad(ip)) return 4;
  const f = isIP(ip);
  return f === 4 ? 4 : f === 6 ? 6 : undefined;
}

/**
 * The common case without net.isIP's regular expression: a full sync checks every endpoint
 * address (100,000 at 10,000 Services). Anything unusual falls through to isIP.
 */
function isDottedQuad(s: string): boolean {
  if (s.length < 7 || s.length > 15) return false;
  let parts = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i === s.length ? 46 : s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || value > 255) return false;
      parts++;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      // No leading zeros: isIP rejects "010.1.1.1" too.
      if (digits === 1 && value === 0) return false;
      value = value * 10 + (c - 48);
      digits++;
    } else return false;
  }
  return parts === 4;
}

function validPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
}

export function validCidr(s: string, family?: Family): boolean {
  const m = /^(.+)\/(\d{1,3})$/.exec(s);
  if (!m) return false;
  const f = familyOf(m[1]!);
  if (f === undefined || (family !== undefined && f !== family)) return false;
  return Number(m[2]) <= (f === 4 ? 32 : 128);
}

/** Services the proxy leaves alone entirely (not an error). */
export function ignoredService(svc: ServiceInfo): boolean {
  return svc.type === 'ExternalName' || svc.headless || svc.clusterIPs.length === 0 || SERVICE_PROXY_NAME_LABEL in svc.labels;
}

/**
 * Builds the ServicePorts of one Service. Malformed parts are dropped with a Problem; a Service
 * with no valid cluster IP or port yields nothing, and never affects other Services.
 */
export function desiredService(svc: ServiceInfo, slices: readonly EndpointSliceInfo[], node: NodeContext): ServiceResult {
  const problems: Problem[] = [];
  const key = `${svc.namespace}/${svc.name}`;
  if (ignoredService(svc)) return { ports: [], problems };
  const bad = (reason: string): void => void problems.push({ object: `service ${key}`, reason });

  const byFamily = new Map<Family, string>();
  for (const ip of svc.clusterIPs) {
    const f = familyOf(ip);
    if (f === undefined) bad(`invalid cluster IP ${JSON.stringify(ip)}`);
    else if (!byFamily.has(f)) byFamily.set(f, ip);
  }
  if (byFamily.size === 0) return { ports: [], problems };

  const ips = (list: readonly string[], what: string): string[] =>
    list.filter((ip) => {
      if (familyOf(ip) !== undefined) return true;
      bad(`invalid ${what} ${JSON.stringify(ip)}`);
      return false;
    });
  const externalIPs = ips(svc.externalIPs, 'external IP');
  const lbIPs = svc.type === 'LoadBalancer' ? ips(svc.loadBalancerIPs, 'load balancer IP') : [];
  const ranges = svc.loadBalancerSourceRanges.filter((r) => {
    if (validCidr(r.trim())) return true;
    bad(`invalid loadBalancerSourceRange ${JSON.stringify(r)}`);
    return false;
  });
  const hcPort = svc.externalTrafficPolicy === 'Local' && validPort(svc.healthCheckNodePort) ? svc.healthCheckNodePort : undefined;

  const ports: ServicePort[] = [];
  const seen = new Set<string>();
  for (const p of svc.ports) {
    const proto = PROTOCOLS[p.protocol];
    if (!proto) {
      bad(`port ${p.name || p.port}: unsupported protocol ${JSON.stringify(p.protocol)}`);
      continue;
    }
    if (!validPort(p.port)) {
      bad(`port ${JSON.stringify(p.name)}: invalid port ${JSON.stringify(p.port)}`);
      continue;
    }
    if (seen.has(`${proto}/${p.port}`)) {
      bad(`duplicate port ${proto}/${p.port}`);
      continue;
    }
    seen.add(`${proto}/${p.port}`);
    let nodePort: number | undefined;
    if (p.nodePort !== undefined && svc.type !== 'ClusterIP') {
      if (validPort(p.nodePort)) nodePort = p.nodePort;
      else bad(`port ${p.name || p.port}: invalid nodePort ${JSON.stringify(p.nodePort)}`);
    }
    for (const [family, clusterIP] of byFamily) {
      const eps = collectEndpoints(slices, family, p.name, p.protocol, svc.publishNotReadyAddresses, node.nodeName, problems);
      const chosen = chooseEndpoints(eps, svc, node);
      ports.push({
        id: `${key}/${proto}/${p.name || p.port}`,
        serviceKey: key,
        family,
        protocol: proto,
        port: p.port,
        clusterIPs: [clusterIP],
        ...(nodePort !== undefined ? { nodePort } : {}),
        externalIPs: ofFamily(externalIPs, family),
        loadBalancerIPs: ofFamily(lbIPs, family),
        sourceRanges: ofFamily(ranges, family),
        externalLocal: svc.externalTrafficPolicy === 'Local' && svc.type !== 'ClusterIP',
        internalLocal: svc.internalTrafficPolicy === 'Local',
        ...(svc.sessionAffinity === 'ClientIP' ? { affinitySeconds: svc.sessionAffinityTimeoutSeconds > 0 ? svc.sessionAffinityTimeoutSeconds : 10800 } : {}),
        ...(hcPort !== undefined ? { healthCheckNodePort: hcPort } : {}),
        ...chosen,
      });
    }
  }
  return { ports, problems };
}

// Shared by the many ports without such addresses: a full sync keeps 10,000 ServicePorts.
const NO_ADDRESSES: readonly string[] = Object.freeze([]);
const NO_ENDPOINTS: readonly Endpoint[] = Object.freeze([]);

/** The addresses (or CIDRs) of one family. */
function ofFamily(list: readonly string[], family: Family): readonly string[] {
  if (list.length === 0) return NO_ADDRESSES;
  const out = list.filter((a) => familyOf(a.split('/')[0]!) === family);
  return out.length ? out : NO_ADDRESSES;
}

/** An endpoint with its conditions; `ep` is built once and shared by every list that keeps it. */
interface Candidate {
  readonly ep: Endpoint;
  readonly ip: string;
  readonly port: number;
  readonly local: boolean;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly hints?: readonly string[];
}

function collectEndpoints(
  slices: readonly EndpointSliceInfo[],
  family: Family,
  portName: string,
  protocol: string,
  publishNotReady: boolean,
  nodeName: string,
  problems: Problem[],
): Candidate[] {
  const out: Candidate[] = [];
  const addressType = family === 4 ? 'IPv4' : 'IPv6';
  for (const s of slices) {
    if (s.addressType !== addressType) continue;
    const port = s.ports.find((sp) => sp.name === portName && sp.protocol === protocol);
    if (!port) continue;
    if (!validPort(port.port)) {
      problems.push({ object: `endpointslice ${s.namespace}/${s.name}`, reason: `invalid port ${JSON.stringify(port.port)}` });
      continue;
    }
    const eps = s.endpoints;
    const invalid = (ip: string): void => void problems.push({ object: `endpointslice ${s.namespace}/${s.name}`, reason: `invalid address ${JSON.stringify(ip)}` });
    if (eps instanceof PackedEndpoints) {
      // The watch cache's form: read in place, no endpoint object built (500,000 at 50,000 Services).
      for (let i = 0; i < eps.length; i++) {
        const c = eps.conditionsAt(i);
        if (c === ENDPOINT_WHOLE) {
          const ep = eps.at(i)!;
          const ip = ep.addresses[0];
          if (ip === undefined) continue;
          if (familyOf(ip) !== family) invalid(ip);
          else out.push(candidate(ip, port.port, ep.ready, ep.serving, ep.terminating, ep.nodeName, ep.hintsForZones, publishNotReady, nodeName));
          continue;
        }
        const ip = eps.addressAt(i);
        if ((eps.isIPv4At(i) ? 4 : familyOf(ip)) !== family) {
          invalid(ip);
          continue;
        }
        out.push(candidate(ip, port.port, (c & ENDPOINT_READY) !== 0, (c & ENDPOINT_SERVING) !== 0, (c & ENDPOINT_TERMINATING) !== 0, eps.nodeNameAt(i), undefined, publishNotReady, nodeName));
      }
      continue;
    }
    for (const ep of eps) {
      const ip = ep.addresses[0];
      if (ip === undefined) continue;
      if (familyOf(ip) !== family) invalid(ip);
      else out.push(candidate(ip, port.port, ep.ready, ep.serving, ep.terminating, ep.nodeName, ep.hintsForZones, publishNotReady, nodeName));
    }
  }
  return firstOfEach(sortedByAddress(out));
}

/**
 * Drops repeated address and port pairs, keeping the first listed: the sort is stable, so
 * repeats are adjacent and in their original order (no key string per endpoint).
 */
function firstOfEach(list: Candidate[]): Candidate[] {
  let w = 1;
  for (let i = 1; i < list.length; i++) {
    const c = list[i]!;
    const prev = list[w - 1]!;
    if (c.ip === prev.ip && c.port === prev.port) continue;
    list[w++] = c;
  }
  if (list.length > 1) list.length = w;
  return list;
}

/** Sorted by address then port; usually already sorted (slices list pods in a stable order). */
function sortedByAddress(list: Candidate[]): Candidate[] {
  const before = (a: Candidate, b: Candidate): boolean => (a.ip === b.ip ? a.port < b.port : a.ip < b.ip);
  for (let i = 1; i < list.length; i++) if (before(list[i]!, list[i - 1]!)) return list.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
  return list;
}

function candidate(
  ip: string,
  port: number,
  ready: boolean,
  serving: boolean,
  terminating: boolean,
  epNode: string | undefined,
  hints: readonly string[] | undefined,
  publishNotReady: boolean,
  nodeName: string,
): Candidate {
  const local = epNode !== undefined && epNode === nodeName;
  const ep: Endpoint = epNode === undefined ? { ip, port, local } : { ip, port, local, nodeName: epNode };
  // One literal shape whether or not hints are set (a spread made two).
  if (hints === undefined) return { ep, ip, port, local, ready: publishNotReady || ready, serving: publishNotReady || serving, terminating };
  return { ep, ip, port, local, ready: publishNotReady || ready, serving: publishNotReady || serving, terminating, hints };
}

/** Ready endpoints win; only when none is ready do serving-but-terminating ones take traffic. */
function usable(list: readonly Candidate[]): Endpoint[] {
  const ready: Endpoint[] = [];
  for (const e of list) if (e.ready) ready.push(e.ep);
  if (ready.length > 0) return ready;
  const out: Endpoint[] = [];
  for (const e of list) if (e.serving && e.terminating) out.push(e.ep);
  return out;
}

/**
 * Topology hints are used only when every ready endpoint carries them and some name our zone;
 * otherwise all endpoints are used (the fallback kube-proxy applies).
 */
function topologyFilter(list: readonly Candidate[], svc: ServiceInfo, zone: string | undefined): readonly Candidate[] {
  if (zone === undefined) return list;
  const wantsHints = svc.trafficDistribution === 'PreferClose' || list.some((e) => e.hints !== undefined);
  if (!wantsHints) return list;
  const ready = list.filter((e) => e.ready);
  if (ready.length === 0 || ready.some((e) => !e.hints || e.hints.length === 0)) return list;
  const inZone = list.filter((e) => e.hints?.includes(zone));
  return inZone.some((e) => e.ready) ? inZone : list;
}

function chooseEndpoints(all: readonly Candidate[], svc: ServiceInfo, node: NodeContext): Pick<ServicePort, 'hasEndpoints' | 'clusterEndpoints' | 'localEndpoints'> {
  const needLocal = svc.externalTrafficPolicy === 'Local' && svc.type !== 'ClusterIP';
  const iLocal = svc.internalTrafficPolicy === 'Local';
  const local = needLocal || iLocal ? usable(all.filter((e) => e.local)) : [];
  const clusterEndpoints = iLocal ? local : usable(topologyFilter(all, svc, node.zone));
  const hasEndpoints = clusterEndpoints.length > 0 || all.some((e) => e.ready || (e.serving && e.terminating));
  return { hasEndpoints, clusterEndpoints, localEndpoints: needLocal && local.length ? local : NO_ENDPOINTS };
}
