// Which interface carries the overlay and how big its packets may be: the interface holding the
// node's IP. The pod MTU is derived from it (VXLAN over IPv4 costs 50 bytes), never hard-coded.
import { ipJson } from '../plugin/exec.js';

export const VXLAN_OVERHEAD_V4 = 50;

export interface Underlay {
  readonly ifname: string;
  readonly mtu: number;
  readonly ip: string;
}

interface AddrJson {
  ifname: string;
  mtu: number;
  link_type?: string;
  addr_info?: { local: string }[];
}

export function pickUnderlay(addrs: readonly AddrJson[], nodeIP: string): Underlay | undefined {
  // Never loopback: node-local DNS may also put the node IP on `lo` (a listen address), and a
  // VXLAN device on lo with a 65486 MTU is refused by the kernel (EINVAL) after a restart.
  const l = addrs.find((a) => a.link_type !== 'loopback' && a.ifname !== 'lo' && (a.addr_info ?? []).some((i) => i.local === nodeIP));
  return l ? { ifname: l.ifname, mtu: l.mtu, ip: nodeIP } : undefined;
}

export async function detectUnderlay(nodeIP: string): Promise<Underlay | undefined> {
  return pickUnderlay(await ipJson<AddrJson[]>(['addr', 'show']), nodeIP);
}
