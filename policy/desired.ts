// NetworkPolicy desired state for one node: a pure function of the policies, every pod's
// namespace/labels/addresses and the namespaces. Only this node's pods are enforced (ingress and
// egress both happen here for them); remote pods matter only as peers.
//
// Shape, chosen for element-level updates and cheap policy changes:
//   - each policy rule (policy, direction, index) is a RuleState, shared by every local pod the
//     policy selects (one nft chain, not one copy per pod);
//   - its peers are a PeerSet keyed by the same rule: pod IPs (a plain set that pod churn edits
//     element by element), ipBlocks minus except (an interval list), and for egress named ports the
//     (ip, protocol, port) triples of the selected pods (named ports resolve on the TARGET: on the
//     remote pod for egress);
//   - ingress named ports resolve on the local pod, so a rule using them has one RuleState per
//     distinct resolution (usually one).
// Multiple policies are a union: a pod isolated in a direction lists every rule that may allow.
import { createHash } from 'node:crypto';
import { contains, familyOf, ipToBigint, normalize, parseCidr, subtract, type Family, type Interval } from './ipnet.js';
import type { AdminAction, AdminPort, AdminRule, ClusterPolicy, PolicyNodeInfo, Tier } from './admin.js';
import { matches, policyKey, type LabelSelector, type NetworkPolicy, type NetworkPolicyPeer, type NetworkPolicyRule, type PolicyNamespace, type PolicyPod, type Protocol } from './model.js';

export type Direction = 'ingress' | 'egress';

export interface PolicyInputs {
  readonly policies: readonly NetworkPolicy[];
  readonly pods: readonly PolicyPod[];
  readonly namespaces: readonly PolicyNamespace[];
  /** ClusterNetworkPolicy / AdminNetworkPolicy / BaselineAdminNetworkPolicy, converted (admin.ts). */
  readonly admin?: readonly ClusterPolicy[];
  /** Nodes, for admin `nodes` peers. */
  readonly nodes?: readonly PolicyNodeInfo[];
}

export interface PolicyNode {
  readonly nodeName: string;
  /**
   * The node-local DNS addresses (the DNS Service IPs on lo, answered without DNAT): an egress
   * rule that allows port 53 (to the kube-dns pods or kube-system, as users write it) also allows
   * these, or node-local DNS would break every such policy (kubernetes#70555, calico#3795).
   */
  readonly dnsAddresses?: readonly string[];
}

export interface PortRange {
  readonly protocol: Protocol;
  readonly from: number;
  readonly to: number;
}

export interface NamedEntry {
  readonly ip: string;
  readonly protocol: Protocol;
  readonly port: number;
}

export interface PeerSet {
  readonly id: string;
  /** The rule had no peers (`from`/`to` missing or empty): every address. pods/nets stay empty. */
  readonly all: boolean;
  /** Some peer is a selector: the pod address set exists even while empty (pods come and go). */
  readonly selectors: boolean;
  /** Addresses of the selected pods, sorted. */
  readonly pods: readonly string[];
  /** ipBlocks minus their excepts, per family, sorted and disjoint. */
  readonly nets4: readonly Interval[];
  readonly nets6: readonly Interval[];
  /** Egress named ports: each selected pod's address with the port its name resolves to. */
  readonly named: readonly NamedEntry[];
  /** Admin egress `domainNames` patterns: a set the node's DNS server fills from its answers. */
  readonly domains: readonly string[];
}

/** A named port a rule wants resolved on its target; protocol undefined: any. */
export interface NameWanted {
  readonly name: string;
  readonly protocol?: Protocol;
}

export interface RuleState {
  /** Chain identity: "<ns>.<policy>.in<i>" (or ".eg<i>"), plus ".v<hash>" for an ingress named-port resolution. */
  readonly id: string;
  readonly setId: string;
  readonly policy: string;
  readonly direction: Direction;
  readonly index: number;
  /** Numeric ports (and ingress named ports resolved on the local pod); undefined = any port and protocol. */
  readonly ports?: readonly PortRange[];
  /** Egress rule with named ports: PeerSet.named applies. */
  readonly named: boolean;
  /** Set for admin/baseline tier rules (policy is then "cnp:<name>" ...): what a match does. */
  readonly tier?: Tier;
  readonly action?: AdminAction;
  readonly priority?: number;
  /** The rule's own name, if it has one. */
  readonly name?: string;
}

export interface DirectionPolicy {
  /** Keys of the policies that isolate the pod in this direction, sorted. */
  readonly policies: readonly string[];
  /** NetworkPolicy RuleState ids, in policy then rule order. */
  readonly rules: readonly string[];
  /** Admin tier rule ids in evaluation order (priority, policy, rule), before NetworkPolicy. */
  readonly admin?: readonly string[];
  /** Baseline tier rule ids in evaluation order, after NetworkPolicy (only for pods it does not isolate). */
  readonly baseline?: readonly string[];
  /** Egress: protocols/port 53 allowed to the node-local DNS addresses. */
  readonly dns?: readonly PortRange[];
}

export interface PodPolicy {
  readonly key: string;
  readonly ips: readonly string[];
  readonly ingress?: DirectionPolicy;
  readonly egress?: DirectionPolicy;
}

export interface DesiredState {
  /**
   * Local pods isolated in at least one direction, by "namespace/name"; those with no address yet
   * (`ips` empty) have their rules in `rules` but no chain or dispatch (render.ts).
   */
  readonly pods: ReadonlyMap<string, PodPolicy>;
  readonly rules: ReadonlyMap<string, RuleState>;
  readonly peerSets: ReadonlyMap<string, PeerSet>;
  readonly dnsAddresses: readonly string[];
}

const ALL_PORTS = { from: 0, to: 65535 };
const DIR_TAG: Record<Direction, string> = { ingress: 'in', egress: 'eg' };

/** Pods that can be peers or targets: pod network, with addresses. */
function onPodNetwork(p: PolicyPod): boolean {
  return !p.hostNetwork && p.podIPs.length > 0;
}

interface SetSpec {
  readonly namespace: string;
  readonly peers: readonly NetworkPolicyPeer[];
  readonly names: readonly NameWanted[];
  readonly extra: { addresses?: readonly string[]; domains?: readonly string[]; selectors?: boolean };
}

/**
 * The cluster indexed once per computation: namespaces' labels, pods by namespace, policies by
 * namespace; selector results memoised by selector text, since many rules repeat selectors.
 */
export class PolicyIndex {
  private readonly nsLabels = new Map<string, Readonly<Record<string, string>>>();
  private readonly podsByNs = new Map<string, PolicyPod[]>();
  private readonly policiesByNs = new Map<string, NetworkPolicy[]>();
  readonly podsByKey = new Map<string, PolicyPod>();
  private readonly nsMemo = new Map<string, string[]>();
  private readonly podMemo = new Map<string, Map<string, PolicyPod[]>>();
  private readonly setMemo = new Map<string, PeerSet>();
  private readonly specs = new Map<string, SetSpec>();
  /** namespace -> ids of sets whose selectors may pick its pods (setsTouching); built on first use. */
  private touching: Map<string, Set<string>> | undefined;
  /** Sets that pick every pod (egress named ports with no peers). */
  private readonly touchingAll = new Set<string>();

  constructor(readonly inputs: PolicyInputs) {
    for (const ns of inputs.namespaces) {
      // The API server sets this label on every namespace; a sandbox object may lack it.
      this.nsLabels.set(ns.name, ns.labels['kubernetes.io/metadata.name'] === ns.name ? ns.labels : { ...ns.labels, 'kubernetes.io/metadata.name': ns.name });
    }
    for (const p of inputs.pods) {
      this.podsByKey.set(policyKey(p), p);
      if (!onPodNetwork(p)) continue;
      let list = this.podsByNs.get(p.namespace);
      if (!list) this.podsByNs.set(p.namespace, (list = []));
      list.push(p);
    }
    for (const pol of [...inputs.policies].sort((a, b) => cmp(policyKey(a), policyKey(b)))) {
      let list = this.policiesByNs.get(pol.namespace);
      if (!list) this.policiesByNs.set(pol.namespace, (list = []));
      list.push(pol);
    }
  }

  /**
   * Replaces one pod (old and/or new given) for an incremental sync: the memos that could hold it
   * are dropped. Peer sets are not: the caller recomputes the ones the pod matters to (forgetSet).
   */
  replacePod(old: PolicyPod | undefined, pod: PolicyPod | undefined): void {
    if (old) {
      this.podsByKey.delete(policyKey(old));
      const list = this.podsByNs.get(old.namespace);
      if (list) {
        const rest = list.filter((p) => p !== old);
        if (rest.length > 0) this.podsByNs.set(old.namespace, rest);
        else {
          this.podsByNs.delete(old.namespace);
          if (!this.nsLabels.has(old.namespace)) this.clearNsMemo();
        }
      }
      this.podMemo.delete(old.namespace);
    }
    if (pod) {
      this.podsByKey.set(policyKey(pod), pod);
      if (onPodNetwork(pod)) {
        const list = this.podsByNs.get(pod.namespace);
        if (!list && !this.nsLabels.has(pod.namespace)) this.clearNsMemo();
        // A new array: lists handed out earlier (memos, callers) stay as they were.
        this.podsByNs.set(pod.namespace, [...(list ?? []), pod]);
      }
      this.podMemo.delete(pod.namespace);
    }
  }

  /** Replaces the policies of one namespace; their cached peer sets are the caller's to forget. */
  replacePolicies(ns: string, policies: readonly NetworkPolicy[]): void {
    const sorted = [...policies].sort((a, b) => cmp(policyKey(a), policyKey(b)));
    if (sorted.length > 0) this.policiesByNs.set(ns, sorted);
    else this.policiesByNs.delete(ns);
  }

  /** Whether any pod (on the pod network) lives in namespace ns. */
  hasPods(ns: string): boolean {
    return (this.podsByNs.get(ns)?.length ?? 0) > 0;
  }

  /** Replaces a namespace's labels (undefined: gone); selector memos over namespaces are dropped. */
  replaceNamespace(name: string, ns: PolicyNamespace | undefined): void {
    if (ns) this.nsLabels.set(name, ns.labels['kubernetes.io/metadata.name'] === name ? ns.labels : { ...ns.labels, 'kubernetes.io/metadata.name': name });
    else this.nsLabels.delete(name);
    this.clearNsMemo();
  }

  private clearNsMemo(): void {
    this.nsMemo.clear();
    this.touching = undefined;
  }

  /** Files set id under every namespace whose pods its selector peers may pick. */
  private touch(id: string, spec: SetSpec): void {
    const t = this.touching;
    if (!t) return;
    if (spec.peers.length === 0 && !spec.extra.selectors && !spec.extra.domains?.length && !spec.extra.addresses) {
      if (spec.names.length > 0) this.touchingAll.add(id);
      return;
    }
    for (const peer of spec.peers) {
      if (peer.ipBlock) {
        // Named ports are resolved on whichever pods hold addresses in the block: any namespace.
        if (spec.names.length > 0) this.touchingAll.add(id);
        continue;
      }
      for (const n of peer.namespaceSelector ? this.namespacesMatching(peer.namespaceSelector) : [spec.namespace]) {
        let ids = t.get(n);
        if (!ids) t.set(n, (ids = new Set()));
        ids.add(id);
      }
    }
  }

  /**
   * Ids of the sets podMatters may say yes to for a pod of namespace ns: a superset (ids of sets
   * forgotten or recomputed since may linger), kept per namespace so that a pod event looks at the
   * few sets its namespace matters to, not at every set of the node (AGENT.md, "Cost of a sync").
   */
  setsTouching(ns: string): Iterable<string> {
    if (!this.touching) {
      this.touching = new Map();
      this.touchingAll.clear();
      for (const [id, spec] of this.specs) this.touch(id, spec);
    }
    const own = this.touching.get(ns);
    if (this.touchingAll.size === 0) return own ?? [];
    return [...(own ?? []), ...this.touchingAll];
  }

  forgetSet(id: string): void {
    this.setMemo.delete(id);
  }

  /**
   * Whether pod p could be among set id's addresses or named entries (a selector peer picks it).
   * `seen` memoises selector results for this pod across calls (rules repeat selectors).
   */
  podMatters(id: string, p: PolicyPod, seen: { ns: Map<LabelSelector, boolean>; pod: Map<LabelSelector, boolean> } = { ns: new Map(), pod: new Map() }): boolean {
    const spec = this.specs.get(id);
    if (!spec || !onPodNetwork(p)) return false;
    if (spec.peers.length === 0 && !spec.extra.selectors && !spec.extra.domains?.length && !spec.extra.addresses) return spec.names.length > 0;
    const test = (memo: Map<LabelSelector, boolean>, sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean => {
      let v = memo.get(sel);
      if (v === undefined) memo.set(sel, (v = matches(sel, labels)));
      return v;
    };
    const nsLabels = this.namespaceLabels(p.namespace);
    return spec.peers.some((peer) => {
      if (peer.ipBlock) return spec.names.length > 0 && p.podIPs.some((ip) => inBlock(peer.ipBlock!, ip));
      if (peer.namespaceSelector) return test(seen.ns, peer.namespaceSelector, nsLabels) && (!peer.podSelector || test(seen.pod, peer.podSelector, p.labels));
      return p.namespace === spec.namespace && (!peer.podSelector || test(seen.pod, peer.podSelector, p.labels));
    });
  }

  /** The set again from the pods as they are now. */
  recomputeSet(id: string): PeerSet {
    const spec = this.specs.get(id)!;
    this.setMemo.delete(id);
    return this.peerSetFor(id, spec.namespace, spec.peers, spec.names, spec.extra);
  }

  namespaceLabels(ns: string): Readonly<Record<string, string>> {
    return this.nsLabels.get(ns) ?? { 'kubernetes.io/metadata.name': ns };
  }

  /** Policies of the pod's namespace whose podSelector selects it, in key order. */
  policiesFor(pod: PolicyPod): NetworkPolicy[] {
    return (this.policiesByNs.get(pod.namespace) ?? []).filter((p) => matches(p.podSelector, pod.labels));
  }

  private namespacesMatching(sel: LabelSelector): string[] {
    const k = selectorKey(sel);
    let out = this.nsMemo.get(k);
    if (!out) {
      // Namespaces that have pods but no Namespace object yet count too (with only the name label).
      const names = new Set([...this.nsLabels.keys(), ...this.podsByNs.keys()]);
      out = [...names].filter((n) => matches(sel, this.namespaceLabels(n)));
      this.nsMemo.set(k, out);
    }
    return out;
  }

  private podsIn(ns: string, sel: LabelSelector | undefined): PolicyPod[] {
    const all = this.podsByNs.get(ns) ?? [];
    if (!sel) return all;
    let memo = this.podMemo.get(ns);
    if (!memo) this.podMemo.set(ns, (memo = new Map()));
    const k = selectorKey(sel);
    let out = memo.get(k);
    if (!out) {
      out = all.filter((p) => matches(sel, p.labels));
      memo.set(k, out);
    }
    return out;
  }

  /** Pods a selector peer picks, for a policy in namespace ns. */
  peerPods(peer: NetworkPolicyPeer, ns: string): PolicyPod[] {
    if (!peer.namespaceSelector) return this.podsIn(ns, peer.podSelector);
    return this.namespacesMatching(peer.namespaceSelector).flatMap((n) => this.podsIn(n, peer.podSelector));
  }

  allPods(): PolicyPod[] {
    return [...this.podsByNs.values()].flat();
  }

  /** The peers of one rule, computed once however many local pods share it. */
  peerSet(pol: NetworkPolicy, direction: Direction, index: number): PeerSet {
    const id = ruleBaseId(pol, direction, index);
    const rule = (direction === 'ingress' ? pol.ingress : pol.egress)[index]!;
    const names = direction === 'egress' ? rule.ports.filter((p) => typeof p.port === 'string').map((p) => ({ name: p.port as string, protocol: p.protocol })) : [];
    return this.peerSetFor(id, pol.namespace, rule.peers, names);
  }

  /**
   * Addresses of a rule's peers. `names`: egress named ports to resolve on each selected pod
   * (protocol undefined: whatever protocol the pod's port has). No peers = every address.
   */
  peerSetFor(id: string, namespace: string, peers: readonly NetworkPolicyPeer[], names: readonly NameWanted[], extra: { addresses?: readonly string[]; domains?: readonly string[]; selectors?: boolean } = {}): PeerSet {
    let s = this.setMemo.get(id);
    if (s) return s;
    const spec = { namespace, peers, names, extra };
    this.specs.set(id, spec);
    this.touch(id, spec);
    const all = peers.length === 0 && !extra.selectors && !extra.domains?.length && !extra.addresses;
    // Pods by identity: a pod picked by several peers counts once.
    const pods = new Set<PolicyPod>();
    const nets: Record<Family, Interval[]> = { 4: [], 6: [] };
    for (const peer of peers) {
      if (peer.ipBlock) {
        const b = blockIntervals(peer.ipBlock);
        if (b) nets[b.family].push(...b.intervals);
      } else for (const p of this.peerPods(peer, namespace)) pods.add(p);
    }
    // Every pod only when named ports need resolving on them; otherwise "all" is no set at all.
    if (all && names.length > 0) for (const p of this.allPods()) pods.add(p);
    const named: NamedEntry[] = [];
    const resolve = (p: PolicyPod, ips: readonly string[]): void => {
      for (const want of names) {
        const np = p.namedPorts.find((n) => n.name === want.name && (want.protocol === undefined || n.protocol === want.protocol));
        if (np) for (const ip of ips) named.push({ ip, protocol: np.protocol, port: np.port });
      }
    };
    for (const p of pods) resolve(p, p.podIPs);
    // An ipBlock peer's named port is the port of that name on the pod the address belongs to
    // (kube-network-policies finds the pod by address): only the pod's addresses in the block.
    if (names.length > 0 && (nets[4].length > 0 || nets[6].length > 0)) {
      for (const p of this.allPods()) {
        if (pods.has(p)) continue;
        const inside = p.podIPs.filter((ip) => {
          const f = familyOf(ip);
          return f !== undefined && contains(nets[f], ipToBigint(ip));
        });
        if (inside.length > 0) resolve(p, inside);
      }
    }
    const addresses = all ? [] : addressesOf(pods);
    if (extra.addresses?.length) addresses.push(...extra.addresses.filter((a) => familyOf(a)));
    s = {
      id,
      all,
      selectors: extra.selectors ?? peers.some((p) => !p.ipBlock),
      pods: extra.addresses?.length ? [...new Set(addresses)].sort() : addresses,
      nets4: normalize(nets[4]),
      nets6: normalize(nets[6]),
      named: dedupeNamed(named),
      domains: extra.domains ?? [],
    };
    this.setMemo.set(id, s);
    return s;
  }

  /** A PeerSet peerSet() computed earlier. */
  computedSet(id: string): PeerSet | undefined {
    return this.setMemo.get(id);
  }
}

const selectorKeys = new WeakMap<LabelSelector, string>();

/** A selector's memo key, computed once per selector object. */
function selectorKey(sel: LabelSelector): string {
  let k = selectorKeys.get(sel);
  if (k === undefined) selectorKeys.set(sel, (k = JSON.stringify(sel)));
  return k;
}

type IpBlock = { readonly cidr: string; readonly except: readonly string[] };

type BlockAddresses = { readonly family: Family; readonly intervals: readonly Interval[] } | undefined;

/** Per ipBlock object (policies are replaced, not changed): podMatters asks on every pod event. */
const blockCache = new WeakMap<IpBlock, BlockAddresses>();

/** The addresses of an ipBlock: its CIDR without the excepts of the same family. */
function blockIntervals(block: IpBlock): BlockAddresses {
  if (blockCache.has(block)) return blockCache.get(block);
  const net = parseCidr(block.cidr);
  const cuts = net && normalize(block.except.map(parseCidr).filter((c) => c?.family === net.family) as Interval[]);
  const b = net && cuts ? { family: net.family, intervals: subtract([net], cuts) } : undefined;
  blockCache.set(block, b);
  return b;
}

/** Whether ip is in the block's CIDR and none of its excepts. */
function inBlock(block: IpBlock, ip: string): boolean {
  const b = blockIntervals(block);
  return b !== undefined && familyOf(ip) === b.family && contains(b.intervals, ipToBigint(ip));
}

function addressesOf(pods: Iterable<PolicyPod>): string[] {
  const out: string[] = [];
  for (const p of pods) for (const ip of p.podIPs) out.push(ip);
  // Plain string order: deterministic and cheap (numeric order would parse every address).
  out.sort();
  // Two pods never share an address for long, but a stale one may linger in the cache.
  return out.filter((ip, i) => i === 0 || ip !== out[i - 1]);
}

export function ruleBaseId(pol: { namespace: string; name: string }, direction: Direction, index: number): string {
  return `${pol.namespace}.${pol.name}.${DIR_TAG[direction]}${index}`;
}

/** Numeric ports of a rule as ranges; ingress named ports resolved on the local pod (`target`). */
/**
 * A rule's ports without names are the same for every pod it applies to: merged once per rule
 * object (the watch keeps an unchanged policy's objects), not once per local pod at every change
 * of its namespace. Shared, so never mutated.
 */
const numericPorts = new WeakMap<NetworkPolicyRule, PortRange[] | undefined>();

function portRanges(rule: NetworkPolicyRule, direction: Direction, target: PolicyPod): PortRange[] | undefined {
  if (rule.ports.length === 0) return undefined;
  if (numericPorts.has(rule)) return numericPorts.get(rule);
  const named = hasNamedPorts(rule);
  const out: PortRange[] = [];
  for (const p of rule.ports) {
    if (p.port === undefined) out.push({ protocol: p.protocol, ...ALL_PORTS });
    else if (typeof p.port === 'number') out.push({ protocol: p.protocol, from: p.port, to: p.endPort ?? p.port });
    else if (direction === 'ingress') {
      const np = target.namedPorts.find((n) => n.name === p.port && n.protocol === p.protocol);
      if (np) out.push({ protocol: np.protocol, from: np.port, to: np.port });
    }
  }
  const merged = mergeRanges(out);
  if (!named) numericPorts.set(rule, merged);
  return merged;
}

/** Sorted by protocol then start, overlapping and adjacent ranges joined. */
export function mergeRanges(list: readonly PortRange[]): PortRange[] {
  const sorted = [...list].sort((a, b) => cmp(a.protocol, b.protocol) || a.from - b.from);
  const out: PortRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && last.protocol === r.protocol && r.from <= last.to + 1) {
      if (r.to > last.to) out[out.length - 1] = { ...last, to: r.to };
    } else out.push(r);
  }
  return out;
}

function hasNamedPorts(rule: NetworkPolicyRule): boolean {
  return rule.ports.some((p) => typeof p.port === 'string');
}

function short(s: string): string {
  return createHash('sha1').update(s).digest('hex').slice(0, 8);
}

/**
 * The state of one local pod (undefined: not policied), filling `rules` with the RuleStates it uses.
 * A pod with no address yet (scheduled here, its sandbox not wired: the CNI ADD is still to come;
 * or finished) has its state too, with no addresses: its rule chains and sets are written ahead,
 * so the ADD only adds the pod's own chains and elements (AGENT.md, "Cost of a sync").
 */
export function podPolicy(index: PolicyIndex, pod: PolicyPod, rules: Map<string, RuleState>, dnsAddresses: readonly string[]): PodPolicy | undefined {
  if (pod.hostNetwork) return undefined;
  const dirs: Partial<Record<Direction, DirectionPolicy>> = {};
  const policies = index.policiesFor(pod);
  for (const direction of ['ingress', 'egress'] as const) {
    const isolating = policies.filter((p) => p.policyTypes.includes(direction === 'ingress' ? 'Ingress' : 'Egress'));
    const admin = tierRules(index, pod, direction, 'Admin', rules);
    const baseline = tierRules(index, pod, direction, 'Baseline', rules);
    if (isolating.length === 0 && admin.length === 0 && baseline.length === 0) continue;
    const ids: string[] = [];
    for (const pol of isolating) {
      const list = direction === 'ingress' ? pol.ingress : pol.egress;
      list.forEach((rule, i) => {
        const setId = ruleBaseId(pol, direction, i);
        const ports = portRanges(rule, direction, pod);
        const named = direction === 'egress' && hasNamedPorts(rule);
        // A rule whose every port is a name the pod lacks allows nothing here.
        if (ports !== undefined && ports.length === 0 && !named) return;
        const id = direction === 'ingress' && hasNamedPorts(rule) ? `${setId}.v${short(JSON.stringify(ports))}` : setId;
        if (!rules.has(id)) {
          index.peerSet(pol, direction, i);
          rules.set(id, { id, setId, policy: policyKey(pol), direction, index: i, ports, named });
        }
        ids.push(id);
      });
    }
    const d: { policies: string[]; rules: string[]; admin?: string[]; baseline?: string[]; dns?: PortRange[] } = { policies: isolating.map(policyKey), rules: ids };
    if (admin.length > 0) d.admin = admin;
    if (baseline.length > 0) d.baseline = baseline;
    if (direction === 'egress' && dnsAddresses.length > 0) {
      const accepting = [...ids, ...admin, ...baseline].map((id) => rules.get(id)!).filter((r) => r.action === undefined || r.action === 'Accept');
      const dns = dnsRanges(accepting, index);
      if (dns.length > 0) d.dns = dns;
    }
    dirs[direction] = d;
  }
  if (!dirs.ingress && !dirs.egress) return undefined;
  return { key: policyKey(pod), ips: pod.podIPs, ...dirs };
}

function subjectSelects(index: PolicyIndex, c: ClusterPolicy, pod: PolicyPod): boolean {
  if (c.subject.namespaces) return matches(c.subject.namespaces, index.namespaceLabels(pod.namespace));
  const p = c.subject.pods!;
  return matches(p.namespaceSelector, index.namespaceLabels(pod.namespace)) && matches(p.podSelector, pod.labels);
}

/** An admin rule's peers in NetworkPolicy terms (namespaces, pods, networks), plus node addresses and domains. */
function adminPeers(index: PolicyIndex, rule: AdminRule): { peers: NetworkPolicyPeer[]; addresses?: string[]; domains?: string[]; selectors: boolean } {
  const peers: NetworkPolicyPeer[] = [];
  let addresses: string[] | undefined;
  let domains: string[] | undefined;
  for (const p of rule.peers) {
    if (p.namespaces) peers.push({ namespaceSelector: p.namespaces });
    else if (p.pods) peers.push({ namespaceSelector: p.pods.namespaceSelector, podSelector: p.pods.podSelector });
    else if (p.networks) for (const cidr of p.networks) peers.push({ ipBlock: { cidr, except: [] } });
    else if (p.nodes) {
      addresses ??= [];
      for (const n of index.inputs.nodes ?? []) if (matches(p.nodes, n.labels)) addresses.push(...n.addresses);
    } else if (p.domainNames) (domains ??= []).push(...p.domainNames);
  }
  return { peers, addresses, domains, selectors: rule.peers.some((p) => p.namespaces || p.pods || p.nodes) };
}

function adminPortRanges(ports: readonly AdminPort[], direction: Direction, target: PolicyPod): PortRange[] | undefined {
  if (ports.length === 0) return undefined;
  const out: PortRange[] = [];
  for (const p of ports) {
    if (typeof p.port === 'string') {
      if (direction === 'egress') continue;
      const np = target.namedPorts.find((n) => n.name === p.port && (p.protocol === undefined || n.protocol === p.protocol));
      if (np) out.push({ protocol: np.protocol, from: np.port, to: np.port });
    } else if (p.port === undefined) out.push({ protocol: p.protocol ?? 'TCP', ...ALL_PORTS });
    else out.push({ protocol: p.protocol ?? 'TCP', from: p.port, to: p.endPort ?? p.port });
  }
  return mergeRanges(out);
}

/** The tier's rules for this pod and direction, in evaluation order, registered in `rules`. */
function tierRules(index: PolicyIndex, pod: PolicyPod, direction: Direction, tier: Tier, rules: Map<string, RuleState>): string[] {
  const ids: string[] = [];
  const policies = (index.inputs.admin ?? []).filter((c) => c.tier === tier && (direction === 'ingress' ? c.ingress : c.egress).length > 0 && subjectSelects(index, c, pod));
  policies.sort((a, b) => a.priority - b.priority || cmp(a.key, b.key));
  for (const c of policies) {
    (direction === 'ingress' ? c.ingress : c.egress).forEach((rule, i) => {
      const setId = `${c.key.replace(':', '.')}.${DIR_TAG[direction]}${i}`;
      const ports = adminPortRanges(rule.ports, direction, pod);
      const names = rule.ports.filter((p) => typeof p.port === 'string');
      const named = direction === 'egress' && names.length > 0;
      // Only names this pod lacks: the rule matches nothing here, whatever its action.
      if (ports !== undefined && ports.length === 0 && !named) return;
      const id = direction === 'ingress' && names.length > 0 ? `${setId}.v${short(JSON.stringify(ports))}` : setId;
      if (!rules.has(id)) {
        const ap = adminPeers(index, rule);
        const wanted = named ? names.map((p) => ({ name: p.port as string, protocol: p.protocol })) : [];
        index.peerSetFor(setId, '', ap.peers, wanted, { addresses: ap.addresses, domains: ap.domains, selectors: ap.selectors });
        const r: RuleState = { id, setId, policy: c.key, direction, index: i, ports, named, tier, action: rule.action, priority: c.priority };
        rules.set(id, rule.name ? { ...r, name: rule.name } : r);
      }
      ids.push(id);
    });
  }
  return ids;
}

/** UDP/TCP port 53 as far as some egress rule allows it to anyone. */
function dnsRanges(rules: readonly RuleState[], index: PolicyIndex): PortRange[] {
  const out: PortRange[] = [];
  for (const protocol of ['TCP', 'UDP'] as const) {
    const ok = rules.some((r) => {
      if (r.ports === undefined) return true;
      if (r.ports.some((p) => p.protocol === protocol && p.from <= 53 && p.to >= 53)) return true;
      return r.named && index.computedSet(r.setId)!.named.some((n) => n.protocol === protocol && n.port === 53);
    });
    if (ok) out.push({ protocol, from: 53, to: 53 });
  }
  return out;
}

/** Desired state for the pods on node.nodeName. */
export function desiredState(inputs: PolicyInputs, node: PolicyNode, index = new PolicyIndex(inputs)): DesiredState {
  return stateFor(
    index,
    inputs.pods.filter((p) => p.nodeName === node.nodeName),
    node.dnsAddresses ?? [],
  );
}

/** The same for any chosen pods (explain asks about two pods on perhaps two nodes). */
export function stateFor(index: PolicyIndex, targets: readonly PolicyPod[], dns: readonly string[]): DesiredState {
  const dnsAddresses = dns.filter((a) => familyOf(a)).sort(cmpIp);
  const rules = new Map<string, RuleState>();
  const pods = new Map<string, PodPolicy>();
  const local = [...targets].sort((a, b) => cmp(policyKey(a), policyKey(b)));
  for (const pod of local) {
    const pp = podPolicy(index, pod, rules, dnsAddresses);
    if (pp) pods.set(pp.key, pp);
  }
  const peerSets = new Map<string, PeerSet>();
  for (const r of [...rules.values()].sort((a, b) => cmp(a.id, b.id))) {
    if (!peerSets.has(r.setId)) peerSets.set(r.setId, index.computedSet(r.setId)!);
  }
  return { pods, rules: new Map([...rules].sort((a, b) => cmp(a[0], b[0]))), peerSets, dnsAddresses };
}

// ---- evaluation: the same state, asked about one flow (explain, strict-mode conntrack) ----

export interface RuleVerdict {
  readonly allowed: boolean;
  /** The first rule (in the order the chain tries them) that allows, if any. */
  readonly rule?: RuleState;
  /** Allowed by the node-local DNS exception. */
  readonly dns?: boolean;
  /** No tier decided and NetworkPolicy does not isolate: the default (allow). */
  readonly unmatched?: boolean;
}

function inRanges(ranges: readonly PortRange[] | undefined, protocol: Protocol, port: number): boolean {
  return ranges === undefined || ranges.some((r) => r.protocol === protocol && r.from <= port && r.to >= port);
}

function inPeerSet(s: PeerSet, ip: string): boolean {
  if (s.all) return true;
  if (s.pods.includes(ip)) return true;
  const f = familyOf(ip);
  if (!f) return false;
  const n = ipToBigint(ip);
  return (f === 4 ? s.nets4 : s.nets6).some((iv) => n >= iv.lo && n <= iv.hi);
}

/** Whether rule r matches (peer ip, protocol, port); for egress the port is the destination's. */
export function ruleAllows(r: RuleState, s: PeerSet, ip: string, protocol: Protocol, port: number): boolean {
  const numeric = r.ports === undefined || r.ports.length > 0;
  if (numeric && inPeerSet(s, ip) && inRanges(r.ports, protocol, port)) return true;
  return r.named && s.named.some((n) => n.ip === ip && n.protocol === protocol && n.port === port);
}

/**
 * Whether the local pod's `direction` lets a new connection through, with `peerIP` the other end.
 * undefined when the pod is not isolated in that direction.
 */
export function evaluate(d: DesiredState, podKey: string, direction: Direction, peerIP: string, protocol: Protocol, port: number): RuleVerdict | undefined {
  const dp = d.pods.get(podKey)?.[direction];
  if (!dp) return undefined;
  if (direction === 'egress' && d.dnsAddresses.includes(peerIP) && inRanges(dp.dns ?? [], protocol, port)) return { allowed: true, dns: true };
  const tier = (ids: readonly string[] | undefined): RuleVerdict | 'pass' | undefined => {
    for (const id of ids ?? []) {
      const r = d.rules.get(id)!;
      if (!ruleAllows(r, d.peerSets.get(r.setId)!, peerIP, protocol, port)) continue;
      return r.action === 'Pass' ? 'pass' : { allowed: r.action === 'Accept', rule: r };
    }
    return undefined;
  };
  const admin = tier(dp.admin);
  if (admin && admin !== 'pass') return admin;
  if (dp.policies.length > 0) {
    for (const id of dp.rules) {
      const r = d.rules.get(id)!;
      if (ruleAllows(r, d.peerSets.get(r.setId)!, peerIP, protocol, port)) return { allowed: true, rule: r };
    }
    return { allowed: false };
  }
  const baseline = tier(dp.baseline);
  if (baseline && baseline !== 'pass') return baseline;
  return { allowed: true, unmatched: true };
}

function dedupeNamed(list: NamedEntry[]): NamedEntry[] {
  const seen = new Map<string, NamedEntry>();
  for (const n of list) seen.set(`${n.ip} ${n.protocol} ${n.port}`, n);
  return [...seen.values()].sort((a, b) => cmp(a.ip, b.ip) || cmp(a.protocol, b.protocol) || a.port - b.port);
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Addresses by family, then numerically (nft lists them so; tests read better). */
export function cmpIp(a: string, b: string): number {
  const fa = familyOf(a) ?? 0;
  const fb = familyOf(b) ?? 0;
  if (fa !== fb) return fa - fb;
  const x = ipToBigint(a);
  const y = ipToBigint(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
