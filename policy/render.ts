// Desired state -> the `inet skiff-policy` table as data, and that data -> nft text: a full load
// (atomic replace) or the difference between two tables (element adds/deletes, rewritten chains).
// The layout and its hooks are explained in policy/README.md; in short:
//   egress      forward, priority 0    established accept, invalid drop, `saddr vmap @egress<f>`
//   ingress     forward, priority 1    established accept, `daddr vmap @ingress<f>`
//   egress-node input,   priority 0    established accept, `saddr vmap @egress<f>` (pods -> node)
// Egress and ingress are separate base chains so that `accept` may end either one: a same-node
// connection needs both, and an accept in one base chain does not skip the next.
import { createHash } from 'node:crypto';
import type { DesiredState, Direction, PeerSet, PodPolicy, PortRange, RuleState } from './desired.js';
import type { ElementChange } from './setelem.js';
import { familyOf, intervalToCidrs, ipToBigint, type Family, type Interval } from './ipnet.js';

export const FAMILY = 'inet';
export const TABLE = 'skiff-policy';
const T = `${FAMILY} ${TABLE}`;

export interface ChainData {
  /** Base chain declaration, e.g. "type filter hook forward priority 0 ; policy accept ;". */
  readonly hook?: string;
  readonly rules: readonly string[];
}

export interface CounterData {
  /** "namespace/name" of the pod whose denied connections it counts. */
  readonly pod: string;
  readonly direction: Direction;
}

export interface PolicyTable {
  readonly chains: ReadonlyMap<string, ChainData>;
  /** set name -> declaration body ("type ipv4_addr ; flags interval ;"). */
  readonly sets: ReadonlyMap<string, string>;
  /** set name -> element key -> value ("" in plain sets, "jump in.x.a" in verdict maps). */
  readonly elements: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** Named counters of denied connections, per policied pod and direction. */
  readonly counters: ReadonlyMap<string, CounterData>;
  /**
   * Sets for admin egress `domainNames` peers (`flags timeout`), which the node's DNS server fills
   * with the answers' addresses (`add element ... { <ip> timeout <ttl>s }`); never in `elements`,
   * so diffs leave their contents alone. A full load empties them.
   */
  readonly domainSets: ReadonlyMap<string, { readonly patterns: readonly string[]; readonly family: Family }>;
}

export interface RenderOptions {
  /** The node's pod address families; sets and rules exist per family. Default [4]. */
  readonly families?: readonly Family[];
  /** Send denied connections' first packets (rate-limited) to NFLOG group DENIED_LOG_GROUP, which the agent reads and logs. */
  readonly logDenied?: boolean;
}

/** The NFLOG group of denied connections (policy/denied-log.ts binds it when policy.logDenied is on). */
export const DENIED_LOG_GROUP = 2719;
/** The log prefix of a direction's denied connections; the reader takes the direction from it. */
export const deniedPrefix = (direction: Direction): string => `skiff-policy deny ${TAG[direction]}: `;
/**
 * How long a denied flow's retransmits are recognised (a TCP connect gives up after ~2 min of SYN
 * retries), and how many flows are remembered: beyond that a denied packet is still dropped, and
 * counted and logged like a first one.
 */
const DENIED_TIMEOUT = '2m';
const DENIED_SIZE = 65536;
/** The chain every denial jumps to before its pod's counter and drop: retransmits end here. */
export const denyChain = (direction: Direction): string => `deny-${TAG[direction]}`;

const ADDR: Record<Family, { kw: string; type: string }> = {
  4: { kw: 'ip', type: 'ipv4_addr' },
  6: { kw: 'ip6', type: 'ipv6_addr' },
};
const L4: Record<string, string> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };
const TAG: Record<Direction, string> = { ingress: 'in', egress: 'out' };
const FLOW = (f: Family): string => `${ADDR[f].kw} saddr . ${ADDR[f].kw} daddr . meta l4proto . th sport . th dport`;

/**
 * A valid, bounded nft identifier for a name made of Kubernetes names (DNS labels and subdomains:
 * letters, digits, '-', '.'). Kernel names stop at 255 bytes; long ones are hashed.
 */
function ident(prefix: string, name: string, suffix = ''): string {
  const n = name.length <= 180 ? name : `h${createHash('sha1').update(name).digest('hex').slice(0, 24)}`;
  return `${prefix}${n}${suffix}`;
}

/** Per-pod chain: "in.x.a" for pod x/a (namespaces have no dots, so this is unambiguous). */
export function podChain(podKey: string, direction: Direction): string {
  return ident(`${TAG[direction]}.`, podKey.replace('/', '.'));
}

/** The named counter of a pod's denied connections in one direction. */
export function dropCounter(podKey: string, direction: Direction): string {
  return ident(`drop-${TAG[direction]}.`, podKey.replace('/', '.'));
}

export function ruleChain(ruleId: string): string {
  return ident('r.', ruleId);
}

export function setName(setId: string, part: 'pods' | 'nets' | 'named' | 'fqdn', family: Family): string {
  return ident('s.', setId, `.${part}${family}`);
}

/**
 * A rule's ports as a named set (protocol . port range) rather than inline: a policy edit that
 * changes ports is then element changes over netlink, not a chain rewrite through nft (whose cache
 * refill grows with the table). Per rule id, not per peer set: ingress named-port variants differ.
 */
export function portSetName(ruleId: string): string {
  return ident('s.', ruleId, '.ports');
}

const PORTS_DECL = 'type inet_proto . inet_service ; flags interval ;';

/** One match per protocol: "tcp dport { 80, 1000-2000 }", or "meta l4proto udp" for every port. */
function portMatches(ports: readonly PortRange[] | undefined): string[] {
  if (ports === undefined) return [''];
  const byProto = new Map<string, string[]>();
  for (const r of ports) {
    const list = byProto.get(r.protocol) ?? [];
    byProto.set(r.protocol, list);
    list.push(r.from === 0 && r.to === 65535 ? '*' : r.from === r.to ? String(r.from) : `${r.from}-${r.to}`);
  }
  return [...byProto].map(([proto, list]) => {
    const p = L4[proto]!;
    if (list.includes('*')) return `meta l4proto ${p}`;
    return list.length === 1 ? `${p} dport ${list[0]}` : `${p} dport { ${list.join(', ')} }`;
  });
}

function line(...parts: string[]): string {
  return parts.filter(Boolean).join(' ');
}

const GONE: unique symbol = Symbol('gone');

/**
 * A map written over a base it never changes: its own entries (and GONE for a base key it
 * deleted) over the base's. A render over the previous table thus costs what it touches, not a
 * copy of the table's maps (~6,000 sets at the kube-burner shape: ~2.7 MB and ~1.2 ms per policy
 * change and per ADD, and the young generation's scavenges are what the tail is made of). The
 * overlay is carried into the next map built over this one and folded into a fresh base once it
 * is large, so a lookup never goes deeper than one overlay. Iteration: the base's order, then keys
 * new to it.
 */
class CowMap<V> implements ReadonlyMap<string, V> {
  private readonly base: ReadonlyMap<string, V>;
  private readonly over: Map<string, V | typeof GONE>;
  private count: number;

  constructor(prev?: ReadonlyMap<string, V>) {
    if (prev instanceof CowMap) {
      const p = prev as CowMap<V>;
      if (p.base.size === 0) {
        // Built from nothing (a full render): its overlay holds no GONE and becomes the base.
        this.base = p.over as Map<string, V>;
        this.over = new Map();
      } else if (p.over.size <= 64 + (p.base.size >> 3)) {
        this.base = p.base;
        this.over = new Map(p.over);
      } else {
        this.base = new Map(p);
        this.over = new Map();
      }
    } else {
      this.base = prev ?? new Map();
      this.over = new Map();
    }
    this.count = prev?.size ?? 0;
  }

  get size(): number {
    return this.count;
  }

  get(k: string): V | undefined {
    const o = this.over.get(k);
    if (o !== undefined) return o === GONE ? undefined : o;
    return this.base.get(k);
  }

  has(k: string): boolean {
    const o = this.over.get(k);
    if (o !== undefined) return o !== GONE;
    return this.base.has(k);
  }

  set(k: string, v: V): this {
    if (!this.has(k)) this.count++;
    this.over.set(k, v);
    return this;
  }

  delete(k: string): boolean {
    if (!this.has(k)) return false;
    this.count--;
    if (this.base.has(k)) this.over.set(k, GONE);
    else this.over.delete(k);
    return true;
  }

  *entries(): MapIterator<[string, V]> {
    for (const [k, v] of this.base) {
      const o = this.over.get(k);
      if (o === undefined) yield [k, v];
      else if (o !== GONE) yield [k, o];
    }
    for (const [k, o] of this.over) if (o !== GONE && !this.base.has(k)) yield [k, o];
  }

  *keys(): MapIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): MapIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }

  forEach(f: (v: V, k: string, m: ReadonlyMap<string, V>) => void): void {
    for (const [k, v] of this.entries()) f(v, k, this);
  }
}

/**
 * Table under construction. Built over a previous table (an incremental render), it shares that
 * table's chains and element maps (its maps written over the previous ones: CowMap) and copies an
 * element map before its first change, so unchanged parts stay the same objects and diffText can
 * skip them by identity.
 */
class Builder implements PolicyTable {
  readonly chains: CowMap<ChainData>;
  readonly sets: CowMap<string>;
  readonly elements: CowMap<ReadonlyMap<string, string>>;
  readonly counters: CowMap<CounterData>;
  readonly domainSets: CowMap<{ patterns: readonly string[]; family: Family }>;
  /** The names written or dropped over `prev` (an incremental render): a diff from it looks at these only. */
  readonly touched: Touched | undefined;
  private readonly own = new Set<string>();

  constructor(prev?: PolicyTable) {
    this.chains = new CowMap(prev?.chains);
    this.sets = new CowMap(prev?.sets);
    this.elements = new CowMap(prev?.elements);
    this.counters = new CowMap(prev?.counters);
    this.domainSets = new CowMap(prev?.domainSets);
    this.touched = prev ? { base: prev, chains: new Set(), sets: new Set(), counters: new Set() } : undefined;
    // Older tables are let go: each would keep its overlays alive.
    let t: PolicyTable | undefined = prev;
    for (let depth = 1; t instanceof Builder && t.touched; depth++) {
      if (depth >= TOUCHED_DEPTH) {
        t.touched.base = undefined;
        break;
      }
      t = t.touched.base;
    }
  }

  setChain(name: string, c: ChainData): void {
    this.chains.set(name, c);
    this.touched?.chains.add(name);
  }

  deleteChain(name: string): void {
    if (this.chains.delete(name)) this.touched?.chains.add(name);
  }

  setCounter(name: string, c: CounterData): void {
    this.counters.set(name, c);
    this.touched?.counters.add(name);
  }

  deleteCounter(name: string): void {
    if (this.counters.delete(name)) this.touched?.counters.add(name);
  }

  /** Declares a set with a fresh, empty element map. */
  set(name: string, decl: string): Map<string, string> {
    this.sets.set(name, decl);
    const m = new Map<string, string>();
    this.elements.set(name, m);
    this.own.add(name);
    this.touched?.sets.add(name);
    return m;
  }

  /** A set whose elements are not diffed (FQDN's timeout sets). */
  declareOnly(name: string, decl: string): void {
    this.sets.set(name, decl);
    this.touched?.sets.add(name);
  }

  /** The set's elements for changing: copied first if they came from the previous table. */
  mutable(name: string): Map<string, string> {
    if (this.own.has(name)) return this.elements.get(name) as Map<string, string>;
    const m = new Map(this.elements.get(name));
    this.elements.set(name, m);
    this.own.add(name);
    this.touched?.sets.add(name);
    return m;
  }

  dropSet(name: string): void {
    if (this.sets.delete(name)) this.touched?.sets.add(name);
    if (this.elements.delete(name)) this.touched?.sets.add(name);
    this.domainSets.delete(name);
  }
}

/**
 * What an incremental render changed over its base table, by name (sets: declarations and
 * elements). Diffing the two then costs what changed, not the table (3,500 sets and 1,800 chains
 * at the kube-burner shape: ~1 ms per pod ADD when every name was compared).
 */
interface Touched {
  /** Undefined once it is too far back to be worth keeping. */
  base: PolicyTable | undefined;
  readonly chains: Set<string>;
  readonly sets: Set<string>;
  readonly counters: Set<string>;
}

/**
 * Renders between two tables this many steps apart are unioned; beyond (a burst of events in one
 * sync), the diff compares whole tables.
 */
const TOUCHED_DEPTH = 8;

/** The names that may differ between `prev` and `next` when `next` was rendered over `prev` (in steps), else undefined. */
function touchedSince(prev: PolicyTable, next: PolicyTable): Omit<Touched, 'base'> | undefined {
  const out = { chains: new Set<string>(), sets: new Set<string>(), counters: new Set<string>() };
  let t = next;
  for (let depth = 0; t !== prev; depth++) {
    const d = t instanceof Builder ? t.touched : undefined;
    if (!d?.base || depth >= TOUCHED_DEPTH) return undefined;
    for (const n of d.chains) out.chains.add(n);
    for (const n of d.sets) out.sets.add(n);
    for (const n of d.counters) out.counters.add(n);
    t = d.base;
  }
  return out;
}

function renderBase(b: Builder, d: DesiredState, fams: readonly Family[], o: RenderOptions): void {
  const vmaps = (dir: 'saddr' | 'daddr', map: string): string[] => fams.map((f) => `${ADDR[f].kw} ${dir} vmap @${map}${f}`);
  b.setChain('egress', { hook: 'type filter hook forward priority 0 ; policy accept ;', rules: ['ct state established,related accept', 'ct state invalid drop', ...vmaps('saddr', 'egress')] });
  b.setChain('ingress', { hook: 'type filter hook forward priority 1 ; policy accept ;', rules: ['ct state established,related accept', ...vmaps('daddr', 'ingress')] });
  // Pods reaching the node itself (node IPs, node-local DNS, hostNetwork pods) pass input, not forward.
  // No `invalid drop` here: that would reach the node's own sockets.
  b.setChain('egress-node', { hook: 'type filter hook input priority 0 ; policy accept ;', rules: ['ct state established,related accept', ...vmaps('saddr', 'egress')] });
  for (const f of fams) {
    for (const dir of ['egress', 'ingress']) b.set(`${dir}${f}`, `type ${ADDR[f].type} : verdict ;`);
    const dns = b.set(`dns${f}`, `type ${ADDR[f].type} ;`);
    for (const a of d.dnsAddresses) if (familyOf(a) === f) dns.set(a, '');
    // Filled by the kernel (`add @denied<f>` below), so never diffed.
    b.declareOnly(`denied${f}`, `type ${ADDR[f].type} . ${ADDR[f].type} . inet_proto . inet_service . inet_service ; flags dynamic,timeout ; timeout ${DENIED_TIMEOUT} ; size ${DENIED_SIZE} ;`);
  }
  // A denial jumps here, then counts and drops in its pod's chain: so a flow's retransmits (the
  // same five-tuple within DENIED_TIMEOUT) are dropped uncounted, and the counters and the log
  // see connections, not packets. Shared by every pod: a pod's ADD writes only its own chain.
  for (const direction of ['ingress', 'egress'] as const) {
    const rules = [...fams.map((f) => `${FLOW(f)} @denied${f} drop`), ...fams.map((f) => `meta nfproto ipv${f} add @denied${f} { ${FLOW(f)} }`)];
    if (o.logDenied) rules.push(`limit rate 10/second burst 20 packets log group ${DENIED_LOG_GROUP} prefix "${deniedPrefix(direction)}"`);
    b.setChain(denyChain(direction), { rules });
  }
}

export function render(d: DesiredState, o: RenderOptions = {}): PolicyTable {
  const fams = o.families ?? [4];
  const b = new Builder();
  renderBase(b, d, fams, o);
  const rendered = new Set<string>();
  for (const r of d.rules.values()) {
    renderRule(b, r, d.peerSets.get(r.setId)!, fams);
    // Variants of one rule (ingress named ports resolved differently) share its sets.
    if (!rendered.has(r.setId)) renderSets(b, r, d.peerSets.get(r.setId)!, fams);
    rendered.add(r.setId);
  }
  for (const pod of d.pods.values()) renderPod(b, d, pod, fams);
  return b;
}

/** What changed between two desired states, by key; the incremental engine knows it without diffing. */
export interface Changes {
  readonly pods: ReadonlySet<string>;
  readonly rules: ReadonlySet<string>;
  readonly sets: ReadonlySet<string>;
}

/**
 * The table for `next`, built over `prevTable` (the render of `prev`) by re-rendering only the
 * named pods, rules and sets. Equal to render(next), sharing the untouched parts.
 */
export function renderChanges(prevTable: PolicyTable, prev: DesiredState, next: DesiredState, changes: Changes, o: RenderOptions = {}): PolicyTable {
  const fams = o.families ?? [4];
  const b = new Builder(prevTable);
  for (const key of changes.pods) {
    const old = prev.pods.get(key);
    if (old) for (const direction of ['ingress', 'egress'] as const) if (old[direction]) removePod(b, old.key, old.ips, direction, fams);
  }
  for (const id of changes.rules) {
    b.deleteChain(ruleChain(id));
    b.dropSet(portSetName(id));
  }
  for (const setId of changes.sets) for (const f of fams) for (const part of ['pods', 'nets', 'named', 'fqdn'] as const) b.dropSet(setName(setId, part, f));
  for (const id of changes.rules) {
    const r = next.rules.get(id);
    if (r) renderRule(b, r, next.peerSets.get(r.setId)!, fams);
  }
  const setRule = new Map<string, RuleState>();
  for (const r of next.rules.values()) if (changes.sets.has(r.setId) && !setRule.has(r.setId)) setRule.set(r.setId, r);
  for (const [setId, r] of setRule) renderSets(b, r, next.peerSets.get(setId)!, fams);
  for (const key of changes.pods) {
    const pod = next.pods.get(key);
    if (pod) renderPod(b, next, pod, fams);
  }
  // An address a removed pod shared with another local pod goes back to that pod.
  const freed = new Set([...changes.pods].flatMap((key) => prev.pods.get(key)?.ips ?? []));
  if (freed.size > 0) {
    for (const pod of next.pods.values()) {
      if (changes.pods.has(pod.key) || !pod.ips.some((ip) => freed.has(ip))) continue;
      renderPod(b, next, pod, fams);
    }
  }
  return b;
}

function renderRule(b: Builder, r: RuleState, s: PeerSet, fams: readonly Family[]): void {
  // Tier rules live inline in the pod chains: their verdict (Pass) depends on where they sit.
  if (!r.tier) b.setChain(ruleChain(r.id), { rules: ruleLines(r, s, fams, 'accept') });
  if (r.ports && r.ports.length > 0) {
    const m = b.set(portSetName(r.id), PORTS_DECL);
    for (const p of r.ports) m.set(`${L4[p.protocol]} . ${p.from === p.to ? p.from : `${p.from}-${p.to}`}`, '');
  }
}

function removePod(b: Builder, key: string, ips: readonly string[], direction: Direction, fams: readonly Family[]): void {
  const chain = podChain(key, direction);
  b.deleteChain(chain);
  b.deleteChain(ident(`${TAG[direction]}-np.`, key.replace('/', '.')));
  b.deleteCounter(dropCounter(key, direction));
  for (const ip of ips) {
    const f = familyOf(ip);
    if (f && fams.includes(f)) {
      const m = b.mutable(`${direction}${f}`);
      if (m.get(ip) === `jump ${chain}`) m.delete(ip);
    }
  }
}

function renderPod(b: Builder, d: DesiredState, pod: PodPolicy, fams: readonly Family[]): void {
  // No address yet: nothing can reach it, and its chains would be rewritten once one comes. Its
  // rule chains and sets are rendered already (they come from d.rules).
  if (pod.ips.length === 0) return;
  for (const direction of ['ingress', 'egress'] as const) {
    const dp = pod[direction];
    if (!dp) continue;
    const chain = podChain(pod.key, direction);
    const counter = dropCounter(pod.key, direction);
    const rules: string[] = [];
    const self = direction === 'ingress' ? 'saddr' : 'daddr';
    // A pod reaching itself through its own Service (hairpin) always passes, as upstream expects.
    for (const ip of pod.ips) {
      const f = familyOf(ip);
      if (f && fams.includes(f)) rules.push(`${ADDR[f].kw} ${self} ${ip} accept`);
    }
    if (dp.dns) for (const f of fams) for (const p of portMatches(dp.dns)) rules.push(line(`${ADDR[f].kw} daddr @dns${f}`, p, 'accept'));
    const drop = `counter name "${counter}" drop`;
    const deny = `jump ${denyChain(direction)}`;
    // Admin tier first; Pass goes to the NetworkPolicy part, which then needs a chain of its own.
    const np = dp.admin ? ident(`${TAG[direction]}-np.`, pod.key.replace('/', '.')) : chain;
    const tierLines = (ids: readonly string[], pass: string): string[] =>
      ids.flatMap((id) => {
        const r = d.rules.get(id)!;
        const lines = ruleLines(r, d.peerSets.get(r.setId)!, fams, r.action === 'Accept' ? 'accept' : r.action === 'Deny' ? drop : pass);
        // A Deny matches twice: into the deny chain (a retransmit ends there), then count and drop.
        return r.action === 'Deny' ? lines.flatMap((l) => [`${l.slice(0, -drop.length)}${deny}`, l]) : lines;
      });
    const npRules: string[] = [];
    if (dp.policies.length > 0) {
      for (const id of dp.rules) npRules.push(`jump ${ruleChain(id)}`);
      npRules.push(deny, drop);
    } else if (dp.baseline) npRules.push(...tierLines(dp.baseline, 'return'));
    if (dp.admin) {
      rules.push(...tierLines(dp.admin, `goto ${np}`), `goto ${np}`);
      b.setChain(np, { rules: npRules });
    } else rules.push(...npRules);
    b.setChain(chain, { rules });
    b.setCounter(counter, { pod: pod.key, direction });
    for (const ip of pod.ips) {
      const f = familyOf(ip);
      if (!f || !fams.includes(f)) continue;
      // Two local pods with one address (a stale pod not yet gone): the same one wins, whatever the order.
      const m = b.mutable(`${direction}${f}`);
      const cur = m.get(ip);
      if (cur === undefined || cur < `jump ${chain}`) m.set(ip, `jump ${chain}`);
    }
  }
}

function ruleLines(r: RuleState, s: PeerSet, fams: readonly Family[], verdict: string): string[] {
  const dir = r.direction === 'ingress' ? 'saddr' : 'daddr';
  const addrs: string[] = [];
  if (s.all) addrs.push('');
  else {
    for (const f of fams) {
      // With ipBlocks the pods share their interval set (one rule, one set: podsInNets).
      if ((f === 4 ? s.nets4 : s.nets6).length > 0) addrs.push(`${ADDR[f].kw} ${dir} @${setName(s.id, 'nets', f)}`);
      else if (s.selectors) addrs.push(`${ADDR[f].kw} ${dir} @${setName(s.id, 'pods', f)}`);
    }
    if (s.domains.length > 0) for (const f of fams) addrs.push(`${ADDR[f].kw} daddr @${setName(s.id, 'fqdn', f)}`);
  }
  const out: string[] = [];
  const ports = r.ports === undefined ? '' : `meta l4proto . th dport @${portSetName(r.id)}`;
  // Numeric ports apply unless the rule's ports were all names (then only the named set does).
  if (r.ports === undefined || r.ports.length > 0) for (const a of addrs) out.push(line(a, ports, verdict));
  if (r.named) for (const f of fams) out.push(`${ADDR[f].kw} daddr . meta l4proto . th dport @${setName(s.id, 'named', f)} ${verdict}`);
  return out;
}

/**
 * Whether ip lies in one of the (disjoint, sorted) intervals. A rule with both selector peers and
 * ipBlocks keeps its pods' addresses in the ipBlocks' interval set, each as its own element (so
 * pod churn stays one element), except those an ipBlock already covers (the kernel refuses
 * overlapping intervals). One set and one rule instead of two each: a new set or a set lookup in
 * a rule costs the kernel a walk of the table's set list (AGENT.md, "Cost of a sync").
 */
function inNets(nets: readonly Interval[], ip: string): boolean {
  const n = ipToBigint(ip);
  return nets.some((iv) => n >= iv.lo && n <= iv.hi);
}

function renderSets(b: Builder, r: RuleState, s: PeerSet, fams: readonly Family[]): void {
  for (const f of fams) {
    const nets = f === 4 ? s.nets4 : s.nets6;
    if (!s.all && nets.length > 0) {
      const m = b.set(setName(s.id, 'nets', f), `type ${ADDR[f].type} ; flags interval ;`);
      for (const iv of nets) for (const c of intervalToCidrs(iv, f)) m.set(c, '');
      for (const ip of s.pods) if (familyOf(ip) === f && !inNets(nets, ip)) m.set(ip, '');
    } else if (!s.all && s.selectors) {
      const m = b.set(setName(s.id, 'pods', f), `type ${ADDR[f].type} ;`);
      for (const ip of s.pods) if (familyOf(ip) === f) m.set(ip, '');
    }
    if (!s.all && s.domains.length > 0) {
      const name = setName(s.id, 'fqdn', f);
      b.declareOnly(name, `type ${ADDR[f].type} ; flags timeout ;`);
      b.domainSets.set(name, { patterns: s.domains, family: f });
    }
    if (r.named) {
      const m = b.set(setName(s.id, 'named', f), `type ${ADDR[f].type} . inet_proto . inet_service ;`);
      for (const n of s.named) if (familyOf(n.ip) === f) m.set(`${n.ip} . ${L4[n.protocol]} . ${n.port}`, '');
    }
  }
}

// ---- text ----

/** Elements per `add element` line: long lines cost nft little, many lines cost a little each. */
const CHUNK = 1000;

function elementLines(verb: 'add' | 'delete', set: string, entries: readonly [string, string][], withValues: boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < entries.length; i += CHUNK) {
    const part = entries.slice(i, i + CHUNK).map(([k, v]) => (withValues && v ? `${k} : ${v}` : k));
    out.push(`${verb} element ${T} ${set} { ${part.join(', ')} }`);
  }
  return out;
}

function declLines(t: PolicyTable, chains: Iterable<string>, sets: Iterable<string>, counters: Iterable<string>): string[] {
  const out: string[] = [];
  for (const c of counters) out.push(`add counter ${T} ${c}`);
  for (const s of sets) out.push(`add ${t.sets.get(s)!.includes(':') ? 'map' : 'set'} ${T} ${s} { ${t.sets.get(s)} }`);
  for (const c of chains) {
    const hook = t.chains.get(c)!.hook;
    out.push(hook ? `add chain ${T} ${c} { ${hook} }` : `add chain ${T} ${c}`);
  }
  return out;
}

const isMap = (t: PolicyTable, set: string): boolean => t.sets.get(set)!.includes(':');

/** The whole table, replacing whatever is there, in one transaction. */
export function fullText(t: PolicyTable): string {
  const out = [`add table ${T}`, `delete table ${T}`, `add table ${T} { comment "skiff network policy" ; }`];
  out.push(...declLines(t, t.chains.keys(), t.sets.keys(), t.counters.keys()));
  for (const [name, els] of t.elements) out.push(...elementLines('add', name, [...els], isMap(t, name)));
  for (const [name, c] of t.chains) for (const r of c.rules) out.push(`add rule ${T} ${name} ${r}`);
  return out.join('\n') + '\n';
}

function sameRules(a: ChainData, b: ChainData): boolean {
  return a.rules.length === b.rules.length && a.rules.every((r, i) => r === b.rules[i]);
}

/** The parts of a transaction from prev to next, in the order diffText writes them. */
interface DiffParts {
  /** New counters, sets and chains. */
  readonly decls: string[];
  /** Stale elements: gone, or with another value (verdict maps). */
  readonly deletes: ElementChange[];
  /** Changed chains flushed and rewritten, new chains filled. */
  readonly rewrites: string[];
  /** Whether `rewrites` flushes a chain that existed (its verdicts may now deny). */
  readonly rewritten: boolean;
  readonly adds: ElementChange[];
  /** Gone chains flushed and deleted, then gone sets and counters. */
  readonly gone: string[];
}

function diffParts(prev: PolicyTable, next: PolicyTable): DiffParts {
  // Rendered over prev: only the names the render touched can differ. Otherwise every name.
  const touched = touchedSince(prev, next);
  const names = <V>(m: ReadonlyMap<string, V>, only: ReadonlySet<string> | undefined): Iterable<string> => (only ? [...only].filter((n) => m.has(n)) : m.keys());
  const newChains = [...names(next.chains, touched?.chains)].filter((c) => !prev.chains.has(c));
  const newSets = [...names(next.sets, touched?.sets)].filter((s) => !prev.sets.has(s));
  const newCounters = [...names(next.counters, touched?.counters)].filter((c) => !prev.counters.has(c));
  const decls = declLines(next, newChains, newSets, newCounters);
  const deletes: ElementChange[] = [];
  for (const name of names(prev.elements, touched?.sets)) {
    const els = prev.elements.get(name)!;
    const now = next.elements.get(name);
    if (!now || now === els) continue;
    for (const [k, v] of els) if (now.get(k) !== v) deletes.push({ verb: 'delete', set: name, key: k, value: v });
  }
  const rewrites: string[] = [];
  let rewritten = false;
  for (const name of names(next.chains, touched?.chains)) {
    const c = next.chains.get(name)!;
    const was = prev.chains.get(name);
    if (was === c || (was && sameRules(was, c))) continue;
    if (was) {
      rewrites.push(`flush chain ${T} ${name}`);
      rewritten = true;
    }
    for (const r of c.rules) rewrites.push(`add rule ${T} ${name} ${r}`);
  }
  const adds: ElementChange[] = [];
  for (const name of names(next.elements, touched?.sets)) {
    const els = next.elements.get(name)!;
    const was = prev.elements.get(name);
    if (was === els) continue;
    const map = isMap(next, name);
    for (const [k, v] of els) if (was?.get(k) !== v) adds.push({ verb: 'add', set: name, key: k, value: map ? v : '' });
  }
  const gone: string[] = [];
  const goneChains = [...names(prev.chains, touched?.chains)].filter((c) => !next.chains.has(c));
  for (const c of goneChains) gone.push(`flush chain ${T} ${c}`);
  for (const c of goneChains) gone.push(`delete chain ${T} ${c}`);
  for (const s of names(prev.sets, touched?.sets)) if (!next.sets.has(s)) gone.push(`delete ${isMap(prev, s) ? 'map' : 'set'} ${T} ${s}`);
  for (const c of names(prev.counters, touched?.counters)) if (!next.counters.has(c)) gone.push(`delete counter ${T} ${c}`);
  return { decls, deletes, rewrites, rewritten, adds, gone };
}

/** Element changes as `add/delete element` lines, consecutive changes of one set together. */
function changeLines(changes: readonly ElementChange[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < changes.length; ) {
    const { verb, set } = changes[i]!;
    let j = i;
    while (j < changes.length && changes[j]!.set === set && changes[j]!.verb === verb) j++;
    out.push(...elementLines(verb, set, changes.slice(i, j).map((c) => [c.key, c.value]), verb === 'add'));
    i = j;
  }
  return out;
}

/**
 * One transaction taking the kernel from prev to next: new objects declared first, stale
 * elements deleted, changed chains flushed and rewritten, new elements added, then gone chains
 * flushed and deleted before the sets and counters they used. "" when nothing changed.
 */
export function diffText(prev: PolicyTable, next: PolicyTable): string {
  const p = diffParts(prev, next);
  const out = [...p.decls, ...changeLines(p.deletes), ...p.rewrites, ...changeLines(p.adds), ...p.gone];
  return out.length ? out.join('\n') + '\n' : '';
}

/**
 * The same change as diffText in three steps, for an applier that writes elements without nft
 * (setelem.ts): `before` (nft: declarations and chain rewrites), `elements` (stale ones deleted,
 * then new ones added, one batch), `after` (nft: gone chains, sets, counters). Each step is
 * atomic; between them the kernel holds a mix that is safe: new chains exist before any map
 * element jumps to them, and chains go only after no element jumps to them any more.
 */
export interface DiffPlan {
  readonly before: string;
  readonly elements: readonly ElementChange[];
  readonly after: string;
  /** Whether the change can deny a connection that was allowed (strict mode then reads conntrack). */
  readonly mayDeny: boolean;
  /** Addresses whose own verdict-map element changed (a pod that became policied, or moved chain). */
  readonly dispatched: readonly string[];
}

const DISPATCH = /^(ingress|egress)[46]$/;

export function diffPlan(prev: PolicyTable, next: PolicyTable): DiffPlan {
  const p = diffParts(prev, next);
  const text = (lines: string[]): string => (lines.length ? lines.join('\n') + '\n' : '');
  const dispatched = p.adds.filter((c) => DISPATCH.test(c.set)).map((c) => c.key);
  // Additions to peer sets only let more in; a pod newly in the dispatch maps can only lose flows
  // of its own addresses (`dispatched`); anything else may deny anywhere.
  const mayDeny = p.rewritten || p.gone.length > 0 || p.deletes.length > 0 || dispatched.length > 0;
  return { before: text([...p.decls, ...p.rewrites]), elements: [...p.deletes, ...p.adds], after: text(p.gone), mayDeny, dispatched };
}

/** Removes everything skiff's policy component put in the kernel (idempotent). */
export function cleanupText(): string {
  return `add table ${T}\ndelete table ${T}\n`;
}

export const EMPTY_TABLE: PolicyTable = { chains: new Map(), sets: new Map(), elements: new Map(), counters: new Map(), domainSets: new Map() };
