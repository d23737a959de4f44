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
  addr_info?: { local: string }[];
}

export function pickUnderlay(addrs: readonly AddrJson[], nodeIP: string): Underlay | undefined {
  const l = addrs.find((a) => (a.addr_info ?? []).some((i) => i.local === nodeIP));
  return l ? { ifname: l.ifname, mtu: l.mtu, ip: nodeIP } : undefined;
}

export async function detectUnderlay(nodeIP: string): Promise<Underlay | undefined> {
  return pickUnderlay(await ipJson<AddrJson[]>(['addr', 'show']), nodeIP);
}
