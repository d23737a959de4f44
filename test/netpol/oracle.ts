// An evaluator of the policies a netpol step leaves in the API, written from the API references
// (networking.k8s.io/v1 NetworkPolicy; policy.networking.k8s.io ClusterNetworkPolicy v1alpha2,
// AdminNetworkPolicy and BaselineAdminNetworkPolicy v1alpha1) and sharing no code with policy/.
// The cases' hand-written tables pin it down on the port each case names (model.test.ts); the suite
// then asks it for every port and protocol a step does not name, as cyclonus does with its own
// model, so a rule that leaks onto the wrong port or protocol shows up as a mismatch.
// Pure: the world and the policies in, a truth table out.
import type { KubeObject } from '../../sandbox/apiserver/resources.js';
import { PODS, portName, Reachability, type Ns, type PodId, type PodName, type Port, type Protocol } from './model.js';

type Labels = Readonly<Record<string, string>>;
interface Selector {
  matchLabels?: Labels;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** What the policies are evaluated against: labels as they are now, and where each pod is. */
export interface World {
  nsLabels(ns: Ns): Labels;
  podLabels(pod: PodId): Labels;
  ip(pod: PodId): string;
}

/** A selector as metav1.LabelSelector defines it: every term must hold; an empty one selects everything. */
export function selects(sel: Selector | undefined, labels: Labels): boolean {
  if (!sel) return false;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const inValues = has && (e.values ?? []).includes(labels[e.key]!);
    const ok = e.operator === 'In' ? inValues : e.operator === 'NotIn' ? !inValues : e.operator === 'Exists' ? has : e.operator === 'DoesNotExist' ? !has : false;
    if (!ok) return false;
  }
  return true;
}

const v4 = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
export function inCidr(ip: string, cidr: string): boolean {
  const [base, len] = cidr.split('/') as [string, string];
  const bits = Number(len);
  if (bits === 0) return true;
  const size = 2 ** (32 - bits);
  return Math.floor(v4(ip) / size) === Math.floor(v4(base) / size);
}

const nsOf = (p: PodId): Ns => p.split('/')[0] as Ns;
const nameOf = (p: PodId): PodName => p.split('/')[1] as PodName;

/** The connection a probe makes: `from` to `to`'s port. */
interface Conn {
  readonly from: PodId;
  readonly to: PodId;
  readonly port: Port;
  readonly protocol: Protocol;
}

/**
 * The destination pod's container port of that name and protocol. Every pod of the suite declares
 * the same four (serve-<port>-<proto>), so a name resolves the same way on every pod.
 */
const namedPortIs = (name: string, c: Conn): boolean => name === portName(c.port, c.protocol);

// ---- NetworkPolicy ----

interface NpPort {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}
interface NpPeer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string; except?: string[] };
}
interface NpSpec {
  podSelector: Selector;
  policyTypes?: string[];
  ingress?: { from?: NpPeer[]; ports?: NpPort[] }[];
  egress?: { to?: NpPeer[]; ports?: NpPort[] }[];
}

/** policyTypes as the API server defaults them: Ingress always, Egress when there are egress rules. */
function policyTypes(spec: NpSpec): string[] {
  if (spec.policyTypes?.length) return spec.policyTypes;
  return ['Ingress', ...(spec.egress ? ['Egress'] : [])];
}

function npPortMatches(p: NpPort, c: Conn): boolean {
  if ((p.protocol ?? 'TCP') !== c.protocol) return false;
  if (p.port === undefined) return true;
  if (typeof p.port === 'string') return namedPortIs(p.port, c);
  return p.endPort === undefined ? p.port === c.port : c.port >= p.port && c.port <= p.endPort;
}

/** `peer` is the pod at the other end; `home` the policy's namespace (a bare podSelector's scope). */
function npPeerMatches(peer: NpPeer, other: PodId, home: Ns, w: World): boolean {
  if (peer.ipBlock) return inCidr(w.ip(other), peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((e) => inCidr(w.ip(other), e));
  const nsOk = peer.namespaceSelector ? selects(peer.namespaceSelector, w.nsLabels(nsOf(other))) : nsOf(other) === home;
  const podOk = peer.podSelector ? selects(peer.podSelector, w.podLabels(other)) : true;
  return nsOk && podOk;
}

/**
 * The NetworkPolicy tier's verdict for one end: undefined when no policy of that direction selects
 * the pod (it is not isolated), else whether any rule of any of them allows the connection.
 */
function npVerdict(nps: readonly KubeObject[], c: Conn, dir: 'Ingress' | 'Egress', w: World): boolean | undefined {
  const subject = dir === 'Ingress' ? c.to : c.from;
  const other = dir === 'Ingress' ? c.from : c.to;
  let isolated = false;
  for (const o of nps) {
    const spec = o.spec as unknown as NpSpec;
    const home = o.metadata.namespace as Ns;
    if (home !== nsOf(subject) || !selects(spec.podSelector, w.podLabels(subject)) || !policyTypes(spec).includes(dir)) continue;
    isolated = true;
    const rules = dir === 'Ingress' ? (spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports })) : (spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
    for (const r of rules) {
      const peerOk = !r.peers?.length || r.peers.some((p) => npPeerMatches(p, other, home, w));
      const portOk = !r.ports?.length || r.ports.some((p) => npPortMatches(p, c));
      if (peerOk && portOk) return true;
    }
  }
  return isolated ? false : undefined;
}

// ---- the admin tiers ----

interface PodsPeer {
  namespaceSelector: Selector;
  podSelector: Selector;
}
interface AdminPeer {
  namespaces?: Selector;
  pods?: PodsPeer;
  networks?: string[];
}
interface AdminRule {
  action: string;
  from?: AdminPeer[];
  to?: AdminPeer[];
  /** v1alpha2 */
  protocols?: Record<string, unknown>[];
  /** v1alpha1 */
  ports?: Record<string, unknown>[];
}
interface AdminSpec {
  tier?: string;
  priority?: number;
  subject: { namespaces?: Selector; pods?: PodsPeer };
  ingress?: AdminRule[];
  egress?: AdminRule[];
}

const podsMatch = (sel: { namespaces?: Selector; pods?: PodsPeer }, p: PodId, w: World): boolean =>
  sel.namespaces ? selects(sel.namespaces, w.nsLabels(nsOf(p))) : !!sel.pods && selects(sel.pods.namespaceSelector, w.nsLabels(nsOf(p))) && selects(sel.pods.podSelector, w.podLabels(p));

const adminPeerMatches = (peer: AdminPeer, other: PodId, w: World): boolean => (peer.networks ? peer.networks.some((n) => inCidr(w.ip(other), n)) : podsMatch(peer, other, w));

type PortSpec = { number?: number; range?: { start: number; end: number } };
const portSpecMatches = (d: PortSpec | undefined, port: number): boolean =>
  !d || (d.number !== undefined ? d.number === port : !!d.range && port >= d.range.start && port <= d.range.end);

/** One v1alpha2 `protocols` entry: tcp/udp/sctp with an optional destinationPort, or a destinationNamedPort. */
function protocolMatches(entry: Record<string, unknown>, c: Conn): boolean {
  if (typeof entry.destinationNamedPort === 'string') return namedPortIs(entry.destinationNamedPort, c);
  const mine = entry[c.protocol.toLowerCase()] as { destinationPort?: PortSpec } | undefined;
  return !!mine && portSpecMatches(mine.destinationPort, c.port);
}

/** One v1alpha1 `ports` entry: portNumber, namedPort or portRange (protocol defaults to TCP). */
function anpPortMatches(entry: Record<string, unknown>, c: Conn): boolean {
  if (typeof entry.namedPort === 'string') return namedPortIs(entry.namedPort, c);
  const n = entry.portNumber as { protocol?: string; port: number } | undefined;
  if (n) return (n.protocol ?? 'TCP') === c.protocol && n.port === c.port;
  const r = entry.portRange as { protocol?: string; start: number; end: number } | undefined;
  return !!r && (r.protocol ?? 'TCP') === c.protocol && c.port >= r.start && c.port <= r.end;
}

type Action = 'allow' | 'deny' | 'pass';
const ACTIONS: Record<string, Action> = { Accept: 'allow', Allow: 'allow', Deny: 'deny', Pass: 'pass' };

/** The first matching rule of the first policy (by priority) that has one; undefined: none matches. */
function tierVerdict(policies: readonly KubeObject[], c: Conn, dir: 'Ingress' | 'Egress', w: World): Action | undefined {
  const subject = dir === 'Ingress' ? c.to : c.from;
  const other = dir === 'Ingress' ? c.from : c.to;
  const ordered = [...policies].sort((a, b) => ((a.spec as unknown as AdminSpec).priority ?? 0) - ((b.spec as unknown as AdminSpec).priority ?? 0));
  for (const o of ordered) {
    const spec = o.spec as unknown as AdminSpec;
    if (!podsMatch(spec.subject, subject, w)) continue;
    for (const r of (dir === 'Ingress' ? spec.ingress : spec.egress) ?? []) {
      const peers = (dir === 'Ingress' ? r.from : r.to) ?? [];
      if (!peers.some((p) => adminPeerMatches(p, other, w))) continue;
      const portOk = r.protocols ? r.protocols.some((e) => protocolMatches(e, c)) : r.ports ? r.ports.some((e) => anpPortMatches(e, c)) : true;
      if (portOk) return ACTIONS[r.action];
    }
  }
  return undefined;
}

/** All policy objects in the API, by kind. */
interface Policies {
  readonly networkPolicies: readonly KubeObject[];
  /** Admin tier: ClusterNetworkPolicy with tier Admin, and AdminNetworkPolicy. */
  readonly admin: readonly KubeObject[];
  /** Baseline tier: ClusterNetworkPolicy with tier Baseline, and BaselineAdminNetworkPolicy. */
  readonly baseline: readonly KubeObject[];
}

function sortPolicies(objects: Iterable<KubeObject>): Policies {
  const networkPolicies: KubeObject[] = [];
  const admin: KubeObject[] = [];
  const baseline: KubeObject[] = [];
  for (const o of objects) {
    if (o.kind === 'NetworkPolicy') networkPolicies.push(o);
    else if (o.kind === 'AdminNetworkPolicy') admin.push(o);
    else if (o.kind === 'BaselineAdminNetworkPolicy') baseline.push(o);
    else if (o.kind === 'ClusterNetworkPolicy') ((o.spec as unknown as AdminSpec).tier === 'Baseline' ? baseline : admin).push(o);
    else throw new Error(`the oracle knows no policy kind ${o.kind}`);
  }
  return { networkPolicies, admin, baseline };
}

/** One direction: the Admin tier, then NetworkPolicy (also after a Pass), then the Baseline tier, then allow. */
function directionAllows(p: Policies, c: Conn, dir: 'Ingress' | 'Egress', w: World): boolean {
  const admin = tierVerdict(p.admin, c, dir, w);
  if (admin === 'allow' || admin === 'deny') return admin === 'allow';
  const np = npVerdict(p.networkPolicies, c, dir, w);
  if (np !== undefined) return np;
  return tierVerdict(p.baseline, c, dir, w) !== 'deny';
}

/** Whether a new connection from `from` to `to` on this port is allowed: both its ends must allow it. */
function allowed(p: Policies, w: World, from: PodId, to: PodId, port: Port, protocol: Protocol): boolean {
  const c = { from, to, port, protocol };
  return directionAllows(p, c, 'Egress', w) && directionAllows(p, c, 'Ingress', w);
}

/** The whole truth table for one port and protocol. */
function expectedMatrix(p: Policies, w: World, port: Port, protocol: Protocol): Reachability {
  const r = new Reachability(true);
  for (const from of PODS) for (const to of PODS) if (from !== to) r.expect(from, to, allowed(p, w, from, to, port, protocol));
  return r;
}

/**
 * What a case has done to the API so far: labels (starting from the suite's) and the policies in
 * force. The suite applies each step here as it applies it to the sandbox.
 */
export class Cluster implements World {
  private readonly ns = new Map<Ns, Record<string, string>>();
  private readonly pods = new Map<PodId, Record<string, string>>();
  private readonly policies = new Map<string, KubeObject>();

  constructor(
    readonly ip: (pod: PodId) => string,
    base: { ns: (ns: Ns) => Record<string, string>; pod: (pod: PodName) => Record<string, string> },
  ) {
    for (const p of PODS) {
      this.ns.set(nsOf(p), base.ns(nsOf(p)));
      this.pods.set(p, base.pod(nameOf(p)));
    }
  }

  nsLabels(ns: Ns): Labels {
    return this.ns.get(ns)!;
  }

  podLabels(pod: PodId): Labels {
    return this.pods.get(pod)!;
  }

  /** A merge patch of labels: null removes a key. */
  relabelNs(ns: Ns, change: Record<string, string | null>): void {
    this.ns.set(ns, patched(this.ns.get(ns)!, change));
  }

  relabelPod(pod: PodId, change: Record<string, string | null>): void {
    this.pods.set(pod, patched(this.pods.get(pod)!, change));
  }

  apply(o: KubeObject): void {
    this.policies.set(keyOf(o), o);
  }

  remove(o: KubeObject): void {
    this.policies.delete(keyOf(o));
  }

  expected(port: Port, protocol: Protocol): Reachability {
    return expectedMatrix(sortPolicies(this.policies.values()), this, port, protocol);
  }
}

const keyOf = (o: KubeObject): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
function patched(cur: Record<string, string>, change: Record<string, string | null>): Record<string, string> {
  const out = { ...cur };
  for (const [k, v] of Object.entries(change)) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}
