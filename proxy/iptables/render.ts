// Model -> iptables-restore input (for --noflush): every chain is SKIFF-*, declared (which
// flushes it) and refilled in one restore per table family, like kube-proxy's iptables mode.
// Balancing is the classic statistic cascade: endpoint i of n is taken with probability 1/(n-i).
import { createHash } from 'node:crypto';
import { hasExternal, type Endpoint, type Family, type L4, type NodeContext, type ServicePort } from '../model.js';

export const MASQ = '0x4000';
export const DROP_MARK = '0x8000';

/** Built-in chain -> our chain, with the match kube-proxy uses for the jump. */
export const JUMPS: readonly { table: 'nat' | 'filter'; chain: string; rule: string }[] = [
  { table: 'nat', chain: 'PREROUTING', rule: '-j SKIFF-SERVICES' },
  { table: 'nat', chain: 'OUTPUT', rule: '-j SKIFF-SERVICES' },
  { table: 'nat', chain: 'POSTROUTING', rule: '-j SKIFF-POSTROUTING' },
  { table: 'filter', chain: 'INPUT', rule: '-m conntrack --ctstate NEW -j SKIFF-EXTERNAL-SERVICES' },
  { table: 'filter', chain: 'INPUT', rule: '-m conntrack --ctstate NEW -j SKIFF-SERVICES' },
  { table: 'filter', chain: 'INPUT', rule: '-j SKIFF-FILTER' },
  { table: 'filter', chain: 'FORWARD', rule: '-m conntrack --ctstate NEW -j SKIFF-SERVICES' },
  { table: 'filter', chain: 'FORWARD', rule: '-j SKIFF-FILTER' },
  { table: 'filter', chain: 'FORWARD', rule: '-j SKIFF-FORWARD' },
  { table: 'filter', chain: 'OUTPUT', rule: '-m conntrack --ctstate NEW -j SKIFF-SERVICES' },
  { table: 'filter', chain: 'OUTPUT', rule: '-j SKIFF-FILTER' },
];

const hashCache = new Map<string, string>();
function hash(s: string): string {
  let h = hashCache.get(s);
  if (h === undefined) {
    h = createHash('sha256').update(s).digest('base64url').replace(/[-_]/g, 'X').slice(0, 16).toUpperCase();
    hashCache.set(s, h);
  }
  return h;
}

export const svcChain = (sp: ServicePort): string => `SKIFF-SVC-${hash(sp.id)}`;
export const extChain = (sp: ServicePort): string => `SKIFF-EXT-${hash(sp.id)}`;
export const localChain = (sp: ServicePort): string => `SKIFF-SVL-${hash(sp.id)}`;
export const fwChain = (sp: ServicePort): string => `SKIFF-FW-${hash(sp.id)}`;
export const sepChain = (sp: ServicePort, e: Endpoint): string => `SKIFF-SEP-${hash(`${sp.id}|${e.ip}|${e.port}`)}`;

export interface RestoreTables {
  /** table -> chain -> rules (without "-A CHAIN"). Insertion order is output order. */
  readonly nat: Map<string, string[]>;
  readonly filter: Map<string, string[]>;
}

const host = (f: Family, ip: string): string => `${ip}/${f === 4 ? 32 : 128}`;
/**
 * TCP is refused with a reset: this kernel takes an ICMP error in SYN_SENT as soft and the client
 * would wait for its SYN retransmit (~1 s). UDP and SCTP keep the ICMP port unreachable.
 */
const reject = (p: L4): string => (p === 'tcp' ? '-j REJECT --reject-with tcp-reset' : '-j REJECT');

export function renderIptables(family: Family, ports: Iterable<ServicePort>, ctx: NodeContext): RestoreTables {
  const nat = new Map<string, string[]>();
  const filter = new Map<string, string[]>();
  const chain = (t: Map<string, string[]>, name: string): string[] => {
    let c = t.get(name);
    if (!c) t.set(name, (c = []));
    return c;
  };
  const services = chain(nat, 'SKIFF-SERVICES');
  const nodeports = chain(nat, 'SKIFF-NODEPORTS');
  chain(nat, 'SKIFF-MARK-MASQ').push(`-j MARK --or-mark ${MASQ}`);
  chain(nat, 'SKIFF-MARK-DROP').push(`-j MARK --or-mark ${DROP_MARK}`);
  chain(nat, 'SKIFF-POSTROUTING').push(`-m mark ! --mark ${MASQ}/${MASQ} -j RETURN`, `-j MARK --xor-mark ${MASQ}`, '-j MASQUERADE --random-fully');
  const fServices = chain(filter, 'SKIFF-SERVICES');
  const fExternal = chain(filter, 'SKIFF-EXTERNAL-SERVICES');
  // What the nat rules marked for dropping (source ranges, Local policies without a local
  // endpoint), wherever it came from; INVALID only for forwarded traffic (see proxy/README.md).
  chain(filter, 'SKIFF-FILTER').push(`-m mark --mark ${DROP_MARK}/${DROP_MARK} -j DROP`);
  chain(filter, 'SKIFF-FORWARD').push('-m conntrack --ctstate INVALID -j DROP');
  const clusterCidrs = ctx.clusterCIDRs.filter((c) => c.includes(':') === (family === 6));
  // NodePorts answer on the node's own addresses, only those within nodePortAddresses when set.
  const npCidrs = ctx.nodePortAddresses.filter((c) => c.includes(':') === (family === 6));
  const nodeAddrs = npCidrs.length ? npCidrs.map((c) => `-d ${c} -m addrtype --dst-type LOCAL`) : ['-m addrtype --dst-type LOCAL'];
  const clusterIPs = new Set<string>();

  const balance = (sp: ServicePort, target: string[], eps: readonly Endpoint[], affinity: boolean): void => {
    const p = sp.protocol;
    if (affinity) {
      for (const e of eps) target.push(`-m recent --name ${sepChain(sp, e)} --mask ${family === 4 ? '255.255.255.255' : 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'} --rsource --rcheck --seconds ${sp.affinitySeconds} --reap -j ${sepChain(sp, e)}`);
    }
    eps.forEach((e, i) => {
      const left = eps.length - i;
      target.push(left === 1 ? `-j ${sepChain(sp, e)}` : `-m statistic --mode random --probability ${(1 / left).toFixed(10)} -j ${sepChain(sp, e)}`);
      const sep = chain(nat, sepChain(sp, e));
      if (sep.length) return;
      sep.push(`-s ${host(family, e.ip)} -j SKIFF-MARK-MASQ`);
      if (affinity) sep.push(`-m recent --name ${sepChain(sp, e)} --mask ${family === 4 ? '255.255.255.255' : 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'} --rsource --set`);
      sep.push(`-p ${p} -m ${p} -j DNAT --to-destination ${family === 4 ? e.ip : `[${e.ip}]`}:${e.port}`);
    });
  };

  for (const sp of ports) {
    if (sp.family !== family) continue;
    const match = (ip: string): string => `-d ${host(family, ip)} -p ${sp.protocol} -m ${sp.protocol} --dport ${sp.port}`;
    const externals = [...sp.externalIPs, ...sp.loadBalancerIPs];
    for (const ip of sp.clusterIPs) clusterIPs.add(ip);
    if (!sp.hasEndpoints) {
      for (const ip of [...sp.clusterIPs, ...externals]) fServices.push(`${match(ip)} ${reject(sp.protocol)}`);
      if (sp.nodePort !== undefined) for (const a of nodeAddrs) fExternal.push(`${a} -p ${sp.protocol} -m ${sp.protocol} --dport ${sp.nodePort} ${reject(sp.protocol)}`);
      continue;
    }
    const svc = chain(nat, svcChain(sp));
    if (sp.clusterEndpoints.length === 0) {
      svc.push('-j SKIFF-MARK-DROP');
    } else {
      svc.push(ctx.masqueradeAll || clusterCidrs.length === 0 ? '-j SKIFF-MARK-MASQ' : `! -s ${clusterCidrs.join(',')} -j SKIFF-MARK-MASQ`);
      balance(sp, svc, sp.clusterEndpoints, sp.affinitySeconds !== undefined);
    }
    for (const ip of sp.clusterIPs) services.push(`${match(ip)} -j ${svcChain(sp)}`);
    if (!hasExternal(sp)) continue;
    const ext = chain(nat, extChain(sp));
    if (!sp.externalLocal) {
      ext.push('-j SKIFF-MARK-MASQ', `-j ${svcChain(sp)}`);
    } else {
      if (clusterCidrs.length) ext.push(`-s ${clusterCidrs.join(',')} -j ${svcChain(sp)}`);
      ext.push('-m addrtype --src-type LOCAL -j SKIFF-MARK-MASQ', `-m addrtype --src-type LOCAL -j ${svcChain(sp)}`);
      if (sp.localEndpoints.length === 0) ext.push('-j SKIFF-MARK-DROP');
      else {
        ext.push(`-j ${localChain(sp)}`);
        balance(sp, chain(nat, localChain(sp)), sp.localEndpoints, sp.affinitySeconds !== undefined);
      }
    }
    const firewalled = sp.sourceRanges.length > 0;
    if (firewalled && sp.loadBalancerIPs.length) chain(nat, fwChain(sp)).push(`-s ${sp.sourceRanges.join(',')} -j ${extChain(sp)}`, '-j SKIFF-MARK-DROP');
    for (const ip of sp.externalIPs) services.push(`${match(ip)} -j ${extChain(sp)}`);
    for (const ip of sp.loadBalancerIPs) services.push(`${match(ip)} -j ${firewalled ? fwChain(sp) : extChain(sp)}`);
    if (sp.nodePort !== undefined) nodeports.push(`-p ${sp.protocol} -m ${sp.protocol} --dport ${sp.nodePort} -j ${extChain(sp)}`);
  }
  // Any other port on an allocated cluster IP is refused (DNATed traffic no longer has that address),
  // and the rest of the Service CIDR dropped, as kube-proxy's nftables mode does.
  for (const ip of clusterIPs) fServices.push(`-d ${host(family, ip)} -p tcp ${reject('tcp')}`, `-d ${host(family, ip)} -j REJECT`);
  for (const c of ctx.serviceCIDRs) if (c.includes(':') === (family === 6)) fServices.push(`-d ${c} -j DROP`);
  for (const a of nodeAddrs) services.push(`${a} -j SKIFF-NODEPORTS`);
  return { nat, filter };
}

/**
 * The restore text that takes the kernel from `prev` (what was last written) to `next`: only the
 * chains whose rules changed are declared (flushed) and refilled, the ones gone are flushed and
 * deleted, the rest is not mentioned (--noflush leaves it alone). kube-proxy's partial sync: one
 * endpoint change at 10,000 Services is a few chains instead of ~110,000. A chain that goes away
 * is only jumped to from chains whose rules change with it, so it is unreferenced by its `-X`.
 * Empty when nothing changed.
 */
export function restoreDiff(prev: RestoreTables, next: RestoreTables): string {
  const out: string[] = [];
  for (const table of ['filter', 'nat'] as const) {
    const before = prev[table];
    const changed: string[] = [];
    for (const [name, rules] of next[table]) if (!sameRules(before.get(name), rules)) changed.push(name);
    const gone = [...before.keys()].filter((name) => !next[table].has(name));
    if (changed.length + gone.length === 0) continue;
    out.push(`*${table}`);
    for (const name of [...changed, ...gone]) out.push(`:${name} - [0:0]`);
    for (const name of changed) for (const r of next[table].get(name)!) out.push(`-A ${name} ${r}`);
    for (const name of gone) out.push(`-X ${name}`);
    out.push('COMMIT');
  }
  return out.length ? out.join('\n') + '\n' : '';
}

function sameRules(a: readonly string[] | undefined, b: readonly string[]): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** iptables-restore --noflush text: declares (flushes) every chain, fills it, deletes `stale`. */
export function restoreText(t: RestoreTables, stale: { nat: readonly string[]; filter: readonly string[] }): string {
  const out: string[] = [];
  for (const table of ['filter', 'nat'] as const) {
    out.push(`*${table}`);
    const chains = t[table];
    for (const name of chains.keys()) out.push(`:${name} - [0:0]`);
    for (const name of stale[table]) out.push(`:${name} - [0:0]`);
    for (const [name, rules] of chains) for (const r of rules) out.push(`-A ${name} ${r}`);
    for (const name of stale[table]) out.push(`-X ${name}`);
    out.push('COMMIT');
  }
  return out.join('\n') + '\n';
}
