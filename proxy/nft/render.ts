// Model -> nft table data. Layout and hook choices are explained in proxy/README.md; the key one:
// dispatch writes a Service port's slot and endpoint count N into the packet mark (a data map) and
// jumps (a verdict map with the same key) to its kind's by-count chain, whose small verdict map
// sends N to a tail chain SHARED by every port with N endpoints, so a count change is a changed
// mark, never a changed dispatch verdict. The tail clears N, draws `numgen random mod N` and
// jumps to the pick chain of that index, which looks up `slot | index` in the endpoint address
// map and the slot in the port map. The table then holds O(distinct N + largest N) chains
// instead of one per Service port (nft dumps every chain on each run, so that is what an
// element-only update costs), and each endpoint is one element with a
// plain key and value, which nft parses in half the time of a `mark . index : addr . port` one.
// Only ClientIP-affinity ports keep a chain of their own.
import type { FamilyBounds } from '../bounds.js';
import { hasExternal, type Endpoint, type Family, type L4, type NodeContext, type ServicePort } from '../model.js';
import { addElement, addSet, capacityFor, elementsOf, emptyTable, type ChainState, type TableState } from './state.js';

export const TABLE = 'skiff';
export const MASQ_BIT = 0x4000;
/** A port's slot lives in the mark's high bits; LOCAL_BIT selects its node-local endpoint list. */
export const SLOT_SHIFT = 15;
export const LOCAL_BIT = 0x2000;
/**
 * An endpoint's index lives in the mark's bits below LOCAL_BIT, so a list is cut at this length
 * (kube-proxy has no limit; 8192 endpoints behind one Service port is far beyond common use).
 */
export const MAX_ENDPOINTS = LOCAL_BIT;
const NO_MASQ = (0xffffffff ^ MASQ_BIT) >>> 0;
/** The slot and LOCAL_BIT: the key of a list's port. */
const LIST_MASK = (~(MASQ_BIT | (LOCAL_BIT - 1))) >>> 0;
const NO_LOCAL = (0xffffffff ^ LOCAL_BIT) >>> 0;
/** The mark's bits below LOCAL_BIT: a list's endpoint count at dispatch, then the chosen index. */
const COUNT_MASK = LOCAL_BIT - 1;
const NO_COUNT = (0xffffffff ^ COUNT_MASK) >>> 0;
const L4_ALL = 'meta l4proto { tcp, udp, sctp }';
const PROTOCOLS: readonly L4[] = ['tcp', 'udp', 'sctp'];

export interface FamilyWords {
  readonly table: 'ip' | 'ip6';
  readonly addr: 'ipv4_addr' | 'ipv6_addr';
  readonly ip: 'ip' | 'ip6';
  readonly loopback: string;
}

const WORDS4: FamilyWords = { table: 'ip', addr: 'ipv4_addr', ip: 'ip', loopback: '127.0.0.0/8' };
const WORDS6: FamilyWords = { table: 'ip6', addr: 'ipv6_addr', ip: 'ip6', loopback: '::1' };

export function words(family: Family): FamilyWords {
  return family === 4 ? WORDS4 : WORDS6;
}

export const serviceChain = (sp: ServicePort): string => `service-${sp.id}`;
export const externalChain = (sp: ServicePort): string => `external-${sp.id}`;
export const firewallChain = (sp: ServicePort): string => `firewall-${sp.id}`;
/** Sets and maps carry the generation of the full sync that created them (see staging.ts). */
export const genName = (name: string, gen: number): string => `${name}-g${gen}`;
export const affinityMap = (sp: ServicePort, local: boolean, gen: number): string => genName(`affinity-${local ? 'local-' : ''}${sp.id}`, gen);

type Kind = 'cluster' | 'external' | 'local';
/**
 * The shared tail for N endpoints of one kind; exists only while some port uses it. `pairs`: the
 * endpoints do not share one port, so each carries its own (`endpoint-pairs`).
 */
export const tailChain = (kind: Kind, n: number, pairs: boolean): string => `lb-${kind}-n${n}${pairs ? '-pairs' : ''}`;
/** Cluster and external lists are dispatched by the count in the mark (see Renderer.countedTail). */
type CountedKind = 'cluster' | 'external';
const COUNTED: readonly { kind: CountedKind; pairs: boolean }[] = [
  { kind: 'cluster', pairs: false },
  { kind: 'cluster', pairs: true },
  { kind: 'external', pairs: false },
  { kind: 'external', pairs: true },
];
/** The chain that goes to the tail for the count in the mark, through the map of the same suffix. */
export const byCountChain = (kind: CountedKind, pairs: boolean): string => `by-count-${kind}${pairs ? '-pairs' : ''}`;
const tailsMap = (kind: CountedKind, pairs: boolean): SetName => `tails-${kind}${pairs ? '-pairs' : ''}`;
/** eTP Local external traffic: pods and the node itself go the cluster way (Nc), others to local (Nl). */
export const localChain = (nc: number, cp: boolean, nl: number, lp: boolean): string => `external-local-c${nc}${cp ? 'p' : ''}-l${nl}${lp ? 'p' : ''}`;
/** The chain that puts `index` into the mark, for the DNAT chain to look up (index 0 goes there directly). */
const pickChain = (index: number, pairs: boolean): string => (index === 0 ? dnatChain(pairs) : `pick-${pairs ? 'pair-' : ''}${index}`);
/** Where every tail ends: DNAT to the endpoint whose `slot | index` is in the mark. */
const dnatChain = (pairs: boolean): string => (pairs ? 'endpoint-dnat-pairs' : 'endpoint-dnat');
/** Tails for counts below this stay while pick chains cover them (Renderer.reservedTails): 62 chains at most. */
export const RESERVED_TAILS = 32;
/** Pick chains exist for indexes below this (a power of two, at least 16, at most MAX_ENDPOINTS). */
export function pickPoolSize(longest: number): number {
  return Math.min(MAX_ENDPOINTS, 2 ** Math.max(4, Math.ceil(Math.log2(Math.max(1, longest)))));
}

/** The element sets every table has, by their generation-free names. */
const SET_NAMES = [
  'cluster-ips',
  'service-marks',
  'service-ips',
  'nodeport-marks',
  'service-nodeports',
  'no-endpoint-services',
  'no-endpoint-nodeports',
  'firewall-ips',
  'endpoint-addrs',
  'endpoint-ports',
  'endpoint-pairs',
  'picks',
  'picks-pairs',
  'tails-cluster',
  'tails-cluster-pairs',
  'tails-external',
  'tails-external-pairs',
  'hairpin',
  'nodeport-ips',
] as const;
type SetName = (typeof SET_NAMES)[number];

function cidrsOf(family: Family, cidrs: readonly string[]): string[] {
  return cidrs.filter((c) => (family === 4 ? !c.includes(':') : c.includes(':')));
}

function anon(items: readonly string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/**
 * Everything that depends only on the family and the node context, computed once per sync: the
 * base table and the rule text of the shared chains (so 10,000 ports do not rebuild it).
 */
export class Renderer {
  readonly w: FamilyWords;
  private readonly clusterCidrs: string[];
  private readonly masq = `meta mark set meta mark | ${hex(MASQ_BIT)}`;
  private readonly clusterMasq: string;
  private readonly shared = new Map<string, ChainState>();
  /** Generation-free set name -> the name this generation's tables use. */
  private readonly s: Record<SetName, string>;

  constructor(
    readonly family: Family,
    readonly ctx: NodeContext,
    readonly gen = 1,
  ) {
    this.w = words(family);
    this.s = Object.fromEntries(SET_NAMES.map((n) => [n, genName(n, gen)])) as Record<SetName, string>;
    this.clusterCidrs = cidrsOf(family, ctx.clusterCIDRs);
    this.clusterMasq = ctx.masqueradeAll || this.clusterCidrs.length === 0 ? this.masq : `${this.w.ip} saddr != ${anon(this.clusterCidrs)} ${this.masq}`;
  }

  /**
   * Upper bounds of the big sets' element counts, by set name: a full sync declares those sets
   * with a fixed size from them (see SetState.capacity).
   */
  expectedCounts(b: FamilyBounds): Map<string, number> {
    const s = this.s;
    const eps = PROTOCOLS.reduce((n, p) => n + b.endpoints[p], 0);
    // endpoint-pairs is left to grow: only ports whose endpoints differ in port use it.
    return new Map<string, number>([
      [s['cluster-ips'], b.clusterIPs],
      [s['service-marks'], b.keys],
      [s['service-ips'], b.keys],
      [s['hairpin'], eps],
      [s['endpoint-addrs'], eps],
      // A cluster and a node-local list per port.
      [s['endpoint-ports'], 2 * b.clusterIPs],
    ]);
  }

  /** The fixed part: hooks, dispatch maps and the affinity tails; `counts` sizes sets (expectedCounts). */
  base(counts?: ReadonlyMap<string, number>): TableState {
    const w = this.w;
    const s = this.s;
    const t = emptyTable();
    const tuple = `${w.addr} . inet_proto . inet_service`;
    const sized = (name: string): { capacity?: number } => {
      const c = counts?.get(name);
      return c === undefined ? {} : { capacity: capacityFor(c) };
    };
    const map = (name: string, decl: string): void => addSet(t, name, { kind: 'map', decl, ...sized(name) });
    const set = (name: string, decl: string): void => addSet(t, name, { kind: 'set', decl, ...sized(name) });
    set(s['cluster-ips'], `type ${w.addr} ;`);
    map(s['service-marks'], `type ${tuple} : mark ;`);
    map(s['service-ips'], `type ${tuple} : verdict ;`);
    map(s['nodeport-marks'], 'type inet_proto . inet_service : mark ;');
    map(s['service-nodeports'], 'type inet_proto . inet_service : verdict ;');
    map(s['no-endpoint-services'], `type ${tuple} : verdict ;`);
    map(s['no-endpoint-nodeports'], 'type inet_proto . inet_service : verdict ;');
    map(s['firewall-ips'], `type ${tuple} : verdict ;`);
    // Keys are `slot | index` (a list's slot for endpoint-ports): one owner each by construction.
    const owned = (name: string, decl: string): void => addSet(t, name, { kind: 'map', decl, unique: true, ...sized(name) });
    owned(s['endpoint-addrs'], `type mark : ${w.addr} ;`);
    owned(s['endpoint-ports'], 'type mark : inet_service ;');
    owned(s['endpoint-pairs'], `type mark : ${w.addr} . inet_service ;`);
    // `typeof` because numgen has no named type.
    map(s['picks'], 'typeof numgen random mod 2 : verdict ;');
    map(s['picks-pairs'], 'typeof numgen random mod 2 : verdict ;');
    for (const c of COUNTED) map(s[tailsMap(c.kind, c.pairs)], 'type mark : verdict ;');
    addSet(t, s['hairpin'], { kind: 'set', decl: `type ${w.addr} . ${w.addr} ;`, twice: true, ...sized(s['hairpin']) });

    const nodePortCidrs = cidrsOf(this.family, this.ctx.nodePortAddresses);
    let nodePortMatch: string;
    if (nodePortCidrs.length > 0) {
      set(s['nodeport-ips'], `type ${w.addr} ; flags interval ; auto-merge ;`);
      for (const c of nodePortCidrs) addElement(t, s['nodeport-ips'], c);
      // The node's own addresses within those CIDRs, as kube-proxy's --nodeport-addresses.
      nodePortMatch = `fib daddr type local ${w.ip} daddr @${s['nodeport-ips']}`;
    } else {
      // Like kube-proxy's nftables mode, NodePorts are not reachable on loopback addresses.
      nodePortMatch = `fib daddr type local ${w.ip} daddr != ${w.loopback}`;
    }

    const chain = (name: string, rules: string[], hook?: string): void => void t.chains.set(name, hook ? { hook, rules } : { rules });
    chain('filter-prerouting', ['ct state new jump firewall-check'], 'type filter hook prerouting priority -110 ;');
    chain('filter-input', ['ct state new jump nodeport-endpoints-check', 'ct state new jump service-endpoints-check'], 'type filter hook input priority -110 ;');
    chain(
      'filter-forward',
      ['ct state invalid drop', 'ct state new jump service-endpoints-check', 'ct state new jump cluster-ips-check'],
      'type filter hook forward priority -110 ;',
    );
    // The node's own connections: source ranges are checked on the LB address before the DNAT
    // rewrites it, the cluster-IP refusal after it (a served port no longer has the cluster IP).
    chain('filter-output', ['ct state new jump service-endpoints-check', 'ct state new jump firewall-check'], 'type filter hook output priority -110 ;');
    chain('filter-output-post-dnat', ['ct state new jump cluster-ips-check'], 'type filter hook output priority -90 ;');
    chain('nat-prerouting', ['jump services'], 'type nat hook prerouting priority -100 ;');
    chain('nat-output', ['jump services'], 'type nat hook output priority -100 ;');
    chain('nat-postrouting', ['jump masquerading'], 'type nat hook postrouting priority 100 ;');
    // A miss in the mark map ends that rule only; the verdict map then decides (affinity and
    // drop entries have no mark). Both maps always hold the same keys otherwise.
    const key = `${w.ip} daddr . meta l4proto . th dport`;
    chain('services', [`meta mark set ${key} map @${s['service-marks']}`, `${key} vmap @${s['service-ips']}`, `${nodePortMatch} jump nodeports`]);
    chain('nodeports', [`meta mark set meta l4proto . th dport map @${s['nodeport-marks']}`, `meta l4proto . th dport vmap @${s['service-nodeports']}`]);
    chain('masquerading', [
      `ct status dnat ${w.ip} saddr . ${w.ip} daddr @${s['hairpin']} masquerade fully-random`,
      `meta mark & ${hex(MASQ_BIT)} == 0 return`,
      `meta mark set meta mark ^ ${hex(MASQ_BIT)}`,
      'masquerade fully-random',
    ]);
    chain('service-endpoints-check', [`${key} vmap @${s['no-endpoint-services']}`]);
    chain('nodeport-endpoints-check', [`${nodePortMatch} meta l4proto . th dport vmap @${s['no-endpoint-nodeports']}`]);
    const svcCidrs = cidrsOf(this.family, this.ctx.serviceCIDRs);
    // TCP is refused with a reset: this kernel takes an ICMP error in SYN_SENT as soft and the
    // client would wait for its SYN retransmit (~1 s). UDP and SCTP keep the ICMP port unreachable.
    chain('cluster-ips-check', [
      `${w.ip} daddr @${s['cluster-ips']} meta l4proto tcp reject with tcp reset`,
      `${w.ip} daddr @${s['cluster-ips']} reject`,
      ...(svcCidrs.length ? [`${w.ip} daddr ${anon(svcCidrs)} drop`] : []),
    ]);
    chain('firewall-check', [`${key} vmap @${s['firewall-ips']}`]);
    chain('reject-chain', ['meta l4proto tcp reject with tcp reset', 'reject']);
    // Affinity ports write the chosen index itself into the mark, so their tails look up the mark alone.
    // The only chains that use the big endpoint maps: the kernel walks a whole map for each chain
    // that binds it, so per-index chains with their own lookups cost ~0.15 s per full sync.
    chain(dnatChain(false), [`${L4_ALL} dnat ${w.ip} to meta mark & ${hex(NO_MASQ)} map @${s['endpoint-addrs']} : meta mark & ${hex(LIST_MASK)} map @${s['endpoint-ports']}`]);
    chain(dnatChain(true), [`${L4_ALL} dnat ${w.ip} to meta mark & ${hex(NO_MASQ)} map @${s['endpoint-pairs']}`]);
    chain('lb-cluster-affinity', [this.clusterMasq, `goto ${dnatChain(true)}`]);
    chain('lb-external-affinity', [this.masq, `goto ${dnatChain(true)}`]);
    for (const c of COUNTED) chain(byCountChain(c.kind, c.pairs), [`meta mark & ${hex(COUNT_MASK)} vmap @${s[tailsMap(c.kind, c.pairs)]}`]);
    return t;
  }

  /**
   * The longest list each kind of tail was rendered for, since this Renderer was made: the
   * dataplane grows the pick chains to cover it (picks()).
   */
  readonly longest = { plain: 0, pairs: 0 };

  /**
   * The pick chains for indexes from..to-1 and their elements in a `picks` verdict map. They
   * belong to the fixed part of the table and only grow (to a power of two, pickPoolSize) when a
   * longer list appears. The index stays in the mark's low bits like the slot in its high bits;
   * the mark lives only with the packet.
   */
  picks(from: number, to: number, pairs: boolean): TableState {
    const t = emptyTable();
    for (let k = from; k < to; k++) {
      if (k > 0) t.chains.set(pickChain(k, pairs), { rules: [`meta mark set meta mark | ${k} goto ${dnatChain(pairs)}`] });
      addElement(t, this.s[pairs ? 'picks-pairs' : 'picks'], String(k), `goto ${pickChain(k, pairs)}`);
    }
    return t;
  }

  /**
   * The cluster and external tails for counts from..to-1 (below RESERVED_TAILS) and their
   * by-count elements, kept like the pick chains they come with until the next full sync, as if
   * some port used each: a list moving to any of those counts is then only its mark element,
   * never a new chain (an nft run) nor a new verdict element (the kernel validates every verdict
   * map of the table when one names a chain: ~5 ms at 50,000 Services).
   */
  reservedTails(from: number, to: number): TableState {
    const t = emptyTable();
    for (let n = Math.max(1, from); n < Math.min(to, RESERVED_TAILS); n++) {
      for (const kind of ['cluster', 'external'] as const) {
        const name = tailChain(kind, n, false);
        t.chains.set(name, this.tailState(kind, n, false));
        addElement(t, this.s[tailsMap(kind, false)], String(n & COUNT_MASK), `goto ${name}`);
      }
    }
    return t;
  }

  /** The shared chain `name`, built once per Renderer. */
  private sharedChain(name: string, make: () => string[]): ChainState {
    let c = this.shared.get(name);
    if (!c) this.shared.set(name, (c = { rules: make(), shared: true }));
    return c;
  }

  /** Adds the tail for N endpoints of a kind to t and returns the verdict that reaches it. */
  private tail(t: TableState, kind: Kind, n: number, pairs: boolean): string {
    if (n === 0) return 'drop';
    const l = this.longest;
    if (pairs) l.pairs = Math.max(l.pairs, n);
    else l.plain = Math.max(l.plain, n);
    const name = tailChain(kind, n, pairs);
    t.chains.set(name, this.tailState(kind, n, pairs));
    return `goto ${name}`;
  }

  private tailState(kind: Kind, n: number, pairs: boolean): ChainState {
    return this.sharedChain(tailChain(kind, n, pairs), () => {
      const pick = n === 1 ? `goto ${pickChain(0, pairs)}` : `numgen random mod ${n} vmap @${this.s[pairs ? 'picks-pairs' : 'picks']}`;
      // The count the dispatch left in the index bits goes before a pick chain ORs the index in.
      if (kind === 'cluster') return [`meta mark set meta mark & ${hex(NO_COUNT)}`, this.clusterMasq, pick];
      if (kind === 'external') return [`meta mark set meta mark & ${hex(NO_COUNT)} | ${hex(MASQ_BIT)}`, pick];
      return [pick];
    });
  }

  /**
   * A cluster or external list of N endpoints: the verdict maps send it to the kind's by-count
   * chain, the mark carries N (below LOCAL_BIT; 8192 as 0) and the kind's tails map takes it to
   * the tail. A count change is then a changed mark element: no verdict element changes, and a
   * verdict element naming a chain makes the kernel validate every verdict map of the table at
   * commit (at 50,000 Services ~5 ms per sync). Returns the verdict and the mark's count bits.
   */
  private countedTail(t: TableState, kind: CountedKind, n: number, pairs: boolean): { verdict: string; count: number } {
    if (n === 0) return { verdict: 'drop', count: 0 };
    const count = n & COUNT_MASK;
    addElement(t, this.s[tailsMap(kind, pairs)], String(count), this.tail(t, kind, n, pairs));
    return { verdict: `goto ${byCountChain(kind, pairs)}`, count };
  }

  /** eTP Local: the shared chain for (cluster N, local N); the mark arrives with LOCAL_BIT set. */
  private localTail(t: TableState, nc: number, cp: boolean, nl: number, lp: boolean): string {
    const toCluster = this.tail(t, 'cluster', nc, cp);
    const toLocal = this.tail(t, 'local', nl, lp);
    const name = localChain(nc, cp, nl, lp);
    t.chains.set(
      name,
      this.sharedChain(name, () => {
        const back = nc === 0 ? 'drop' : `meta mark set meta mark & ${hex(NO_LOCAL)} ${toCluster}`;
        return [
          // Pods and the node itself reach external addresses as cluster traffic (kube-proxy's short-circuit).
          ...(this.clusterCidrs.length ? [`${this.w.ip} saddr ${anon(this.clusterCidrs)} ${back}`] : []),
          `fib saddr type local ${back}`,
          toLocal,
        ];
      }),
    );
    return `goto ${name}`;
  }

  /** Everything one ServicePort contributes, given its slot. */
  servicePort(sp: ServicePort, slot: number): TableState {
    const t = emptyTable();
    const base = (slot << SLOT_SHIFT) >>> 0;
    const suffix = ` . ${sp.protocol} . ${sp.port}`;
    const clusterKeys = sp.clusterIPs.map((ip) => ip + suffix);
    const externalKeys: string[] = [];
    for (const ip of sp.externalIPs) externalKeys.push(ip + suffix);
    for (const ip of sp.loadBalancerIPs) externalKeys.push(ip + suffix);
    const nodePortKey = sp.nodePort === undefined ? undefined : `${sp.protocol} . ${sp.nodePort}`;
    for (const ip of sp.clusterIPs) addElement(t, this.s['cluster-ips'], ip);

    if (!sp.hasEndpoints) {
      // Nothing anywhere: refuse at once (reject in the filter hooks) rather than let clients time out.
      for (const k of clusterKeys) addElement(t, this.s['no-endpoint-services'], k, 'goto reject-chain');
      for (const k of externalKeys) addElement(t, this.s['no-endpoint-services'], k, 'goto reject-chain');
      if (nodePortKey) addElement(t, this.s['no-endpoint-nodeports'], nodePortKey, 'goto reject-chain');
      return t;
    }

    // Only a pod on this node can reach itself through this node (endpoints of unknown node count as local).
    // Keyed by the address alone: the set is `twice` (its key is `ip . ip`, written out on the way to the kernel).
    for (const e of sp.clusterEndpoints) if (e.local || e.nodeName === undefined) addElement(t, this.s['hairpin'], e.ip);
    for (const e of sp.localEndpoints) if (e.local || e.nodeName === undefined) addElement(t, this.s['hairpin'], e.ip);

    /** Points the dispatch keys at a verdict, with the mark it needs when that is a tail. */
    const dispatch = (keys: readonly string[], nodePort: string | undefined, verdict: string, mark: number | undefined): void => {
      const m = mark === undefined ? undefined : String(mark);
      for (const k of keys) {
        if (m !== undefined) addElement(t, this.s['service-marks'], k, m);
        addElement(t, this.s['service-ips'], k, verdict);
      }
      if (nodePort) {
        if (m !== undefined) addElement(t, this.s['nodeport-marks'], nodePort, m);
        addElement(t, this.s['service-nodeports'], nodePort, verdict);
      }
    };
    if (sp.affinitySeconds) {
      this.affinityPort(t, sp, base, clusterKeys, externalKeys, nodePortKey);
      return t;
    }

    const cluster = capped(sp.clusterEndpoints);
    const nc = cluster.length;
    const cp = this.addEndpoints(t, base, cluster);
    const ct = this.countedTail(t, 'cluster', nc, cp);
    dispatch(clusterKeys, undefined, ct.verdict, nc ? (base | ct.count) >>> 0 : undefined);
    if (hasExternal(sp)) {
      if (!sp.externalLocal) {
        const et = this.countedTail(t, 'external', nc, cp);
        dispatch(externalKeys, nodePortKey, et.verdict, nc ? (base | et.count) >>> 0 : undefined);
      } else {
        const local = capped(sp.localEndpoints);
        const lbase = (base | LOCAL_BIT) >>> 0;
        const lp = this.addEndpoints(t, lbase, local);
        dispatch(externalKeys, nodePortKey, this.localTail(t, nc, cp, local.length, lp), lbase);
      }
    }
    this.firewall(t, sp, suffix);
    return t;
  }

  /**
   * ClientIP affinity: a chain per port picks `index = numgen`, overrides it from the client's
   * remembered mark and refreshes the entry, then the shared affinity tail looks the mark up.
   */
  private affinityPort(t: TableState, sp: ServicePort, base: number, clusterKeys: string[], externalKeys: string[], nodePortKey: string | undefined): void {
    const w = this.w;
    const pick = (n: number, offset: number, map: string, tail: string): string[] => {
      if (n === 0) return ['drop'];
      addSet(t, map, { kind: 'map', dynamic: true, decl: `type ${w.addr} : mark ; flags dynamic,timeout ; timeout ${sp.affinitySeconds}s ;` });
      const set = n === 1 ? `meta mark set ${offset}` : `meta mark set numgen random mod ${n} offset ${offset}`;
      return [set, `meta mark set ${w.ip} saddr map @${map}`, `update @${map} { ${w.ip} saddr : meta mark } goto ${tail}`];
    };
    const cluster = capped(sp.clusterEndpoints);
    cluster.forEach((e, i) => addElement(t, this.s['endpoint-pairs'], String(base + i), `${e.ip} . ${e.port}`));
    const sc = serviceChain(sp);
    t.chains.set(sc, { rules: pick(cluster.length, base, affinityMap(sp, false, this.gen), 'lb-cluster-affinity') });
    for (const k of clusterKeys) addElement(t, this.s['service-ips'], k, `goto ${sc}`);
    if (hasExternal(sp)) {
      const ec = externalChain(sp);
      let rules: string[];
      if (!sp.externalLocal) {
        rules = pick(cluster.length, base, affinityMap(sp, false, this.gen), 'lb-external-affinity');
      } else {
        const local = capped(sp.localEndpoints);
        const lbase = base + LOCAL_BIT;
        local.forEach((e, i) => addElement(t, this.s['endpoint-pairs'], String(lbase + i), `${e.ip} . ${e.port}`));
        rules = [
          ...(this.clusterCidrs.length ? [`${w.ip} saddr ${anon(this.clusterCidrs)} goto ${sc}`] : []),
          `fib saddr type local goto ${sc}`,
          ...pick(local.length, lbase, affinityMap(sp, true, this.gen), dnatChain(true)),
        ];
      }
      t.chains.set(ec, { rules });
      for (const k of externalKeys) addElement(t, this.s['service-ips'], k, `goto ${ec}`);
      if (nodePortKey) addElement(t, this.s['service-nodeports'], nodePortKey, `goto ${ec}`);
    }
    this.firewall(t, sp, ` . ${sp.protocol} . ${sp.port}`);
  }

  /**
   * One list of endpoints (the ~100,000 elements of a big full sync): `slot | index : addr` and
   * the list's port under its slot, or `slot | index : addr . port` when the ports differ.
   * Returns whether it took the second form.
   */
  private addEndpoints(t: TableState, base: number, eps: readonly Endpoint[]): boolean {
    if (eps.length === 0) return false;
    const port = eps[0]!.port;
    const pairs = eps.some((e) => e.port !== port);
    // Filled at its final length: most fragments' largest part. Keyed base + i (base has no
    // bits below LOCAL_BIT, so that is base | i), which the list writes out only when read.
    const values = new Array<string>(eps.length);
    for (let i = 0; i < eps.length; i++) values[i] = pairs ? `${eps[i]!.ip} . ${eps[i]!.port}` : eps[i]!.ip;
    elementsOf(t, this.s[pairs ? 'endpoint-pairs' : 'endpoint-addrs']).pushRange(base, values);
    if (!pairs) elementsOf(t, this.s['endpoint-ports']).push(String(base), String(port));
    return pairs;
  }

  private firewall(t: TableState, sp: ServicePort, suffix: string): void {
    if (sp.sourceRanges.length === 0 || sp.loadBalancerIPs.length === 0) return;
    const fc = firewallChain(sp);
    t.chains.set(fc, { rules: [`${this.w.ip} saddr ${anon(sp.sourceRanges)} return`, 'drop'] });
    for (const ip of sp.loadBalancerIPs) addElement(t, this.s['firewall-ips'], ip + suffix, `goto ${fc}`);
  }
}

function capped(eps: readonly Endpoint[]): readonly Endpoint[] {
  return eps.length > MAX_ENDPOINTS ? eps.slice(0, MAX_ENDPOINTS) : eps;
}


/** Convenience for tests and one-off callers. */
export function renderBase(family: Family, ctx: NodeContext, gen = 1): TableState {
  return new Renderer(family, ctx, gen).base();
}
