// Model -> nft table data. Layout and hook choices are explained in proxy/README.md; the key one:
// endpoints are chosen by writing "slot offset + random index" into the packet mark and looking it
// up in ONE shared map from three shared dnat rules, so the table holds one chain per Service port
// instead of one per endpoint and the shared map has only three bindings (see README for why).
import { hasExternal, type Family, type NodeContext, type ServicePort } from '../model.js';
import { addElement, emptyTable, type TableState } from './state.js';

export const TABLE = 'skiff';
export const MASQ_BIT = 0x4000;
/** Endpoint index block per Service port: cluster endpoints at 0.., local ones at LOCAL_BASE... */
export const SLOT_SHIFT = 15;
export const LOCAL_BASE = 0x2000;
export const MAX_ENDPOINTS = LOCAL_BASE;
const INDEX_MASK = (0xffffffff ^ MASQ_BIT) >>> 0;

export interface FamilyWords {
  readonly table: 'ip' | 'ip6';
  readonly addr: 'ipv4_addr' | 'ipv6_addr';
  readonly ip: 'ip' | 'ip6';
  readonly loopback: string;
}

export function words(family: Family): FamilyWords {
  return family === 4
    ? { table: 'ip', addr: 'ipv4_addr', ip: 'ip', loopback: '127.0.0.0/8' }
    : { table: 'ip6', addr: 'ipv6_addr', ip: 'ip6', loopback: '::1' };
}

export const serviceChain = (sp: ServicePort): string => `service-${sp.id}`;
export const externalChain = (sp: ServicePort): string => `external-${sp.id}`;
export const firewallChain = (sp: ServicePort): string => `firewall-${sp.id}`;
export const affinityMap = (sp: ServicePort, local: boolean): string => `affinity-${local ? 'local-' : ''}${sp.id}`;

function cidrsOf(family: Family, cidrs: readonly string[]): string[] {
  return cidrs.filter((c) => (family === 4 ? !c.includes(':') : c.includes(':')));
}

function anon(items: readonly string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`;
}

/** The fixed part: hooks, dispatch maps and shared chains. Depends only on the node context. */
export function renderBase(family: Family, ctx: NodeContext): TableState {
  const w = words(family);
  const t = emptyTable();
  const tuple = `${w.addr} . inet_proto . inet_service`;
  const map = (name: string, decl: string): void => void t.sets.set(name, { kind: 'map', decl });
  const set = (name: string, decl: string): void => void t.sets.set(name, { kind: 'set', decl });
  set('cluster-ips', `type ${w.addr} ;`);
  map('service-ips', `type ${tuple} : verdict ;`);
  map('service-nodeports', 'type inet_proto . inet_service : verdict ;');
  map('no-endpoint-services', `type ${tuple} : verdict ;`);
  map('no-endpoint-nodeports', 'type inet_proto . inet_service : verdict ;');
  map('firewall-ips', `type ${tuple} : verdict ;`);
  map('endpoints', `type mark : ${w.addr} . inet_service ;`);
  set('hairpin', `type ${w.addr} . ${w.addr} ;`);

  const nodePortCidrs = cidrsOf(family, ctx.nodePortAddresses);
  let nodePortMatch: string;
  if (nodePortCidrs.length > 0) {
    set('nodeport-ips', `type ${w.addr} ; flags interval ; auto-merge ;`);
    for (const c of nodePortCidrs) addElement(t, 'nodeport-ips', c);
    nodePortMatch = `${w.ip} daddr @nodeport-ips`;
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
  chain('filter-output', ['ct state new jump service-endpoints-check', 'ct state new jump cluster-ips-check'], 'type filter hook output priority -110 ;');
  chain('filter-output-post-dnat', ['ct state new jump firewall-check'], 'type filter hook output priority -90 ;');
  chain('nat-prerouting', ['jump services'], 'type nat hook prerouting priority -100 ;');
  chain('nat-output', ['jump services'], 'type nat hook output priority -100 ;');
  chain('nat-postrouting', ['jump masquerading'], 'type nat hook postrouting priority 100 ;');
  chain('services', [`${w.ip} daddr . meta l4proto . th dport vmap @service-ips`, `${nodePortMatch} meta l4proto . th dport vmap @service-nodeports`]);
  chain('masquerading', [
    `ct status dnat ${w.ip} saddr . ${w.ip} daddr @hairpin masquerade fully-random`,
    `meta mark & ${hex(MASQ_BIT)} == 0 return`,
    `meta mark set meta mark ^ ${hex(MASQ_BIT)}`,
    'masquerade fully-random',
  ]);
  chain('service-endpoints-check', [`${w.ip} daddr . meta l4proto . th dport vmap @no-endpoint-services`]);
  chain('nodeport-endpoints-check', [`${nodePortMatch} meta l4proto . th dport vmap @no-endpoint-nodeports`]);
  const svcCidrs = cidrsOf(family, ctx.serviceCIDRs);
  chain('cluster-ips-check', [`${w.ip} daddr @cluster-ips reject`, ...(svcCidrs.length ? [`${w.ip} daddr ${anon(svcCidrs)} drop`] : [])]);
  chain('firewall-check', [`${w.ip} daddr . meta l4proto . th dport vmap @firewall-ips`]);
  chain('reject-chain', ['reject']);
  // The shared tails of every Service chain: masquerade decision, then DNAT to the endpoint whose
  // index the Service chain wrote into the mark. Three kinds x three protocols, all binding @endpoints.
  const clusterCidrs = cidrsOf(family, ctx.clusterCIDRs);
  const masq = `meta mark set meta mark | ${hex(MASQ_BIT)}`;
  const clusterMasq = ctx.masqueradeAll || clusterCidrs.length === 0 ? masq : `${w.ip} saddr != ${anon(clusterCidrs)} ${masq}`;
  for (const p of ['tcp', 'udp', 'sctp']) {
    const dnat = `meta l4proto ${p} dnat ${w.ip} to meta mark & ${hex(INDEX_MASK)} map @endpoints`;
    chain(`lb-cluster-${p}`, [clusterMasq, dnat]);
    chain(`lb-external-${p}`, [masq, dnat]);
    chain(`lb-local-${p}`, [dnat]);
  }
  return t;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/** Everything one ServicePort contributes, given its slot in the endpoints map. */
export function renderServicePort(sp: ServicePort, slot: number, ctx: NodeContext): TableState {
  const w = words(sp.family);
  const t = emptyTable();
  const base = slot << SLOT_SHIFT >>> 0;
  const tuple = (ip: string): string => `${ip} . ${sp.protocol} . ${sp.port}`;
  const externalTuples = [...sp.externalIPs, ...sp.loadBalancerIPs].map(tuple);
  for (const ip of sp.clusterIPs) addElement(t, 'cluster-ips', ip);

  if (!sp.hasEndpoints) {
    // Nothing anywhere: refuse at once (reject in the filter hooks) rather than let clients time out.
    for (const ip of sp.clusterIPs) addElement(t, 'no-endpoint-services', tuple(ip), 'goto reject-chain');
    for (const k of externalTuples) addElement(t, 'no-endpoint-services', k, 'goto reject-chain');
    if (sp.nodePort !== undefined) addElement(t, 'no-endpoint-nodeports', `${sp.protocol} . ${sp.nodePort}`, 'goto reject-chain');
    return t;
  }

  // The index goes into the mark and the rule jumps to the shared tail (one rule without affinity).
  const pick = (n: number, offset: number, affinity: string | undefined, tail: string): string[] => {
    const set = n === 1 ? `meta mark set ${offset}` : `meta mark set numgen random mod ${n} offset ${offset}`;
    if (!affinity) return [`${set} goto ${tail}-${sp.protocol}`];
    t.sets.set(affinity, { kind: 'map', dynamic: true, decl: `type ${w.addr} : mark ; flags dynamic,timeout ; timeout ${sp.affinitySeconds}s ;` });
    return [set, `meta mark set ${w.ip} saddr map @${affinity}`, `update @${affinity} { ${w.ip} saddr : meta mark } goto ${tail}-${sp.protocol}`];
  };
  const sc = serviceChain(sp);
  const cluster = sp.clusterEndpoints.slice(0, MAX_ENDPOINTS);
  const clusterAffinity = sp.affinitySeconds ? affinityMap(sp, false) : undefined;
  cluster.forEach((e, i) => addElement(t, 'endpoints', String(base + i), `${e.ip} . ${e.port}`));
  // Only a pod on this node can reach itself through this node (endpoints of unknown node count as local).
  for (const e of [...sp.clusterEndpoints, ...sp.localEndpoints]) if (e.local || e.nodeName === undefined) addElement(t, 'hairpin', `${e.ip} . ${e.ip}`);
  t.chains.set(sc, { rules: cluster.length === 0 ? ['drop'] : pick(cluster.length, base, clusterAffinity, 'lb-cluster') });
  for (const ip of sp.clusterIPs) addElement(t, 'service-ips', tuple(ip), `goto ${sc}`);

  if (hasExternal(sp)) {
    const ec = externalChain(sp);
    let rules: string[];
    if (!sp.externalLocal) {
      rules = cluster.length === 0 ? ['drop'] : pick(cluster.length, base, clusterAffinity, 'lb-external');
    } else {
      const local = sp.localEndpoints.slice(0, MAX_ENDPOINTS);
      local.forEach((e, i) => addElement(t, 'endpoints', String(base + LOCAL_BASE + i), `${e.ip} . ${e.port}`));
      const clusterCidrs = cidrsOf(sp.family, ctx.clusterCIDRs);
      rules = [
        // Pods and the node itself reach external addresses as cluster traffic (kube-proxy's short-circuit).
        ...(clusterCidrs.length ? [`${w.ip} saddr ${anon(clusterCidrs)} goto ${sc}`] : []),
        `fib saddr type local goto ${sc}`,
        ...(local.length === 0 ? ['drop'] : pick(local.length, base + LOCAL_BASE, sp.affinitySeconds ? affinityMap(sp, true) : undefined, 'lb-local')),
      ];
    }
    t.chains.set(ec, { rules });
    for (const k of externalTuples) addElement(t, 'service-ips', k, `goto ${ec}`);
    if (sp.nodePort !== undefined) addElement(t, 'service-nodeports', `${sp.protocol} . ${sp.nodePort}`, `goto ${ec}`);
  }

  const ranges = sp.sourceRanges;
  if (ranges.length > 0 && sp.loadBalancerIPs.length > 0) {
    const fc = firewallChain(sp);
    t.chains.set(fc, { rules: [`${w.ip} saddr ${anon(ranges)} return`, 'drop'] });
    for (const ip of sp.loadBalancerIPs) addElement(t, 'firewall-ips', tuple(ip), `goto ${fc}`);
  }
  return t;
}
