// An ADD/DEL's kernel work over in-process rtnetlink instead of `ip` processes: the veth is created
// with its peer placed straight into the pod's namespace (IFLA_NET_NS_FD), already enslaved to the
// bridge and up, then the pod side gets its addresses and routes. With the netns addon
// (native/netns.c) every request of an ADD is encoded here and sent synchronously by the addon
// (no event-loop turn per request); without it the netlink package sends them and the pod side
// falls back to `ip -batch`. The netlink package has no typed IFLA_LINKINFO, so those nested
// attributes are encoded here either way.
import { closeSync, openSync } from 'node:fs';
// The package's modules, not its index (which also loads nl80211's definitions: common/nft/generation.ts).
import { FlagsNew } from 'netlink/dist/constants.js';
import { createRtNetlink, type RtNetlinkSocket } from 'netlink/dist/rt/rt.js';
import type * as rt from 'netlink/dist/rt/structs.js';
import { bigintToBytes } from '../../common/ipaddr.js';
import { cstr as str, nla, nlmsg as frame, NLM_F_CREATE, NLM_F_EXCL, u32 } from '../../common/netlink/attrs.js';
import { parseIP } from '../ipam/ipnet.js';
import { DIRECT_ROUTE_PROTO, parseVia } from '../overlay/direct.js';
import { loadNetnsAddon, type NetnsAddon } from './netns-addon.js';
import { mark } from '../trace.js';

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INFO_SLAVE_DATA = 5;
const VETH_INFO_PEER = 1;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_SETLINK = 19;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
const IFF_UP = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_F_NODAD = 2;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;
const IFLA_BRPORT_MODE = 4; // hairpin

export const macBytes = (mac: string): Buffer => Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));

/** IFLA_LINKINFO for a veth whose peer is named, addressed and sized, in the namespace of netnsFd. */
export function vethLinkInfo(peer: { ifname: string; mac: string; mtu: number; netnsFd: number }): Buffer {
  // Not up here: the kernel would open the peer before the pair is joined (ENOTCONN).
  const ifinfomsg = Buffer.alloc(16);
  const peerMsg = Buffer.concat([ifinfomsg, nla(IFLA_IFNAME, str(peer.ifname)), nla(IFLA_ADDRESS, macBytes(peer.mac)), nla(IFLA_MTU, u32(peer.mtu)), nla(IFLA_NET_NS_FD, u32(peer.netnsFd))]);
  return Buffer.concat([nla(IFLA_INFO_KIND, str('veth')), nla(IFLA_INFO_DATA, nla(VETH_INFO_PEER, peerMsg))]);
}

/** One request, nlmsghdr-framed; the addon sets the sequence number and REQUEST|ACK. */
const nlmsg = (type: number, flags: number, ...body: Buffer[]): Buffer => frame(type, flags, 0, ...body);

function ifinfomsg(index: number, up: boolean): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  if (up) {
    b.writeUInt32LE(IFF_UP, 8);
    b.writeUInt32LE(IFF_UP, 12);
  }
  return b;
}

/** The two requests of createVeth: the pair (named, addressed, sized, on the bridge, up), then hairpin. */
export function vethRequests(v: VethSpec, netnsFd: number): Buffer {
  const create = nlmsg(
    RTM_NEWLINK,
    NLM_F_CREATE | NLM_F_EXCL,
    ifinfomsg(0, true),
    nla(IFLA_IFNAME, str(v.hostIf)),
    nla(IFLA_ADDRESS, macBytes(v.hostMac)),
    nla(IFLA_MTU, u32(v.mtu)),
    nla(IFLA_MASTER, u32(v.masterIndex)),
    nla(IFLA_LINKINFO, vethLinkInfo({ ifname: v.podIf, mac: v.podMac, mtu: v.mtu, netnsFd })),
  );
  const hairpin = nlmsg(RTM_NEWLINK, 0, ifinfomsg(0, false), nla(IFLA_IFNAME, str(v.hostIf)), nla(IFLA_LINKINFO, hairpinLinkInfo(true)));
  return Buffer.concat([create, hairpin]);
}

/** The pod side's requests on interface `index`: up, each address (IPv6 without DAD), each default route. */
export function podRequests(index: number, p: Pick<PodSide, 'addresses' | 'gateways'>): Buffer {
  const msgs = [nlmsg(RTM_SETLINK, 0, ifinfomsg(index, true))];
  for (const a of p.addresses) {
    const [ip, len] = a.split('/');
    const { family, bytes } = ipBytes(ip!);
    const ifa = Buffer.alloc(8);
    ifa.writeUInt8(family, 0);
    ifa.writeUInt8(Number(len), 1);
    if (family === AF_INET6) ifa.writeUInt8(IFA_F_NODAD, 2);
    ifa.writeUInt32LE(index, 4);
    msgs.push(nlmsg(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifa, nla(IFA_LOCAL, bytes), nla(IFA_ADDRESS, bytes)));
  }
  for (const gw of p.gateways) {
    const { family, bytes } = ipBytes(gw);
    const rtm = Buffer.from([family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0 /* universe */, RTN_UNICAST, 0, 0, 0, 0]);
    msgs.push(nlmsg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, rtm, nla(RTA_GATEWAY, bytes), nla(RTA_OIF, u32(index))));
  }
  return Buffer.concat(msgs);
}

// At most this many node-side requests on pool threads at once: the kernel runs them one at a time
// under its rtnl lock anyway, and libuv's pool (4 threads) also serves file system and DNS work.
const POOL_SLOTS = 2;
let poolBusy = 0;
const poolWaiters: (() => void)[] = [];

/** The node side's requests off the main thread when the addon can, else on it. */
async function nodeRequests(addon: NetnsAddon, messages: Buffer): Promise<void> {
  if (!addon.rtnlAsync) return addon.rtnl!(messages);
  // A finishing request hands its slot straight to the next waiter.
  if (poolBusy >= POOL_SLOTS) await new Promise<void>((r) => poolWaiters.push(r));
  else poolBusy++;
  try {
    await addon.rtnlAsync(messages);
  } finally {
    const next = poolWaiters.shift();
    if (next) next();
    else poolBusy--;
  }
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
  const { addon } = loadNetnsAddon();
  if (addon?.ifIndex) return addon.ifIndex(ifname) || undefined;
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
  const { addon } = loadNetnsAddon();
  if (addon?.rtnl) {
    try {
      await nodeRequests(addon, vethRequests(v, fd));
    } finally {
      closeSync(fd);
    }
    mark('veth+hairpin');
    return;
  }
  try {
    await nl().newLink(
      { flags: { up: true }, change: { up: true } },
      { ifname: v.hostIf, address: macBytes(v.hostMac), mtu: v.mtu, master: v.masterIndex, linkinfo: vethLinkInfo({ ifname: v.podIf, mac: v.podMac, mtu: v.mtu, netnsFd: fd }) },
      { flags: FlagsNew.CREATE | FlagsNew.EXCL },
    );
  } finally {
    closeSync(fd);
  }
  mark('veth');
  await nl().newLink({}, { ifname: v.hostIf, linkinfo: hairpinLinkInfo(true) });
  mark('hairpin');
}

export interface PodSide {
  readonly netnsPath: string;
  readonly podIf: string;
  /** With prefix length, e.g. 10.244.1.5/24. */
  readonly addresses: readonly string[];
  readonly gateways: readonly string[];
}

/**
 * The pod's addresses and default routes over an rtnetlink socket opened inside the pod's
 * namespace (the addon enters it only for the socket(2) call): what `ip -batch` in the pod's
 * namespace would do, without the process. False when the addon is not available, and the caller
 * uses iproute2.
 */
export async function configurePodSide(p: PodSide): Promise<boolean> {
  const { addon } = loadNetnsAddon();
  if (!addon) return false;
  if (addon.rtnl && addon.ifIndex) {
    const { rtnl, ifIndex } = addon;
    addon.inNetns(p.netnsPath, () => {
      const index = ifIndex(p.podIf);
      if (!index) throw new Error(`no ${p.podIf} in ${p.netnsPath}`);
      rtnl(podRequests(index, p));
    });
    mark('pod-side');
    return true;
  }
  const pod = addon.inNetns(p.netnsPath, () => createRtNetlink());
  mark('pod-socket');
  try {
    const [link] = await pod.getLink({}, { ifname: p.podIf });
    const index = link?.data.index;
    if (index === undefined) throw new Error(`no ${p.podIf} in ${p.netnsPath}`);
    mark('pod-getlink');
    await pod.setLink({ index, flags: { up: true }, change: { up: true } });
    mark('pod-up');
    for (const a of p.addresses) {
      const [ip, len] = a.split('/');
      const { family, bytes } = ipBytes(ip!);
      // nodad: the address is ours alone (IPAM), and DAD would hold IPv6 traffic back ~1 s.
      await pod.newAddress({ family, prefixlen: Number(len), index, ...(family === AF_INET6 ? { flags: { nodad: true } } : {}) }, { local: bytes, address: bytes }, { flags: FlagsNew.CREATE | FlagsNew.EXCL });
    }
    mark('pod-addr');
    for (const gw of p.gateways) {
      const { family, bytes } = ipBytes(gw);
      await pod.newRoute({ family, dstLen: 0, table: RT_TABLE_MAIN, protocol: 'BOOT', scope: 'UNIVERSE', type: 'UNICAST' }, { gateway: bytes, oif: index }, { flags: FlagsNew.CREATE | FlagsNew.EXCL });
    }
    mark('pod-route');
  } finally {
    pod.socket.close();
  }
  mark('pod-close');
  return true;
}

/** Returns false when there was no such link. */
export async function deleteLinkByName(ifname: string): Promise<boolean> {
  const { addon } = loadNetnsAddon();
  try {
    if (addon?.rtnl) await nodeRequests(addon, nlmsg(RTM_DELLINK, 0, ifinfomsg(0, false), nla(IFLA_IFNAME, str(ifname))));
    else await nl().delLink({}, { ifname });
    return true;
  } catch (e) {
    if (errnoOf(e) === 'ENODEV') return false;
    throw e;
  }
}

// VXLAN peer entries, for the small syncs after one node changed: two `ip`/`bridge` processes cost
// far more than the three messages. Same entries as `bridge fdb replace … self permanent`,
// `ip neigh replace … nud permanent` and `ip route replace … onlink` (protocol boot, main table).
const AF_INET = 2;
const AF_INET6 = 10;
const AF_BRIDGE = 7;
const RT_TABLE_MAIN = 254;
const RTNH_F_ONLINK = 4;
const REPLACE = { flags: FlagsNew.CREATE | FlagsNew.REPLACE };

function ipBytes(ip: string): { family: number; bytes: Buffer } {
  const { family, value } = parseIP(ip);
  return { family: family === 4 ? AF_INET : AF_INET6, bytes: bigintToBytes(value, family) };
}

export type PeerEntryOp = { readonly kind: 'fdb' | 'neigh' | 'route'; readonly del: boolean; readonly key: string; readonly value?: string };

/** Applies entries on the device `ifindex`, in order; deleting a missing entry is not an error. */
export async function applyPeerEntries(ifindex: number, ops: readonly PeerEntryOp[]): Promise<void> {
  for (const o of ops) {
    try {
      if (o.kind === 'fdb') {
        const lladdr = macBytes(o.key);
        if (o.del) await nl().delNeighbor({ family: AF_BRIDGE, ifindex, flags: { self: true } }, { lladdr });
        else await nl().newNeighbor({ family: AF_BRIDGE, ifindex, state: { permanent: true }, flags: { self: true } }, { lladdr, dst: ipBytes(o.value!).bytes }, REPLACE);
      } else if (o.kind === 'neigh') {
        const dst = ipBytes(o.key);
        if (o.del) await nl().delNeighbor({ family: dst.family, ifindex }, { dst: dst.bytes });
        else await nl().newNeighbor({ family: dst.family, ifindex, state: { permanent: true } }, { dst: dst.bytes, lladdr: macBytes(o.value!) }, REPLACE);
      } else {
        const [net, len] = o.key.split('/');
        const dst = ipBytes(net!);
        const via = parseVia(o.value ?? '');
        if (via.dev) {
          // A direct route (overlay/direct.ts): on the underlay, resolved by ARP/NDP, our protocol.
          const oif = await linkIndex(via.dev);
          if (oif === undefined) {
            if (o.del) continue;
            throw new Error(`no device ${via.dev}`);
          }
          const route = { family: dst.family, dstLen: Number(len), table: RT_TABLE_MAIN, protocol: DIRECT_ROUTE_PROTO as rt.RouteProtocol, scope: 'UNIVERSE', type: 'UNICAST' } as const;
          if (o.del) await nl().delRoute(route, { dst: dst.bytes, oif });
          else await nl().newRoute(route, { dst: dst.bytes, gateway: ipBytes(via.gateway).bytes, oif }, REPLACE);
          continue;
        }
        const route = { family: dst.family, dstLen: Number(len), table: RT_TABLE_MAIN, protocol: 'BOOT', scope: 'UNIVERSE', type: 'UNICAST' } as const;
        if (o.del) await nl().delRoute(route, { dst: dst.bytes, oif: ifindex });
        else await nl().newRoute({ ...route, flags: { __unknown: RTNH_F_ONLINK } }, { dst: dst.bytes, gateway: ipBytes(via.gateway).bytes, oif: ifindex }, REPLACE);
      }
    } catch (e) {
      const errno = errnoOf(e);
      if (o.del && (errno === 'ENOENT' || errno === 'ESRCH')) continue;
      throw new Error(`${o.del ? 'delete' : 'replace'} ${o.kind} ${o.key}: ${(e as Error).message}`);
    }
  }
}
