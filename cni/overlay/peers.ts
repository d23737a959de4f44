// What the VXLAN device must hold for the other nodes, as a pure function of the Node list:
// flannel's layout, where each node's VTEP address is its podCIDR's network address. Per peer:
// a route to its podCIDR via that address (onlink), a permanent neighbour entry mapping the
// address to the peer's VTEP MAC, and an FDB entry sending that MAC to the peer's node IP.
// With direct routing (direct.ts) a podCIDR of a same-subnet peer gets only a route via the peer's
// node IP on the underlay; the neighbour and FDB entries exist only while some podCIDR of that
// peer still rides the tunnel.
import { isIP } from 'node:net';
import type { NodeInfo } from '../../common/types.js';
import { formatIP, parseRange } from '../ipam/ipnet.js';
import { DIRECT_ROUTE_PROTO, directGateway, directVia, parseVia, type DirectRouting } from './direct.js';

export const VTEP_MAC_ANNOTATION = 'skiff.io/vtep-mac';
export const PUBLIC_IP_ANNOTATION = 'skiff.io/public-ip';

export interface PeerState {
  /** podCIDR -> the peer's VTEP address, or `<node IP> dev <underlay>` for a direct route (direct.ts). */
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

/** One peer's entries; empty for this node and for a peer that has not published its VTEP. */
export interface NodePeerEntries {
  readonly routes: readonly (readonly [cidr: string, gateway: string])[];
  readonly neighbours: readonly (readonly [ip: string, mac: string])[];
  readonly fdb: readonly (readonly [mac: string, nodeIP: string])[];
}

const NONE: NodePeerEntries = { routes: [], neighbours: [], fdb: [] };

export function nodePeerEntries(self: string, n: NodeInfo, direct?: DirectRouting): NodePeerEntries {
  if (n.name === self) return NONE;
  const mac = n.annotations[VTEP_MAC_ANNOTATION]?.toLowerCase();
  const ip = nodeIPv4(n);
  // A peer that has not published its VTEP yet gets nothing: half an entry set blackholes traffic.
  if (!mac || !MAC.test(mac) || !ip || !n.podCIDRs.some((c) => isIP(c.split('/')[0]!) === 4)) return NONE;
  const routes: [string, string][] = [];
  const neighbours: [string, string][] = [];
  let tunnelled = false;
  // IPv6 pod traffic rides the same IPv4 tunnel: VXLAN carries Ethernet, so a second VTEP
  // address per family with the same MAC is all dual-stack needs.
  for (const cidr of n.podCIDRs) {
    const range = parseRange(cidr);
    const gw = directGateway(direct, n, range.family, ip);
    if (gw) {
      routes.push([range.cidr, directVia(gw, direct!.dev)]);
      continue;
    }
    const vtep = vtepAddress(cidr);
    routes.push([range.cidr, vtep]);
    neighbours.push([vtep, mac]);
    tunnelled = true;
  }
  return { routes, neighbours, fdb: tunnelled ? [[mac, ip]] : [] };
}

export function desiredPeers(self: string, nodes: Iterable<NodeInfo>, direct?: DirectRouting): PeerState {
  const routes = new Map<string, string>();
  const neighbours = new Map<string, string>();
  const fdb = new Map<string, string>();
  for (const n of nodes) {
    const e = nodePeerEntries(self, n, direct);
    for (const [k, v] of e.routes) routes.set(k, v);
    for (const [k, v] of e.neighbours) neighbours.set(k, v);
    for (const [k, v] of e.fdb) fdb.set(k, v);
  }
  return { routes, neighbours, fdb };
}

export interface PeerDiff {
  readonly ipLines: string[];
  readonly bridgeLines: string[];
}

/**
 * One entry to write or remove; `value` is the MAC (neigh), route value (PeerState.routes) or node
 * IP (fdb) being written, or, on removal, the one being removed (a direct route is deleted on its
 * own device).
 */
export type PeerOp = { readonly kind: 'fdb' | 'neigh' | 'route'; readonly del: boolean; readonly key: string; readonly value?: string };

/** The entries that turn `current` into `desired`, in a safe order; empty when nothing differs. */
export function peerOps(current: PeerState, desired: PeerState): PeerOp[] {
  const ops: PeerOp[] = [];
  // FDB first: a neighbour whose MAC has no FDB entry would send to nowhere. Neighbours before
  // routes so a new route never resolves through a missing entry; removals in reverse.
  for (const [mac, dst] of desired.fdb) if (current.fdb.get(mac) !== dst) ops.push({ kind: 'fdb', del: false, key: mac, value: dst });
  for (const [ip, mac] of desired.neighbours) if (current.neighbours.get(ip) !== mac) ops.push({ kind: 'neigh', del: false, key: ip, value: mac });
  for (const [cidr, gw] of desired.routes) pushRoute(ops, cidr, current.routes.get(cidr), gw);
  for (const [cidr, gw] of current.routes) if (!desired.routes.has(cidr)) ops.push({ kind: 'route', del: true, key: cidr, value: gw });
  for (const [ip, mac] of current.neighbours) if (!desired.neighbours.has(ip)) ops.push({ kind: 'neigh', del: true, key: ip, value: mac });
  for (const [mac, dst] of current.fdb) if (!desired.fdb.has(mac)) ops.push({ kind: 'fdb', del: true, key: mac, value: dst });
  return ops;
}

/**
 * A route write. IPv6 refuses an onlink gateway that an existing route sends out of another device
 * (EINVAL), and the VTEP gateway lies inside the very podCIDR a direct route covers: moving an IPv6
 * podCIDR from direct back to VXLAN deletes the direct route first. IPv4 has no such check, so its
 * switch stays a single atomic replace.
 */
function pushRoute(ops: PeerOp[], cidr: string, cur: string | undefined, want: string): void {
  if (cur === want) return;
  if (cur !== undefined && cidr.includes(':') && parseVia(cur).dev && !parseVia(want).dev) ops.push({ kind: 'route', del: true, key: cidr, value: cur });
  ops.push({ kind: 'route', del: false, key: cidr, value: want });
}

/**
 * peerOps restricted to the given keys: what one node's change needs, without walking every peer.
 * Same order as peerOps (FDB, neighbour, route when adding; the reverse when removing).
 */
export function peerOpsFor(current: PeerState, desired: PeerState, keys: PeerKeys): PeerOp[] {
  const ops: PeerOp[] = [];
  const add = (kind: PeerOp['kind'], cur: ReadonlyMap<string, string>, want: ReadonlyMap<string, string>, ks: Iterable<string>): void => {
    for (const k of ks) {
      const v = want.get(k);
      if (v === undefined) continue;
      if (kind === 'route') pushRoute(ops, k, cur.get(k), v);
      else if (cur.get(k) !== v) ops.push({ kind, del: false, key: k, value: v });
    }
  };
  const del = (kind: PeerOp['kind'], cur: ReadonlyMap<string, string>, want: ReadonlyMap<string, string>, ks: Iterable<string>): void => {
    for (const k of ks) {
      const v = cur.get(k);
      if (!want.has(k) && v !== undefined) ops.push({ kind, del: true, key: k, value: v });
    }
  };
  add('fdb', current.fdb, desired.fdb, keys.fdb);
  add('neigh', current.neighbours, desired.neighbours, keys.neighbours);
  add('route', current.routes, desired.routes, keys.routes);
  del('route', current.routes, desired.routes, keys.routes);
  del('neigh', current.neighbours, desired.neighbours, keys.neighbours);
  del('fdb', current.fdb, desired.fdb, keys.fdb);
  return ops;
}

/** Keys (per entry kind) whose desired value may have changed. */
export interface PeerKeys {
  readonly routes: ReadonlySet<string>;
  readonly neighbours: ReadonlySet<string>;
  readonly fdb: ReadonlySet<string>;
}

/** Entry ops as iproute2 batch lines (`ip -batch` and `bridge -batch`). */
export function opLines(dev: string, ops: readonly PeerOp[]): PeerDiff {
  const ipLines: string[] = [];
  const bridgeLines: string[] = [];
  for (const o of ops) {
    if (o.kind === 'fdb') bridgeLines.push(o.del ? `fdb del ${o.key} dev ${dev} self` : `fdb replace ${o.key} dev ${dev} dst ${o.value} self permanent`);
    else if (o.kind === 'neigh') ipLines.push(o.del ? `neigh del ${o.key} dev ${dev}` : `neigh replace ${o.key} lladdr ${o.value} dev ${dev} nud permanent`);
    else ipLines.push(routeLine(dev, o));
  }
  return { ipLines, bridgeLines };
}

function routeLine(vxlanDev: string, o: PeerOp): string {
  const via = o.value === undefined ? undefined : parseVia(o.value);
  // A direct route lives on the underlay and carries our protocol number, so deleting it can never
  // take a host route of the same prefix with it.
  if (via?.dev) return o.del ? `route del ${o.key} dev ${via.dev} proto ${DIRECT_ROUTE_PROTO}` : `route replace ${o.key} via ${via.gateway} dev ${via.dev} proto ${DIRECT_ROUTE_PROTO}`;
  return o.del ? `route del ${o.key} dev ${vxlanDev}` : `route replace ${o.key} via ${via!.gateway} dev ${vxlanDev} onlink`;
}

/** The same entries as iproute2 batch lines. */
export function diffPeers(dev: string, current: PeerState, desired: PeerState): PeerDiff {
  return opLines(dev, peerOps(current, desired));
}
