// Stale UDP conntrack entries keep sending datagrams to a gone endpoint (or into the reject that
// was in place before the first endpoint), because UDP has no handshake to fail. TCP needs none.
import type { Runner } from './exec.js';
import { CommandError } from './exec.js';
import { programmedEndpoints, type ServicePort } from './model.js';

/** conntrack(8) argument lists to run after a sync moved `old` to `next`. Pure. */
export function staleFlows(old: ServicePort | undefined, next: ServicePort | undefined): string[][] {
  const sp = next ?? old;
  if (!sp || sp.protocol !== 'udp') return [];
  const fam = sp.family === 6 ? ['-f', 'ipv6'] : [];
  const ips = [...sp.clusterIPs, ...sp.externalIPs, ...sp.loadBalancerIPs];
  const before = old ? programmedEndpoints(old) : [];
  const after = next ? programmedEndpoints(next) : [];
  const out: string[][] = [];
  if (before.length === 0 && after.length > 0) {
    // Entries created while the Service had no endpoints point nowhere useful.
    for (const ip of ips) out.push(['-D', ...fam, '-p', 'udp', '--orig-dst', ip, '--orig-port-dst', String(sp.port)]);
    if (sp.nodePort !== undefined) out.push(['-D', ...fam, '-p', 'udp', '--orig-port-dst', String(sp.nodePort)]);
    return out;
  }
  const keep = new Set(after.map((e) => e.ip));
  for (const e of before) {
    if (keep.has(e.ip)) continue;
    for (const ip of ips) out.push(['-D', ...fam, '-p', 'udp', '--orig-dst', ip, '--dst-nat', e.ip]);
    if (sp.nodePort !== undefined) out.push(['-D', ...fam, '-p', 'udp', '--orig-port-dst', String(sp.nodePort), '--dst-nat', e.ip]);
  }
  return out;
}

/** Runs the deletions; "nothing matched" (exit 1) is success. */
export async function flushFlows(run: Runner, flows: readonly string[][]): Promise<void> {
  for (const args of flows) {
    try {
      await run('conntrack', args);
    } catch (e) {
      if (!(e instanceof CommandError && e.exitCode === 1)) throw e;
    }
  }
}
