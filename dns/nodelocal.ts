// NodeLocal DNSCache style serving: the cluster DNS Service IPs are added to `lo` so pods' queries
// are delivered to this node's agent, and a tiny nft table exempts that traffic from conntrack
// (see README: no conntrack entry per query, and notrack also keeps the Service DNAT away).
// desiredNft() is pure; apply/cleanup take a runner so tests can aim them at a namespace.
import { isIPv4 } from 'node:net';
import { runCommand } from '../common/exec.js';

export const NFT_TABLE = 'skiff-dns';

/** Runs argv (optionally with stdin) and returns stdout; throws on a non-zero exit. */
export type Runner = (argv: readonly string[], input?: string) => Promise<string>;

export const hostRunner: Runner = (argv, input) => runCommand(argv, { input, errorCode: 'ERR_DNS_COMMAND' });

/** Loopback addresses are already local and need neither an address nor a conntrack exemption. */
export function managedIPs(ips: readonly string[]): string[] {
  return ips.filter((ip) => !(isIPv4(ip) && ip.startsWith('127.')) && ip !== '::1');
}

export function desiredNft(ips: readonly string[], port: number): string {
  const v4 = ips.filter((ip) => isIPv4(ip));
  const v6 = ips.filter((ip) => !isIPv4(ip));
  const rules = (dir: 'pre' | 'out'): string[] => {
    const out: string[] = [];
    for (const [fam, set] of [['ip', v4], ['ip6', v6]] as const) {
      if (set.length === 0) continue;
      const s = `{ ${set.join(', ')} }`;
      for (const proto of ['udp', 'tcp']) {
        out.push(`\t\t${fam} daddr ${s} ${proto} dport ${port} notrack`);
        if (dir === 'out') out.push(`\t\t${fam} saddr ${s} ${proto} sport ${port} notrack`);
      }
    }
    return out;
  };
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
    '}',
    '',
  ].join('\n');
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
export async function applyNodeLocal(ips: readonly string[], port: number, run: Runner = hostRunner): Promise<void> {
  const managed = managedIPs(ips);
  if (managed.length === 0) return;
  const have = await localAddresses(run);
  for (const ip of managed) if (!have.has(ip)) await run(['ip', 'addr', 'add', `${ip}/${prefixLen(ip)}`, 'dev', 'lo']);
  await run(['nft', '-f', '-'], desiredNft(managed, port));
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
