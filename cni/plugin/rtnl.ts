// The node-side half of an ADD/DEL over an in-process rtnetlink socket instead of an `ip` process:
// the veth is created with its peer placed straight into the pod's namespace (IFLA_NET_NS_FD),
// already enslaved to the bridge and up. Spawning is what an ADD costs most under load, and this
// leaves one process per ADD (the pod side, which must run inside the pod's namespace) and none per
// DEL. The netlink package has no typed IFLA_LINKINFO, so those nested attributes are encoded here.
import { closeSync, openSync } from 'node:fs';
import { createRtNetlink, FlagsNew, type RtNetlinkSocket } from 'netlink';

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INFO_SLAVE_DATA = 5;
const VETH_INFO_PEER = 1;
const IFLA_BRPORT_MODE = 4; // hairpin

function nla(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}
const str = (s: string): Buffer => Buffer.from(`${s}\0`);
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
};
export const macBytes = (mac: string): Buffer => Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));

/** IFLA_LINKINFO for a veth whose peer is named, addressed and sized, in the namespace of netnsFd. */
export function vethLinkInfo(peer: { ifname: string; mac: string; mtu: number; netnsFd: number }): Buffer {
  const ifinfomsg = Buffer.alloc(16);
  const peerMsg = Buffer.concat([ifinfomsg, nla(IFLA_IFNAME, str(peer.ifname)), nla(IFLA_ADDRESS, macBytes(peer.mac)), nla(IFLA_MTU, u32(peer.mtu)), nla(IFLA_NET_NS_FD, u32(peer.netnsFd))]);
  return Buffer.concat([nla(IFLA_INFO_KIND, str('veth')), nla(IFLA_INFO_DATA, nla(VETH_INFO_PEER, peerMsg))]);
}

export function hairpinLinkInfo(on: boolean): Buffer {
  return Buffer.concat([nla(IFLA_INFO_SLAVE_KIND, str('bridge')), nla(IFLA_INFO_SLAVE_DATA, nla(IFLA_BRPORT_MODE, Buffer.from([on ? 1 : 0])))]);
}

let sock: RtNetlinkSocket | undefined;
// The socket belongs to the namespace this process runs in: the node's.
const nl = (): RtNetlinkSocket => (sock ??= createRtNetlink());

export function errnoOf(e: unknown): string | undefined {
  return /Request rejected: (E[A-Z]+)/.exec((e as Error)?.message ?? '')?.[1];
}

export async function linkIndex(ifname: string): Promise<number | undefined> {
  try {
    const [m] = await nl().getLink({}, { ifname });
    return m?.data.index;
  } catch (e) {
    if (errnoOf(e) === 'ENODEV') return undefined;
    throw e;
  }
}

export interface VethSpec {
  readonly hostIf: string;
  readonly hostMac: string;
  readonly podIf: string;
  readonly podMac: string;
  readonly mtu: number;
  readonly netnsPath: string;
  readonly masterIndex: number;
}

/** Throws with "Request rejected: EEXIST" when either name is taken. */
export async function createVeth(v: VethSpec): Promise<void> {
  const fd = openSync(v.netnsPath, 'r');
  try {
    await nl().newLink(
      { flags: { up: true }, change: { up: true } },
      { ifname: v.hostIf, address: macBytes(v.hostMac), mtu: v.mtu, master: v.masterIndex, linkinfo: vethLinkInfo({ ifname: v.podIf, mac: v.podMac, mtu: v.mtu, netnsFd: fd }) },
      { flags: FlagsNew.CREATE | FlagsNew.EXCL },
    );
  } finally {
    closeSync(fd);
  }
  await nl().newLink({}, { ifname: v.hostIf, linkinfo: hairpinLinkInfo(true) });
}

/** Returns false when there was no such link. */
export async function deleteLinkByName(ifname: string): Promise<boolean> {
  try {
    await nl().delLink({}, { ifname });
    return true;
  } catch (e) {
    if (errnoOf(e) === 'ENODEV') return false;
    throw e;
  }
}
