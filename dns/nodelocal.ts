// NodeLocal DNSCache style serving: the cluster DNS Service IPs are added to `lo` so pods' queries
// are delivered to this node's agent, and a tiny nft table exempts that traffic from conntrack
// (see README: no conntrack entry per query, and notrack also keeps the Service DNAT away) while
// the agent listens, and hands it to another node's agent while it does not.
// desiredNft() is pure; apply/cleanup take a runner so tests can aim them at a namespace.
import { isIP, isIPv4 } from 'node:net';
import type { NodeInfo } from '../common/types.js';
import { runCommand } from '../common/exec.js';

export const NFT_TABLE = 'skiff-dns';

/** Runs argv (optionally with stdin) and returns stdout; throws on a non-zero exit. */
export type Runner = (argv: readonly string[], input?: string) => Promise<string>;

export const hostRunner: Runner = (argv, input) => runCommand(argv, { input, errorCode: 'ERR_DNS_COMMAND' });

/** Loopback addresses are already local and need neither an address nor a conntrack exemption. */
export function managedIPs(ips: readonly string[]): string[] {
  return ips.filter((ip) => !(isIPv4(ip) && ip.startsWith('127.')) && ip !== '::1');
}

/**
 * The skiff-dns table. Pods' queries skip conntrack only while a local socket takes them (the
 * `socket` match works in prerouting, not in output); without one (the agent is restarting) the
 * packet is tracked, and the fallback chain, ahead of the proxy's Service DNAT, sends it to the
 * DNS of another node. Node-local processes query through output, where `socket` would find the
 * sender's own socket, so they keep the unconditional exemption (and no fallback).
 */
export function desiredNft(ips: readonly string[], port: number, peers: readonly string[] = []): string {
  const v4 = ips.filter((ip) => isIPv4(ip));
  const v6 = ips.filter((ip) => !isIPv4(ip));
  const families = [['ip', v4, peers.filter((p) => isIPv4(p))], ['ip6', v6, peers.filter((p) => !isIPv4(p))]] as const;
  const rules = (dir: 'pre' | 'out'): string[] => {
    const out: string[] = [];
    for (const [fam, set] of families) {
      if (set.length === 0) continue;
      const s = `{ ${set.join(', ')} }`;
      for (const proto of ['udp', 'tcp']) {
        if (dir === 'pre') for (const t of [0, 1]) out.push(`\t\t${fam} daddr ${s} ${proto} dport ${port} socket transparent ${t} notrack`);
        else out.push(`\t\t${fam} daddr ${s} ${proto} dport ${port} notrack`, `\t\t${fam} saddr ${s} ${proto} sport ${port} notrack`);
      }
    }
    return out;
  };
  const fallback: string[] = [];
  for (const [fam, set, to] of families) {
    if (set.length === 0 || to.length === 0) continue;
    const target = to.length === 1 ? to[0] : `numgen random mod ${to.length} map { ${to.map((p, i) => `${i} : ${p}`).join(', ')} }`;
    fallback.push(`\t\t${fam} daddr { ${set.join(', ')} } meta l4proto { tcp, udp } th dport ${port} dnat ${fam} to ${target}`);
  }
  return [
    `table inet ${NFT_TABLE}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    '\tchain prerouting {',
    '\t\ttype filter hook prerouting priority raw; policy accept;',
    ...rules('pre'),
    '\t}',
    '\tchain output {',
    '\t\ttype filter hook output priority raw; policy accept;',
    ...rules('out'),
    '\t}',
    '\tchain fallback {',
    '\t\ttype nat hook prerouting priority dstnat - 10; policy accept;',
    ...fallback,
    '\t}',
    '}',
    '',
  ].join('\n');
}

/** How many other nodes a node falls back to: enough to ride out one of them restarting too. */
export const FALLBACK_PEERS = 3;

/**
 * The nodes whose DNS takes this node's pods' queries while its agent is down: Ready nodes other
 * than this one, by rendezvous hashing on (this node, peer), so every node picks a different,
 * stable few and one node joining or leaving moves few choices. Their InternalIPs, where each
 * agent also listens.
 */
export function fallbackPeers(self: string, nodes: Iterable<NodeInfo>, max = FALLBACK_PEERS): string[] {
  const own = new Set<string>();
  const ranked: { score: number; ips: string[] }[] = [];
  for (const n of nodes) {
    const ips = n.addresses.filter((a) => a.type === 'InternalIP' && isIP(a.address) !== 0).map((a) => a.address);
    if (n.name === self) {
      for (const ip of ips) own.add(ip);
      continue;
    }
    if (!n.ready || ips.length === 0) continue;
    ranked.push({ score: fnv1a(`${self}\u0000${n.name}`), ips });
  }
  ranked.sort((a, b) => a.score - b.score);
  const out: string[] = [];
  for (const fam of [4, 6]) {
    let taken = 0;
    for (const r of ranked) {
      if (taken >= max) break;
      const ip = r.ips.find((a) => isIP(a) === fam && !own.has(a));
      if (!ip) continue;
      out.push(ip);
      taken++;
    }
  }
  return out;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** This node's InternalIPs: where the other nodes' fallback reaches this agent. */
export function nodeListenIPs(self: NodeInfo | undefined): string[] {
  return (self?.addresses ?? []).filter((a) => a.type === 'InternalIP' && isIP(a.address) !== 0).map((a) => a.address);
}

function prefixLen(ip: string): number {
  return isIPv4(ip) ? 32 : 128;
}

/** Every local address and the interface holding it. */
async function localAddresses(run: Runner): Promise<Map<string, string>> {
  const j = JSON.parse(await run(['ip', '-j', 'addr', 'show'])) as { ifname: string; addr_info?: { local: string }[] }[];
  return new Map(j.flatMap((l) => (l.addr_info ?? []).map((a) => [a.local, l.ifname] as const)));
}

/**
 * Adds the addresses to lo and writes the notrack table; idempotent. An address another interface
 * already holds (the node IP as a listen address) is local as it is: a copy on lo would make it look
 * like the loopback's to anything that picks an interface by address, such as the overlay's underlay
 * detection.
 */
export async function applyNodeLocal(ips: readonly string[], port: number, run: Runner = hostRunner, peers: readonly string[] = []): Promise<void> {
  const managed = managedIPs(ips);
  if (managed.length === 0) return;
  const have = await localAddresses(run);
  for (const ip of managed) if (!have.has(ip)) await run(['ip', 'addr', 'add', `${ip}/${prefixLen(ip)}`, 'dev', 'lo']);
  await run(['nft', '-f', '-'], desiredNft(managed, port, peers));
}

/** Removes what applyNodeLocal made; safe to run when nothing is there. */
export async function cleanupNodeLocal(ips: readonly string[], run: Runner = hostRunner): Promise<void> {
  const managed = managedIPs(ips);
  let have = new Map<string, string>();
  try {
    have = await localAddresses(run);
  } catch {
    /* no ip tool: nothing of ours can exist */
  }
  for (const ip of managed) if (have.get(ip) === 'lo') await run(['ip', 'addr', 'del', `${ip}/${prefixLen(ip)}`, 'dev', 'lo']).catch(() => undefined);
  await run(['nft', 'delete', 'table', 'inet', NFT_TABLE]).catch(() => undefined);
}
