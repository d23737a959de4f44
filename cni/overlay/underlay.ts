// Which interface carries the overlay and how big its packets may be: the interface holding the
// node's IP. The pod MTU is derived from it (VXLAN over IPv4 costs 50 bytes), never hard-coded.
import { ipJson } from '../plugin/exec.js';

export const VXLAN_OVERHEAD_V4 = 50;

export interface Underlay {
  readonly ifname: string;
  readonly mtu: number;
  readonly ip: string;
  /** Every global address on the interface with its prefix (192.168.77.1/24): direct routing's subnets. */
  readonly subnets: readonly string[];
}

interface AddrJson {
  ifname: string;
  mtu: number;
  link_type?: string;
  addr_info?: { local: string; prefixlen?: number; scope?: string }[];
}

export function pickUnderlay(addrs: readonly AddrJson[], nodeIP: string): Underlay | undefined {
  // Never loopback: node-local DNS may also put the node IP on `lo` (a listen address), and a
  // VXLAN device on lo with a 65486 MTU is refused by the kernel (EINVAL) after a restart.
  const l = addrs.find((a) => a.link_type !== 'loopback' && a.ifname !== 'lo' && (a.addr_info ?? []).some((i) => i.local === nodeIP));
  if (!l) return undefined;
  // Link-local subnets hold every neighbour's fe80:: address, but node addresses are never link-local.
  const subnets = (l.addr_info ?? []).filter((i) => i.prefixlen !== undefined && (i.scope ?? 'global') === 'global').map((i) => `${i.local}/${i.prefixlen}`);
  return { ifname: l.ifname, mtu: l.mtu, ip: nodeIP, subnets };
}

export async function detectUnderlay(nodeIP: string): Promise<Underlay | undefined> {
  return pickUnderlay(await ipJson<AddrJson[]>(['addr', 'show']), nodeIP);
}
