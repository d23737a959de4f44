// flannel's DirectRouting for the VXLAN backend: a peer whose node address sits on one of this
// node's underlay subnets is reached by plain routing (podCIDR via the peer's node IP on the
// underlay device), no encapsulation; every other peer keeps VXLAN. Pure: the caller passes the
// underlay's addresses, so the decision is unit-tested without a kernel.
import { isIP } from 'node:net';
import type { NodeInfo } from '../../common/types.js';
import { contains, parseIP, parseRange } from '../ipam/ipnet.js';

/**
 * Published by a node that routes directly. A node goes direct only to peers that publish it too,
 * so both directions of a pair agree: with one side direct and the other on VXLAN, replies would
 * arrive on the other interface than the route back (strict rp_filter drops them) and a node whose
 * config still says "off" (a rolling update of the ConfigMap) would see unencapsulated pod traffic
 * it never asked for.
 */
export const DIRECT_ROUTING_ANNOTATION = 'skiff.io/direct-routing';

/**
 * Route protocol number marking direct routes (unassigned in iproute2's rt_protos). The underlay
 * device also holds the host's own routes; reading back `proto 95` finds exactly ours.
 */
export const DIRECT_ROUTE_PROTO = 95;

export interface DirectRouting {
  /** The underlay interface. */
  readonly dev: string;
  /** This node's addresses on it with their prefix length, e.g. 192.168.77.1/24. */
  readonly subnets: readonly string[];
}

/** The peer address direct routes go via for one family; IPv6 needs the peer's own IPv6 InternalIP. */
function peerAddress(n: NodeInfo, family: 4 | 6, nodeIPv4: string | undefined): string | undefined {
  if (family === 4) return nodeIPv4;
  return n.addresses.find((a) => a.type === 'InternalIP' && isIP(a.address) === 6)?.address;
}

export function onSubnet(subnets: readonly string[], ip: string): boolean {
  const { family, value } = parseIP(ip);
  return subnets.some((s) => {
    const r = parseRange(s);
    // This node's own address is on the subnet too, but a peer claiming it is a misconfiguration.
    return r.family === family && contains(r, value) && parseIP(s.split('/')[0]!).value !== value;
  });
}

/**
 * The gateway of a direct route to `peer`'s podCIDR of `family`, or undefined when that podCIDR
 * stays on VXLAN (direct routing off here or on the peer, or the peer is not on an underlay subnet).
 * `nodeIPv4` is the address the tunnel uses for this peer (published or InternalIP).
 */
export function directGateway(d: DirectRouting | undefined, peer: NodeInfo, family: 4 | 6, nodeIPv4: string | undefined): string | undefined {
  if (!d || peer.annotations[DIRECT_ROUTING_ANNOTATION] !== 'true') return undefined;
  const ip = peerAddress(peer, family, nodeIPv4);
  return ip && onSubnet(d.subnets, ip) ? ip : undefined;
}

/**
 * A route's value in PeerState: the VTEP address alone for a VXLAN route (device skiff-vx,
 * onlink), `<node IP> dev <underlay>` for a direct route. One key per podCIDR either way, as in
 * the kernel's table, so switching a peer is one `route replace`, with no gap and no stale twin.
 */
export const directVia = (gateway: string, dev: string): string => `${gateway} dev ${dev}`;

export function parseVia(value: string): { gateway: string; dev?: string } {
  const [gateway, , dev] = value.split(' ');
  return dev ? { gateway: gateway!, dev } : { gateway: gateway! };
}
