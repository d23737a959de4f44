// What the VXLAN device must hold for the other nodes, as a pure function of the Node list:
// flannel's layout, where each node's VTEP address is its podCIDR's network address. Per peer:
// a route to its podCIDR via that address (onlink), a permanent neighbour entry mapping the
// address to the peer's VTEP MAC, and an FDB entry sending that MAC to the peer's node IP.
import { isIP } from 'node:net';
import type { NodeInfo } from '../../common/types.js';
import { formatIP, parseRange } from '../ipam/ipnet.js';

export const VTEP_MAC_ANNOTATION = 'skiff.io/vtep-mac';
export const PUBLIC_IP_ANNOTATION = 'skiff.io/public-ip';

export interface PeerState {
  /** podCIDR -> gateway (the peer's VTEP address). */
  readonly routes: ReadonlyMap<string, string>;
  /** VTEP address -> MAC. */
  readonly neighbours: ReadonlyMap<string, string>;
  /** MAC -> peer node IP. */
  readonly fdb: ReadonlyMap<string, string>;
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/** The node address the overlay tunnels to: the published one, else the first InternalIP. */
export function nodeIPv4(n: NodeInfo): string | undefined {
  const pub = n.annotations[PUBLIC_IP_ANNOTATION];
  if (pub && isIP(pub) === 4) return pub;
  return n.addresses.find((a) => a.type === 'InternalIP' && isIP(a.address) === 4)?.address;
}

export function vtepAddress(podCIDR: string): string {
  const r = parseRange(podCIDR);
  return formatIP(r.network, r.family);
}

export function desiredPeers(self: string, nodes: Iterable<NodeInfo>): PeerState {
  const routes = new Map<string, string>();
  const neighbours = new Map<string, string>();
  const fdb = new Map<string, string>();
  for (const n of nodes) {
    if (n.name === self) continue;
    const mac = n.annotations[VTEP_MAC_ANNOTATION]?.toLowerCase();
    const ip = nodeIPv4(n);
    // A peer that has not published its VTEP yet gets nothing: half an entry set blackholes traffic.
    if (!mac || !MAC.test(mac) || !ip || !n.podCIDRs.some((c) => isIP(c.split('/')[0]!) === 4)) continue;
    // IPv6 pod traffic rides the same IPv4 tunnel: VXLAN carries Ethernet, so a second VTEP
    // address per family with the same MAC is all dual-stack needs.
    for (const cidr of n.podCIDRs) {
      const r = parseRange(cidr);
      const vtep = vtepAddress(cidr);
      routes.set(r.cidr, vtep);
      neighbours.set(vtep, mac);
    }
    fdb.set(mac, ip);
  }
  return { routes, neighbours, fdb };
}

export interface PeerDiff {
  readonly ipLines: string[];
  readonly bridgeLines: string[];
}

/** The commands that turn `current` into `desired` on `dev`; empty when nothing differs. */
export function diffPeers(dev: string, current: PeerState, desired: PeerState): PeerDiff {
  const ipLines: string[] = [];
  const bridgeLines: string[] = [];
  // Neighbours before routes so a new route never resolves through a missing entry.
  for (const [ip, mac] of desired.neighbours) if (current.neighbours.get(ip) !== mac) ipLines.push(`neigh replace ${ip} lladdr ${mac} dev ${dev} nud permanent`);
  for (const [cidr, gw] of desired.routes) if (current.routes.get(cidr) !== gw) ipLines.push(`route replace ${cidr} via ${gw} dev ${dev} onlink`);
  for (const cidr of current.routes.keys()) if (!desired.routes.has(cidr)) ipLines.push(`route del ${cidr} dev ${dev}`);
  for (const ip of current.neighbours.keys()) if (!desired.neighbours.has(ip)) ipLines.push(`neigh del ${ip} dev ${dev}`);
  for (const [mac, dst] of desired.fdb) if (current.fdb.get(mac) !== dst) bridgeLines.push(`fdb replace ${mac} dev ${dev} dst ${dst} self permanent`);
  for (const mac of current.fdb.keys()) if (!desired.fdb.has(mac)) bridgeLines.push(`fdb del ${mac} dev ${dev} self`);
  return { ipLines, bridgeLines };
}
