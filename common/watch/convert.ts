// The informer boundary: raw API JSON in, the small read-only types of common/types.ts out. Only
// the fields components use survive, so 10,000 Services cost what those fields cost. Anything
// malformed throws ConvertError naming the field, and the informer skips that one object.
import { isIP } from 'node:net';
import type { EndpointInfo, EndpointPort, EndpointSliceInfo, IPFamily, Kind, KindTypes, NamespaceInfo, NodeInfo, PodInfo, ServiceInfo, ServicePort, ServiceType } from '../types.js';
import { objectKey } from '../types.js';
import { toNetworkPolicy, toPolicyPod } from './convert-policy.js';
import { PackedEndpoints } from './packed-endpoints.js';
import { arr, ConvertError, defined, fail, int, Interner, isObj, obj, optBool, optInt, optStr, protocol, str, strArr, strMap, type Json } from './fields.js';

export { ConvertError };


export interface Converted<K extends Kind> {
  readonly key: string;
  readonly value: KindTypes[K];
}

/** What identifies a raw object in logs, as far as it can be read. */
export function describe(raw: unknown): { namespace?: string; name?: string } {
  const m = isObj(raw) && isObj(raw.metadata) ? raw.metadata : {};
  const out: { namespace?: string; name?: string } = {};
  if (typeof m.namespace === 'string') out.namespace = m.namespace;
  if (typeof m.name === 'string') out.name = m.name;
  return out;
}

/** The cache key of a raw object (enough for a DELETED event), or undefined when it has no name. */
export function rawKey(kind: Kind, raw: unknown): string | undefined {
  const { namespace, name } = describe(raw);
  if (!name) return undefined;
  return NAMESPACED[kind] ? (namespace ? objectKey({ namespace, name }) : undefined) : name;
}

const NAMESPACED: Record<Kind, boolean> = {
  nodes: false,
  namespaces: false,
  services: true,
  endpointslices: true,
  pods: true,
  networkpolicies: true,
  policypods: true,
  clusternetworkpolicies: false,
  adminnetworkpolicies: false,
  baselineadminnetworkpolicies: false,
};

/** Converts one raw object; throws ConvertError when it is malformed. */
export function convert<K extends Kind>(kind: K, raw: unknown): Converted<K> {
  if (!isObj(raw)) throw new ConvertError('(object)', 'not a JSON object');
  const meta = obj(raw.metadata, 'metadata');
  const name = str(meta.name, 'metadata.name');
  if (name === '') throw new ConvertError('metadata.name', 'empty');
  const namespace = NAMESPACED[kind] ? str(meta.namespace, 'metadata.namespace') : undefined;
  if (namespace === '') throw new ConvertError('metadata.namespace', 'empty');
  const value = CONVERTERS[kind](raw, meta, name, namespace ?? '') as KindTypes[K];
  return { key: objectKey({ namespace, name }), value };
}

const CONVERTERS: { [K in Kind]: Converter<K> } = {
  nodes: toNode,
  services: toService,
  endpointslices: toEndpointSlice,
  namespaces: (_raw, meta, name): NamespaceInfo => ({ name, labels: strMap(meta.labels, 'metadata.labels') }),
  pods: toPod,
  networkpolicies: toNetworkPolicy,
  policypods: toPolicyPod,
  clusternetworkpolicies: unregistered('clusternetworkpolicies'),
  adminnetworkpolicies: unregistered('adminnetworkpolicies'),
  baselineadminnetworkpolicies: unregistered('baselineadminnetworkpolicies'),
};

type Converter<K extends Kind> = (raw: Json, meta: Json, name: string, namespace: string) => KindTypes[K];

/** A kind whose parsing belongs to a component that has not registered it: every object is refused, loudly. */
function unregistered(kind: Kind): () => never {
  return () => {
    throw new ConvertError('(kind)', `no converter registered for ${kind}`);
  };
}

/**
 * Lets a component supply the converter of a kind it owns (the network-policy-api kinds: policy's
 * own parser and validation). The agent's composition root registers them; common/ imports no
 * component.
 */
export function registerConverter<K extends Kind>(kind: K, fn: Converter<K>): void {
  (CONVERTERS as Record<Kind, unknown>)[kind] = fn;
}

function toNode(raw: Json, meta: Json, name: string): NodeInfo {
  const spec = obj(raw.spec, 'spec');
  const status = obj(raw.status, 'status');
  const labels = strMap(meta.labels, 'metadata.labels');
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(strMap(meta.annotations, 'metadata.annotations'))) {
    if (/^([a-z0-9.-]+\.)?skiff\.io\//.test(k) || k.startsWith('flannel.alpha.coreos.com/')) annotations[k] = v;
  }
  const podCIDRs = strArr(spec.podCIDRs, 'spec.podCIDRs');
  const podCIDR = optStr(spec.podCIDR, 'spec.podCIDR');
  const addresses = arr(status.addresses, 'status.addresses').map((a, i) => {
    const o = obj(a, `status.addresses[${i}]`);
    return { type: str(o.type, `status.addresses[${i}].type`), address: str(o.address, `status.addresses[${i}].address`) };
  });
  return defined({
    name,
    uid: optStr(meta.uid, 'metadata.uid') ?? '',
    podCIDRs: podCIDRs.length > 0 ? podCIDRs : podCIDR ? [podCIDR] : [],
    addresses,
    labels,
    annotations,
    zone: labels['topology.kubernetes.io/zone'],
    ready: conditionTrue(status.conditions, 'Ready'),
  });
}

const SERVICE_TYPES = new Set<ServiceType>(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']);

function toService(raw: Json, meta: Json, name: string, namespace: string): ServiceInfo {
  const spec = obj(raw.spec, 'spec');
  const status = obj(raw.status, 'status');
  const type = (optStr(spec.type, 'spec.type') ?? 'ClusterIP') as ServiceType;
  if (!SERVICE_TYPES.has(type)) throw new ConvertError('spec.type', `unknown type "${type}"`);
  const clusterIP = optStr(spec.clusterIP, 'spec.clusterIP');
  let rawIPs = strArr(spec.clusterIPs, 'spec.clusterIPs');
  if (rawIPs.length === 0 && clusterIP) rawIPs = [clusterIP];
  const headless = type !== 'ExternalName' && rawIPs[0] === 'None';
  const clusterIPs = type === 'ExternalName' ? [] : rawIPs.filter((ip) => ip !== 'None' && ip !== '');
  for (const ip of clusterIPs) if (isIP(ip) === 0) throw new ConvertError('spec.clusterIPs', `"${ip}" is not an IP`);
  let ipFamilies = strArr(spec.ipFamilies, 'spec.ipFamilies') as IPFamily[];
  if (ipFamilies.length === 0) ipFamilies = clusterIPs.map((ip) => (isIP(ip) === 6 ? 'IPv6' : 'IPv4'));
  const ports = internServicePorts(arr(spec.ports, 'spec.ports').map((p, i): ServicePort => {
    const f = `spec.ports[${i}]`;
    const o = obj(p, f);
    const port = int(o.port, `${f}.port`);
    const tp = o.targetPort;
    const targetPort = tp === undefined || tp === null ? port : typeof tp === 'number' || typeof tp === 'string' ? tp : fail(`${f}.targetPort`, 'must be a number or a name');
    return defined({
      name: optStr(o.name, `${f}.name`) ?? '',
      protocol: protocol(o.protocol, `${f}.protocol`),
      port,
      targetPort,
      nodePort: optInt(o.nodePort, `${f}.nodePort`) || undefined,
      appProtocol: optStr(o.appProtocol, `${f}.appProtocol`),
    });
  }));
  const lb = obj(status.loadBalancer, 'status.loadBalancer');
  const loadBalancerIPs = arr(lb.ingress, 'status.loadBalancer.ingress')
    .map((g, i) => optStr(obj(g, `status.loadBalancer.ingress[${i}]`).ip, `status.loadBalancer.ingress[${i}].ip`))
    .filter((ip): ip is string => !!ip);
  const affinity = optStr(spec.sessionAffinity, 'spec.sessionAffinity') === 'ClientIP' ? 'ClientIP' : 'None';
  const clientIP = obj(obj(spec.sessionAffinityConfig, 'spec.sessionAffinityConfig').clientIP, 'spec.sessionAffinityConfig.clientIP');
  const selector = spec.selector === undefined || spec.selector === null ? undefined : strMap(spec.selector, 'spec.selector');
  return defined({
    namespace,
    name,
    uid: optStr(meta.uid, 'metadata.uid') ?? '',
    type,
    clusterIPs,
    headless,
    ipFamilies: sharedList(ipFamilies),
    ports,
    selector: selector && sharedMap(selector),
    externalIPs: sharedList(strArr(spec.externalIPs, 'spec.externalIPs')),
    loadBalancerIPs: sharedList(loadBalancerIPs),
    loadBalancerSourceRanges: sharedList(strArr(spec.loadBalancerSourceRanges, 'spec.loadBalancerSourceRanges')),
    externalName: type === 'ExternalName' ? optStr(spec.externalName, 'spec.externalName') : undefined,
    externalTrafficPolicy: optStr(spec.externalTrafficPolicy, 'spec.externalTrafficPolicy') === 'Local' ? 'Local' : 'Cluster',
    internalTrafficPolicy: optStr(spec.internalTrafficPolicy, 'spec.internalTrafficPolicy') === 'Local' ? 'Local' : 'Cluster',
    healthCheckNodePort: optInt(spec.healthCheckNodePort, 'spec.healthCheckNodePort') || undefined,
    sessionAffinity: affinity,
    sessionAffinityTimeoutSeconds: optInt(clientIP.timeoutSeconds, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds') ?? 10800,
    publishNotReadyAddresses: optBool(spec.publishNotReadyAddresses, 'spec.publishNotReadyAddresses') ?? false,
    trafficDistribution: optStr(spec.trafficDistribution, 'spec.trafficDistribution'),
    labels: sharedMap(strMap(meta.labels, 'metadata.labels')),
  }) as ServiceInfo;
}

const ADDRESS_TYPES = new Set(['IPv4', 'IPv6', 'FQDN']);

function toEndpointSlice(raw: Json, meta: Json, name: string, namespace: string): EndpointSliceInfo {
  const labels = strMap(meta.labels, 'metadata.labels');
  const addressType = str(raw.addressType, 'addressType');
  if (!ADDRESS_TYPES.has(addressType)) throw new ConvertError('addressType', `unknown address type "${addressType}"`);
  const ports = internEndpointPorts(
    arr(raw.ports, 'ports').map((p, i): EndpointPort => {
      const o = obj(p, `ports[${i}]`);
      return defined({
        name: optStr(o.name, `ports[${i}].name`) ?? '',
        port: optInt(o.port, `ports[${i}].port`) ?? 0,
        protocol: protocol(o.protocol, `ports[${i}].protocol`),
        appProtocol: optStr(o.appProtocol, `ports[${i}].appProtocol`),
      });
    }),
  );
  const endpoints = arr(raw.endpoints, 'endpoints').map((e, i): EndpointInfo => {
    const f = `endpoints[${i}]`;
    const o = obj(e, f);
    const cond = obj(o.conditions, `${f}.conditions`);
    // Unset conditions mean "unknown", which consumers must treat as ready (the EndpointSlice API).
    const ready = optBool(cond.ready, `${f}.conditions.ready`) ?? true;
    const hints = obj(o.hints, `${f}.hints`);
    const forZones = hints.forZones === undefined ? undefined : arr(hints.forZones, `${f}.hints.forZones`).map((z, j) => shared(str(obj(z, `${f}.hints.forZones[${j}]`).name, `${f}.hints.forZones[${j}].name`)));
    const nodeName = optStr(o.nodeName, `${f}.nodeName`);
    const zone = optStr(o.zone, `${f}.zone`);
    return endpointOf(
      strArr(o.addresses, `${f}.addresses`),
      ready,
      optBool(cond.serving, `${f}.conditions.serving`) ?? ready,
      optBool(cond.terminating, `${f}.conditions.terminating`) ?? false,
      optStr(o.hostname, `${f}.hostname`),
      nodeName === undefined ? undefined : shared(nodeName),
      zone === undefined ? undefined : shared(zone),
      forZones,
    );
  });
  const trigger = strMap(meta.annotations, 'metadata.annotations')['endpoints.kubernetes.io/last-change-trigger-time'];
  const triggerMs = trigger === undefined ? NaN : Date.parse(trigger);
  return defined({
    namespace,
    name,
    serviceName: labels['kubernetes.io/service-name'] ?? '',
    addressType: addressType as EndpointSliceInfo['addressType'],
    ports,
    endpoints: PackedEndpoints.of(endpoints),
    triggerTimeMs: Number.isFinite(triggerMs) ? triggerMs : undefined,
    labels,
  });
}

// Endpoints are most of the cache at scale (100,000 in 10,000 slices), so each one is built at
// its smallest: node names, zones and slice port lists shared, and the usual key sets written as
// literals, which keep every field inside the object (an object grown key by key, as defined()
// does, spills its fifth and later fields into a separate property array).
const strings = new Interner<string>(10_000);
const shared = (s: string): string => strings.get(s, s);
const endpointPortSets = new Interner<readonly EndpointPort[]>(10_000);
const NO_ENDPOINT_PORTS: readonly EndpointPort[] = [];

// A Service's lists are mostly empty or one of a few values (["IPv4"], no external IPs, one
// "http" port); its labels and selector are often empty. Those share one copy each.
const NO_STRINGS: readonly string[] = Object.freeze([]);
const NO_MAP: Readonly<Record<string, string>> = Object.freeze({});
const stringLists = new Interner<readonly string[]>(1_000);
const servicePortSets = new Interner<readonly ServicePort[]>(10_000);

function sharedList<T extends string>(xs: T[]): readonly T[] {
  if (xs.length === 0) return NO_STRINGS as readonly T[];
  return xs.length === 1 ? (stringLists.get(xs[0]!, xs) as readonly T[]) : xs;
}

function sharedMap(m: Record<string, string>): Readonly<Record<string, string>> {
  for (const _ in m) return m;
  return NO_MAP;
}

function internServicePorts(ports: ServicePort[]): readonly ServicePort[] {
  if (ports.length === 0) return NO_SERVICE_PORTS;
  let key = '';
  for (const p of ports) key += `${p.name}/${p.protocol}/${p.port}/${typeof p.targetPort}:${p.targetPort}/${p.nodePort ?? ''}/${p.appProtocol ?? ''},`;
  return servicePortSets.get(key, ports);
}
const NO_SERVICE_PORTS: readonly ServicePort[] = Object.freeze([]);

function internEndpointPorts(ports: EndpointPort[]): readonly EndpointPort[] {
  if (ports.length === 0) return NO_ENDPOINT_PORTS;
  let key = '';
  for (const p of ports) key += `${p.name}/${p.port}/${p.protocol}/${p.appProtocol ?? ''},`;
  return endpointPortSets.get(key, ports);
}

function endpointOf(addresses: string[], ready: boolean, serving: boolean, terminating: boolean, hostname?: string, nodeName?: string, zone?: string, hintsForZones?: string[]): EndpointInfo {
  if (hostname === undefined && hintsForZones === undefined) {
    if (zone === undefined) return nodeName === undefined ? { addresses, ready, serving, terminating } : { addresses, ready, serving, terminating, nodeName };
    if (nodeName !== undefined) return { addresses, ready, serving, terminating, nodeName, zone };
  }
  return defined({ addresses, ready, serving, terminating, hostname, nodeName, zone, hintsForZones });
}

function toPod(raw: Json, meta: Json, name: string, namespace: string): PodInfo {
  const spec = obj(raw.spec, 'spec');
  const status = obj(raw.status, 'status');
  let podIPs = arr(status.podIPs, 'status.podIPs').map((p, i) => str(obj(p, `status.podIPs[${i}]`).ip, `status.podIPs[${i}].ip`));
  const podIP = optStr(status.podIP, 'status.podIP');
  if (podIPs.length === 0 && podIP) podIPs = [podIP];
  return defined({
    namespace,
    name,
    uid: optStr(meta.uid, 'metadata.uid') ?? '',
    nodeName: optStr(spec.nodeName, 'spec.nodeName') ?? '',
    hostNetwork: optBool(spec.hostNetwork, 'spec.hostNetwork') ?? false,
    podIPs,
    phase: optStr(status.phase, 'status.phase') ?? '',
    ready: conditionTrue(status.conditions, 'Ready'),
    deleting: meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null,
    labels: strMap(meta.labels, 'metadata.labels'),
    hostname: optStr(spec.hostname, 'spec.hostname'),
    subdomain: optStr(spec.subdomain, 'spec.subdomain'),
  });
}

function conditionTrue(conditions: unknown, type: string): boolean {
  return arr(conditions, 'status.conditions').some((c) => isObj(c) && c.type === type && c.status === 'True');
}
