// The Service allocator the sandbox installs as an admission hook on the fake API server: it does
// what the real API server's Service REST storage does on create/update. Cluster IPs come from the
// service CIDR, node ports from 30000-32767, and a duplicate of either is a 422 Invalid, so a
// client sees exactly the errors a real cluster gives.
import { ApiError, invalid } from './apiserver/errors.js';
import type { AdmitOp, AdmitFn } from './apiserver/store.js';
import type { KubeObject } from './apiserver/resources.js';
import { allocateServiceIP, isServiceIPInRange } from './ipam.js';

export const NODE_PORT_MIN = 30000;
export const NODE_PORT_MAX = 32767;

export interface AllocatorOptions {
  readonly serviceCIDR: string;
  /** Random source in [0, n); injected so tests are deterministic. */
  readonly pick?: (n: number) => number;
}

interface PortSpec {
  name?: string;
  protocol?: string;
  port?: number;
  targetPort?: number | string;
  nodePort?: number;
  [k: string]: unknown;
}

interface ServiceSpec {
  type?: string;
  clusterIP?: string;
  clusterIPs?: string[];
  ports?: PortSpec[];
  externalTrafficPolicy?: string;
  internalTrafficPolicy?: string;
  healthCheckNodePort?: number;
  sessionAffinity?: string;
  ipFamilies?: string[];
  ipFamilyPolicy?: string;
  [k: string]: unknown;
}

const specOf = (o: KubeObject | undefined): ServiceSpec => (o?.spec && typeof o.spec === 'object' ? (o.spec as ServiceSpec) : {});
const keyOf = (o: KubeObject): string => `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;

/** Every cluster IP and node port in use by Services other than `self`. */
export function usedResources(services: readonly KubeObject[], self: string): { ips: Map<string, string>; ports: Map<number, string> } {
  const ips = new Map<string, string>();
  const ports = new Map<number, string>();
  for (const s of services) {
    const k = keyOf(s);
    if (k === self) continue;
    const spec = specOf(s);
    for (const ip of spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])) if (ip && ip !== 'None') ips.set(ip, k);
    for (const p of spec.ports ?? []) if (p.nodePort) ports.set(p.nodePort, k);
    if (spec.healthCheckNodePort) ports.set(spec.healthCheckNodePort, k);
  }
  return { ips, ports };
}

/**
 * Returns the Service with defaults filled and addresses allocated, or throws a 422 ApiError.
 * `old` is the stored object on UPDATE: its allocations are kept and may not be changed.
 */
export function allocateService(op: AdmitOp, svc: KubeObject, old: KubeObject | undefined, others: readonly KubeObject[], opts: AllocatorOptions): KubeObject {
  const name = svc.metadata.name ?? '';
  const bad = (field: string, why: string): ApiError => invalid('Service', name, field, why);
  const spec: ServiceSpec = { ...specOf(svc) };
  const prev = op === 'UPDATE' ? specOf(old) : undefined;
  const used = usedResources(others, keyOf(svc));
  const type = spec.type ?? 'ClusterIP';
  if (!['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'].includes(type)) throw bad('spec.type', `Unsupported value: "${type}"`);
  spec.type = type;

  if (type === 'ExternalName') {
    delete spec.clusterIP;
    delete spec.clusterIPs;
  } else {
    spec.sessionAffinity ??= 'None';
    spec.internalTrafficPolicy ??= 'Cluster';
    const want = spec.clusterIP || spec.clusterIPs?.[0] || prev?.clusterIP || '';
    if (prev?.clusterIP && want !== prev.clusterIP) throw bad('spec.clusterIPs[0]', 'Invalid value: field is immutable');
    let ip = want;
    if (ip === '') {
      const got = allocateServiceIP(opts.serviceCIDR, new Set(used.ips.keys()), opts.pick);
      if (!got) throw new ApiError(500, 'InternalError', `Internal error occurred: failed to allocate a serviceIP: range is full`);
      ip = got;
    } else if (ip !== 'None') {
      if (!isServiceIPInRange(opts.serviceCIDR, ip)) {
        throw bad('spec.clusterIPs', `Invalid value: ["${ip}"]: failed to allocate IP ${ip}: the provided IP (${ip}) is not in the valid range. The range of valid IPs is ${opts.serviceCIDR}`);
      }
      const owner = used.ips.get(ip);
      if (owner) throw bad('spec.clusterIPs', `Invalid value: ["${ip}"]: failed to allocate IP ${ip}: provided IP is already allocated`);
    }
    spec.clusterIP = ip;
    spec.clusterIPs = [ip];
    if (ip !== 'None') {
      spec.ipFamilies ??= ['IPv4'];
      spec.ipFamilyPolicy ??= 'SingleStack';
    }
  }

  const wantsNodePorts = type === 'NodePort' || type === 'LoadBalancer';
  const taken = new Set(used.ports.keys());
  const claim = (port: number, field: string): number => {
    if (port < NODE_PORT_MIN || port > NODE_PORT_MAX) throw bad(field, `Invalid value: ${port}: provided port is not in the valid range. The range of valid ports is ${NODE_PORT_MIN}-${NODE_PORT_MAX}`);
    if (taken.has(port)) throw bad(field, `Invalid value: ${port}: provided port is already allocated`);
    taken.add(port);
    return port;
  };
  const fresh = (field: string): number => {
    const span = NODE_PORT_MAX - NODE_PORT_MIN + 1;
    const start = (opts.pick ?? ((n: number) => Math.floor(Math.random() * n)))(span);
    for (let i = 0; i < span; i++) {
      const p = NODE_PORT_MIN + ((start + i) % span);
      if (!taken.has(p)) return claim(p, field);
    }
    throw bad(field, 'node port range is full');
  };

  const ports = (spec.ports ?? []).map((p) => ({ ...p }));
  // A port given explicitly is claimed before any is picked, so a pick never steals it.
  ports.forEach((p, i) => {
    p.protocol ??= 'TCP';
    if (type !== 'ExternalName') p.targetPort ??= p.port;
    if (!wantsNodePorts) delete p.nodePort;
    else if (p.nodePort) claim(p.nodePort, `spec.ports[${i}].nodePort`);
  });
  if (wantsNodePorts) {
    ports.forEach((p, i) => {
      if (p.nodePort) return;
      const before = prev?.ports?.find((q) => q.port === p.port && (q.protocol ?? 'TCP') === p.protocol && q.nodePort);
      p.nodePort = before?.nodePort && !taken.has(before.nodePort) ? claim(before.nodePort, `spec.ports[${i}].nodePort`) : fresh(`spec.ports[${i}].nodePort`);
    });
    spec.externalTrafficPolicy ??= 'Cluster';
  } else delete spec.externalTrafficPolicy;
  spec.ports = ports;

  if (type === 'LoadBalancer' && spec.externalTrafficPolicy === 'Local') {
    if (spec.healthCheckNodePort) spec.healthCheckNodePort = claim(spec.healthCheckNodePort, 'spec.healthCheckNodePort');
    else spec.healthCheckNodePort = prev?.healthCheckNodePort && !taken.has(prev.healthCheckNodePort) ? claim(prev.healthCheckNodePort, 'spec.healthCheckNodePort') : fresh('spec.healthCheckNodePort');
  } else delete spec.healthCheckNodePort;

  return { ...svc, spec };
}

/** The admission hook: `list` returns the stored Services (the store's current view). */
export function serviceAdmission(list: () => readonly KubeObject[], opts: AllocatorOptions): AdmitFn {
  return (op, obj, old) => {
    if (op === 'DELETE') return undefined;
    return allocateService(op, obj, old, list(), opts);
  };
}
