// The kernel side of the overlay: the VXLAN device and its per-peer entries. A sync lists what the
// device holds and applies only the difference (kindnet's resync-don't-diff, at the granularity of
// one entry), so a restarted agent keeps working entries in place and still removes stale ones:
// flannel #1330/#1788 were stale FDB/neighbour entries left after a peer changed or left.
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { ipBatch, ipJson, isNotFound, run } from '../plugin/exec.js';
import { rtnl } from '../plugin/netdev.js';
import { DIRECT_ROUTE_PROTO, directVia } from './direct.js';
import { opLines, peerOps, peerOpsFor, type PeerKeys, type PeerOp, type PeerState } from './peers.js';

export const VXLAN_DEV = 'skiff-vx';

export interface VxlanParams {
  readonly vni: number;
  readonly port: number;
  readonly underlay: string;
  readonly localIP: string;
  readonly mtu: number;
  /** The node's VTEP addresses (its podCIDRs' network addresses), one per family. */
  readonly vtepIPs: readonly string[];
}

interface LinkJson {
  ifname: string;
  address: string;
  mtu: number;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number; local?: string; link?: string } };
}

/**
 * Creates the device or keeps the existing one (and its MAC, which peers already know). Returns
 * the MAC, and whether the checksum workaround could be applied where the kernel needs it.
 */
export async function ensureVxlan(p: VxlanParams): Promise<{ mac: string; checksumOk: boolean }> {
  let cur: LinkJson | undefined;
  try {
    cur = (await ipJson<LinkJson[]>(['-d', 'link', 'show', 'dev', VXLAN_DEV]))[0];
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  const d = cur?.linkinfo?.info_data;
  const compatible = cur && cur.linkinfo?.info_kind === 'vxlan' && d?.id === p.vni && d?.port === p.port && d?.local === p.localIP;
  const lines: string[] = [];
  if (cur && !compatible) lines.push(`link del ${VXLAN_DEV}`);
  if (!compatible) lines.push(`link add ${VXLAN_DEV} type vxlan id ${p.vni} dev ${p.underlay} local ${p.localIP} dstport ${p.port} nolearning noudpcsum`);
  lines.push(`link set ${VXLAN_DEV} mtu ${p.mtu}`);
  for (const a of p.vtepIPs) lines.push(a.includes(':') ? `addr replace ${a}/128 dev ${VXLAN_DEV} nodad` : `addr replace ${a}/32 dev ${VXLAN_DEV}`);
  lines.push(`link set ${VXLAN_DEV} up`);
  await ipBatch(lines);
  const checksumOk = await disableTxChecksum();
  const after = (await ipJson<LinkJson[]>(['link', 'show', 'dev', VXLAN_DEV]))[0]!;
  return { mac: after.address, checksumOk };
}

/**
 * flannel #1279 (kubernetes #88986): before Linux 5.7, tx checksum offload on a VXLAN device
 * produced bad inner checksums once the outer packet was source-NATed. Switching it off also
 * switches off TSO on the device, which costs a large share of pod-to-pod throughput, so it is
 * done only on the kernels that have the bug. ethtool is the only way to do it; without ethtool
 * such a kernel keeps the default and the caller warns.
 */
export function kernelHasChecksumBug(release: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj < 5 || (maj === 5 && min < 7);
}

async function disableTxChecksum(): Promise<boolean> {
  if (!kernelHasChecksumBug(release())) return true;
  const ethtool = ['/usr/sbin/ethtool', '/sbin/ethtool', '/usr/bin/ethtool'].find((p) => existsSync(p));
  if (!ethtool) return false;
  await run([ethtool, '-K', VXLAN_DEV, 'tx-checksum-ip-generic', 'off']).catch(() => undefined);
  return true;
}

/** What the device holds now, restricted to the entry kinds the overlay manages. */
export async function readPeers(): Promise<PeerState> {
  const routes = new Map<string, string>();
  const neighbours = new Map<string, string>();
  const fdb = new Map<string, string>();
  for (const fam of ['-4', '-6']) {
    const r = await ipJson<{ dst: string; gateway?: string }[]>([fam, 'route', 'show', 'dev', VXLAN_DEV]);
    for (const x of r) if (x.gateway) routes.set(x.dst.includes('/') ? x.dst : `${x.dst}/${fam === '-4' ? 32 : 128}`, x.gateway);
    // Direct routes sit on the underlay among the host's own; our protocol number tells them apart.
    // Read even with direct routing off, so turning it off removes what an earlier run left.
    const d = await ipJson<{ dst: string; gateway?: string; dev?: string }[]>([fam, 'route', 'show', 'proto', String(DIRECT_ROUTE_PROTO)]);
    for (const x of d) if (x.gateway && x.dev) routes.set(x.dst.includes('/') ? x.dst : `${x.dst}/${fam === '-4' ? 32 : 128}`, directVia(x.gateway, x.dev));
    // Only permanent entries are ours; the kernel's own (NDP, incomplete) are left alone.
    const n = await ipJson<{ dst: string; lladdr?: string; state?: string[] }[]>([fam, 'neigh', 'show', 'dev', VXLAN_DEV]);
    for (const x of n) if (x.lladdr && x.state?.includes('PERMANENT')) neighbours.set(x.dst, x.lladdr);
  }
  const f = JSON.parse((await run(['bridge', '-j', 'fdb', 'show', 'dev', VXLAN_DEV])) || '[]') as { mac: string; dst?: string }[];
  for (const x of f) if (x.dst && x.mac !== '00:00:00:00:00:00') fdb.set(x.mac, x.dst);
  return { routes, neighbours, fdb };
}

/**
 * Applies the difference against what the device was last left holding. Reading the device back
 * costs five `ip`/`bridge` dumps of every entry (~0.4 s at 5000 peers on a loaded 2-core node),
 * which dwarfed the change itself, so the mirror remembers the state it applied and the kernel is
 * read only on the first sync, after a failure, and after `invalidate()` (the periodic resync and
 * a re-created device): entries removed behind our back still come back (knftables' mirror).
 */
const SMALL_DIFF = 64;

type MutablePeers = { routes: Map<string, string>; neighbours: Map<string, string>; fdb: Map<string, string> };

const copyPeers = (p: PeerState): MutablePeers => ({ routes: new Map(p.routes), neighbours: new Map(p.neighbours), fdb: new Map(p.fdb) });

export class PeerMirror {
  private known: MutablePeers | undefined;

  invalidate(): void {
    this.known = undefined;
  }

  /** Brings every entry in line with `desired`. Returns how many entries changed. */
  async sync(desired: PeerState): Promise<number> {
    const current = this.known ?? (await readPeers());
    // Cleared before applying: a batch that fails half way leaves the device unknown.
    this.known = undefined;
    const ops = peerOps(current, desired);
    await applyOps(ops);
    // A copy: the caller's desired state is mutated in place by later Node events.
    this.known = copyPeers(desired);
    // A cold start applies its thousands of entries as batches, so the netlink module would
    // otherwise load (and its socket open) on the first single-node change: ~0.4 s under load.
    await (await rtnl())?.linkIndex(VXLAN_DEV);
    return ops.length;
  }

  /**
   * Brings only `keys` in line (one Node's event), diffing against what was last programmed.
   * Without a trustworthy mirror (first sync, after a failure) it falls back to a full sync.
   */
  async syncKeys(desired: PeerState, keys: PeerKeys): Promise<number> {
    const known = this.known;
    if (!known) return this.sync(desired);
    this.known = undefined;
    const ops = peerOpsFor(known, desired, keys);
    await applyOps(ops);
    const maps = { fdb: known.fdb, neigh: known.neighbours, route: known.routes };
    for (const o of ops) {
      if (o.del) maps[o.kind].delete(o.key);
      else maps[o.kind].set(o.key, o.value!);
    }
    this.known = known;
    return ops.length;
  }
}

async function applyOps(ops: readonly PeerOp[]): Promise<void> {
  if (ops.length === 0) return;
  // A few entries (one node changed) go over the in-process netlink socket: no process at all.
  // Many (a cold start, a resync) go as two batches, which the kernel takes faster than one
  // awaited message at a time.
  const nl = ops.length <= SMALL_DIFF ? await rtnl() : undefined;
  const ifindex = nl ? await nl.linkIndex(VXLAN_DEV) : undefined;
  if (nl && ifindex !== undefined) return nl.applyPeerEntries(ifindex, ops);
  const d = opLines(VXLAN_DEV, ops);
  // FDB first: a neighbour whose MAC has no FDB entry would send to nowhere.
  if (d.bridgeLines.length) await run(['bridge', '-batch', '-'], d.bridgeLines.join('\n') + '\n');
  if (d.ipLines.length) await ipBatch(d.ipLines);
}

export async function deleteLink(name: string): Promise<void> {
  try {
    await ipBatch([`link del ${name}`]);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}
