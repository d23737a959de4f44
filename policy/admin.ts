// Cluster-wide policy tiers from sig-network's network-policy-api: ClusterNetworkPolicy
// (policy.networking.k8s.io/v1alpha2: tier Admin or Baseline, priority 0-1000, actions Accept /
// Deny / Pass) and the older AdminNetworkPolicy / BaselineAdminNetworkPolicy (v1alpha1: Allow /
// Deny / Pass, `ports`), all converted into one model. Evaluation order for a connection end:
// Admin tier (by priority, then rule order; Accept and Deny are final, Pass skips to the next
// tier) -> NetworkPolicy (final for pods it isolates) -> Baseline tier -> allow.
import { toSelector } from './convert.js';
import { parseCidr } from './ipnet.js';
import type { AdminAction, AdminPeer, AdminPort, AdminPolicyInfo, AdminRule, ClusterPolicy, NamespacedPods } from '../common/types.js';
import { ConvertError } from '../common/watch/fields.js';
import type { Protocol } from './model.js';

// The shapes live in common/types.ts (the watch cache stores them); the parsing lives here.
export type { AdminAction, AdminPeer, AdminPort, AdminRule, ClusterPolicy, NamespacedPods, Tier } from '../common/types.js';

/** A node as an admin policy peer (`nodes` selector): its labels and addresses. */
export interface PolicyNodeInfo {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly addresses: readonly string[];
}

type Converted<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };
type Json = Record<string, unknown>;

class Invalid extends Error {}
function fail(field: string, why: string): never {
  throw new Invalid(`${field}: ${why}`);
}
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
function obj(v: unknown, field: string): Json {
  if (v === undefined || v === null) return {};
  return isObj(v) ? v : fail(field, 'must be an object');
}
function list(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : fail(field, 'must be a list');
}
function port(v: unknown, field: string): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) fail(field, 'must be an integer in 1-65535');
  return v as number;
}
function oneKey(o: Json, field: string, keys: readonly string[]): string {
  const set = keys.filter((k) => o[k] !== undefined && o[k] !== null);
  // The API says: a peer with no known field comes from a newer CRD; fail closed (refuse the policy).
  if (set.length !== 1) fail(field, `exactly one of ${keys.join(', ')} must be set`);
  return set[0]!;
}
function protocolOf(v: unknown, field: string): Protocol {
  const p = v === undefined || v === null ? 'TCP' : v;
  if (p !== 'TCP' && p !== 'UDP' && p !== 'SCTP') fail(field, `unknown protocol "${String(p)}"`);
  return p;
}

function namespacedPods(v: unknown, field: string): NamespacedPods {
  const o = obj(v, field);
  return { namespaceSelector: toSelector(o.namespaceSelector, `${field}.namespaceSelector`), podSelector: toSelector(o.podSelector, `${field}.podSelector`) };
}

function toPeer(v: unknown, field: string, egress: boolean): AdminPeer {
  const o = obj(v, field);
  const k = oneKey(o, field, egress ? ['namespaces', 'pods', 'networks', 'nodes', 'domainNames'] : ['namespaces', 'pods']);
  const f = `${field}.${k}`;
  switch (k) {
    case 'namespaces':
      return { namespaces: toSelector(o.namespaces, f) };
    case 'pods':
      return { pods: namespacedPods(o.pods, f) };
    case 'nodes':
      return { nodes: toSelector(o.nodes, f) };
    case 'networks':
      return {
        networks: list(o.networks, f).map((c, i) => {
          if (typeof c !== 'string' || !parseCidr(c)) fail(`${f}[${i}]`, `invalid CIDR "${String(c)}"`);
          return c;
        }),
      };
    default:
      return {
        domainNames: list(o.domainNames, f).map((d, i) => {
          if (typeof d !== 'string' || !/^(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$/.test(d)) fail(`${f}[${i}]`, `invalid domain name "${String(d)}"`);
          return d.toLowerCase().replace(/\.$/, '');
        }),
      };
  }
}

function range(v: unknown, field: string): { port: number; endPort: number } {
  const r = obj(v, field);
  const start = port(r.start, `${field}.start`);
  const end = port(r.end, `${field}.end`);
  if (start >= end) fail(field, 'start must be less than end');
  return { port: start, endPort: end };
}

/** v1alpha2 `protocols[]`: {tcp|udp|sctp: {destinationPort?: {number}|{range}}} or {destinationNamedPort}. */
function cnpPort(v: unknown, field: string): AdminPort {
  const o = obj(v, field);
  const k = oneKey(o, field, ['tcp', 'udp', 'sctp', 'destinationNamedPort']);
  if (k === 'destinationNamedPort') {
    if (typeof o[k] !== 'string' || !o[k]) fail(`${field}.${k}`, 'must be a port name');
    return { port: o[k] as string };
  }
  const protocol = k.toUpperCase() as Protocol;
  const dp = obj(o[k], `${field}.${k}`).destinationPort;
  if (dp === undefined || dp === null) return { protocol };
  const p = obj(dp, `${field}.${k}.destinationPort`);
  const which = oneKey(p, `${field}.${k}.destinationPort`, ['number', 'range']);
  if (which === 'number') return { protocol, port: port(p.number, `${field}.${k}.destinationPort.number`) };
  return { protocol, ...range(p.range, `${field}.${k}.destinationPort.range`) };
}

/** v1alpha1 `ports[]`: portNumber {protocol, port}, namedPort, portRange {protocol, start, end}. */
function anpPort(v: unknown, field: string): AdminPort {
  const o = obj(v, field);
  const k = oneKey(o, field, ['portNumber', 'namedPort', 'portRange']);
  if (k === 'namedPort') {
    if (typeof o[k] !== 'string' || !o[k]) fail(`${field}.${k}`, 'must be a port name');
    return { port: o[k] as string };
  }
  const p = obj(o[k], `${field}.${k}`);
  const protocol = protocolOf(p.protocol, `${field}.${k}.protocol`);
  if (k === 'portNumber') return { protocol, port: port(p.port, `${field}.${k}.port`) };
  return { protocol, ...range(p, `${field}.${k}`) };
}

function rules(spec: Json, dir: 'ingress' | 'egress', portsKey: 'protocols' | 'ports', actions: Record<string, AdminAction>): AdminRule[] {
  const peersKey = dir === 'ingress' ? 'from' : 'to';
  return list(spec[dir], `spec.${dir}`).map((r, i) => {
    const f = `spec.${dir}[${i}]`;
    const o = obj(r, f);
    const action = actions[String(o.action)];
    if (!action) fail(`${f}.action`, `unknown action "${String(o.action)}"`);
    const peers = list(o[peersKey], `${f}.${peersKey}`).map((p, j) => toPeer(p, `${f}.${peersKey}[${j}]`, dir === 'egress'));
    if (peers.length === 0) fail(`${f}.${peersKey}`, 'must have at least one peer');
    const ports = list(o[portsKey], `${f}.${portsKey}`).map((p, j) => (portsKey === 'protocols' ? cnpPort : anpPort)(p, `${f}.${portsKey}[${j}]`));
    if (peers.some((p) => p.domainNames) && action !== 'Accept') fail(f, 'domainNames peers need the Accept action');
    if (peers.some((p) => p.networks || p.nodes || p.domainNames) && ports.some((p) => typeof p.port === 'string')) fail(f, 'named ports cannot be used with networks, nodes or domainNames peers');
    return { name: typeof o.name === 'string' ? o.name : '', action, peers, ports };
  });
}

function subjectOf(spec: Json): ClusterPolicy['subject'] {
  const s = obj(spec.subject, 'spec.subject');
  const k = oneKey(s, 'spec.subject', ['namespaces', 'pods']);
  return k === 'namespaces' ? { namespaces: toSelector(s.namespaces, 'spec.subject.namespaces') } : { pods: namespacedPods(s.pods, 'spec.subject.pods') };
}

function priorityOf(v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 1000) fail('spec.priority', 'must be an integer in 0-1000');
  return v as number;
}

function guard(raw: unknown, f: (name: string, spec: Json) => ClusterPolicy): Converted<ClusterPolicy> {
  try {
    if (!isObj(raw)) fail('(object)', 'not a JSON object');
    const name = obj(raw.metadata, 'metadata').name;
    if (typeof name !== 'string' || !name) fail('metadata.name', 'missing');
    return { ok: true, value: f(name, obj(raw.spec, 'spec')) };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, reason: e.message };
    throw e;
  }
}

/**
 * v1alpha1's baseline policy has no domainNames peer (only AdminNetworkPolicy got the experimental
 * one): such a peer comes from a CRD this engine does not know, and the policy is refused.
 */
function noDomains(egress: readonly AdminRule[]): void {
  const i = egress.findIndex((r) => r.peers.some((p) => p.domainNames));
  if (i >= 0) fail(`spec.egress[${i}]`, 'BaselineAdminNetworkPolicy has no domainNames peer');
}

const CNP_ACTIONS: Record<string, AdminAction> = { Accept: 'Accept', Deny: 'Deny', Pass: 'Pass' };
const ANP_ACTIONS: Record<string, AdminAction> = { Allow: 'Accept', Deny: 'Deny', Pass: 'Pass' };

/** policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy. */
export function toClusterNetworkPolicy(raw: unknown): Converted<ClusterPolicy> {
  return guard(raw, (name, spec) => {
    if (spec.tier !== 'Admin' && spec.tier !== 'Baseline') fail('spec.tier', `must be Admin or Baseline`);
    return { key: `cnp:${name}`, tier: spec.tier, priority: priorityOf(spec.priority), subject: subjectOf(spec), ingress: rules(spec, 'ingress', 'protocols', CNP_ACTIONS), egress: rules(spec, 'egress', 'protocols', CNP_ACTIONS) };
  });
}

/** policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy: the Admin tier. */
export function toAdminNetworkPolicy(raw: unknown): Converted<ClusterPolicy> {
  return guard(raw, (name, spec) => ({ key: `anp:${name}`, tier: 'Admin', priority: priorityOf(spec.priority), subject: subjectOf(spec), ingress: rules(spec, 'ingress', 'ports', ANP_ACTIONS), egress: rules(spec, 'egress', 'ports', ANP_ACTIONS) }));
}

/** policy.networking.k8s.io/v1alpha1 BaselineAdminNetworkPolicy (the singleton "default"): the Baseline tier. */
export function toBaselineAdminNetworkPolicy(raw: unknown): Converted<ClusterPolicy> {
  return guard(raw, (name, spec) => {
    const r = { ingress: rules(spec, 'ingress', 'ports', ANP_ACTIONS), egress: rules(spec, 'egress', 'ports', ANP_ACTIONS) };
    if ([...r.ingress, ...r.egress].some((x) => x.action === 'Pass')) fail('spec', 'Pass is not an action of the baseline policy');
    noDomains(r.egress);
    // After every ClusterNetworkPolicy of the Baseline tier (their priorities stop at 1000).
    return { key: `banp:${name}`, tier: 'Baseline', priority: 1001, subject: subjectOf(spec), ...r };
  });
}

/**
 * Whether a DNS name matches a domainNames pattern: exact, or "*." + suffix matching one or more
 * whole labels in front of it (never the bare suffix). Case and a trailing dot do not matter.
 */
export function domainMatches(pattern: string, name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  const p = pattern.toLowerCase().replace(/\.$/, '');
  if (!p.startsWith('*.')) return n === p;
  const suffix = p.slice(1);
  return n.endsWith(suffix) && n.length > suffix.length;
}

/** The sets a DNS answer for `name` goes into (PolicyTable.domainSets), for the address family given. */
export function domainSetsFor(domainSets: ReadonlyMap<string, { readonly patterns: readonly string[]; readonly family: 4 | 6 }>, name: string, family: 4 | 6): string[] {
  const out: string[] = [];
  for (const [set, d] of domainSets) if (d.family === family && d.patterns.some((p) => domainMatches(p, name))) out.push(set);
  return out;
}

type AdminKind = 'clusternetworkpolicies' | 'adminnetworkpolicies' | 'baselineadminnetworkpolicies';
const BY_KIND: Record<AdminKind, (raw: unknown) => Converted<ClusterPolicy>> = {
  clusternetworkpolicies: toClusterNetworkPolicy,
  adminnetworkpolicies: toAdminNetworkPolicy,
  baselineadminnetworkpolicies: toBaselineAdminNetworkPolicy,
};

/**
 * The watch's converters for the three kinds (registered by the agent: common/ does not import
 * components). A refusal becomes a ConvertError at its field, so the watch skips and logs that
 * one object, the others stay in force.
 */
export function adminWatchConverters(): Record<AdminKind, (raw: Record<string, unknown>, meta: Record<string, unknown>, name: string) => AdminPolicyInfo> {
  const wrap = (conv: (raw: unknown) => Converted<ClusterPolicy>) => (raw: Record<string, unknown>, _meta: Record<string, unknown>, name: string): AdminPolicyInfo => {
    const r = conv(raw);
    if (r.ok) return { ...r.value, name };
    const i = r.reason.indexOf(': ');
    throw new ConvertError(i > 0 ? r.reason.slice(0, i) : 'spec', i > 0 ? r.reason.slice(i + 2) : r.reason);
  };
  return { clusternetworkpolicies: wrap(BY_KIND.clusternetworkpolicies), adminnetworkpolicies: wrap(BY_KIND.adminnetworkpolicies), baselineadminnetworkpolicies: wrap(BY_KIND.baselineadminnetworkpolicies) };
}
