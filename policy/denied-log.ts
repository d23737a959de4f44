// The opt-in log of denied connections (policy.logDenied). The table's deny chains (render.ts)
// send each denied flow's first packet, rate-limited, to NFLOG group DENIED_LOG_GROUP; this reads
// the group over NETLINK_NETFILTER (subsystem ULOG) and logs one structured line per connection,
// naming the pods at both ends. Why not the kernel's `log` statement: its prefix is fixed per
// rule, so it can name the policied pod but never the peer, and it lands in the kernel log, not
// beside the agent's other lines.
//
// Encoding and parsing are pure (denied-log.test.ts); layouts from linux/netfilter/nfnetlink_log.h.
import type { Logger } from 'pino';
import { bytesToIp } from '../common/ipaddr.js';
import { be32, nla, nlattrs, nlmsgs, NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR } from '../common/netlink/attrs.js';
import { netfilterSocket, nfmsg, type OpenSocket } from '../common/nft/batch.js';
import type { WatchCache } from '../common/watch/store.js';
import type { Direction } from './desired.js';
import { DENIED_LOG_GROUP, deniedPrefix } from './render.js';

const NFNL_SUBSYS_ULOG = 4;
const NFULNL_MSG_PACKET = 0;
const NFULNL_MSG_CONFIG = 1;
// enum nfulnl_attr_config
const NFULA_CFG_CMD = 1;
const NFULA_CFG_MODE = 2;
const NFULA_CFG_QTHRESH = 5;
const NFULNL_CFG_CMD_BIND = 1;
const NFULNL_COPY_PACKET = 2;
// enum nfulnl_attr_type
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;
/** Enough of the packet for the network header and the ports (IPv4 options included). */
const COPY_RANGE = 80;

const PROTOCOLS: Readonly<Record<number, string>> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' };
const WITH_PORTS = new Set([6, 17, 132]);

export interface DeniedPacket {
  readonly direction: Direction;
  readonly src: string;
  readonly dst: string;
  /** TCP, UDP, SCTP, ICMP, ICMPv6, or the protocol number. */
  readonly protocol: string;
  readonly srcPort?: number;
  readonly dstPort?: number;
}

/**
 * Binds the socket to the group, copying the first COPY_RANGE bytes of each packet, and hands
 * over every packet as it comes (queue threshold 1: the default waits for 100 or a second).
 */
export function bindRequest(group: number, seq: number): Buffer {
  const mode = Buffer.alloc(6);
  mode.writeUInt32BE(COPY_RANGE, 0);
  mode[4] = NFULNL_COPY_PACKET;
  return nfmsg((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, 0, group, nla(NFULA_CFG_CMD, Buffer.from([NFULNL_CFG_CMD_BIND])), nla(NFULA_CFG_MODE, mode), nla(NFULA_CFG_QTHRESH, be32(1)));
}

const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

/** One NFULNL_MSG_PACKET (body from the nfgenmsg on) as a denied packet; undefined when it is not ours or unreadable. */
export function parsePacket(type: number, data: Buffer): DeniedPacket | undefined {
  if (type !== ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET) || data.length < 4) return undefined;
  let prefix: string | undefined;
  let payload: Buffer | undefined;
  for (const a of nlattrs(data, 4)) {
    if (a.type === NFULA_PREFIX) prefix = a.payload.toString('latin1').replace(/\0.*$/s, '');
    else if (a.type === NFULA_PAYLOAD) payload = a.payload;
  }
  const direction = DIRECTIONS.find((d) => deniedPrefix(d) === prefix);
  if (!direction || !payload) return undefined;
  const h = header(payload);
  return h && { direction, ...h };
}

function header(p: Buffer): Omit<DeniedPacket, 'direction'> | undefined {
  let proto: number, src: string, dst: string, l4: number;
  const version = p.length > 0 ? p[0]! >> 4 : 0;
  if (version === 4 && p.length >= 20) {
    l4 = (p[0]! & 0xf) * 4;
    proto = p[9]!;
    src = bytesToIp(p.subarray(12, 16));
    dst = bytesToIp(p.subarray(16, 20));
  } else if (version === 6 && p.length >= 40) {
    // Extension headers are not walked: the protocol is then the first one's number, without ports.
    l4 = 40;
    proto = p[6]!;
    src = bytesToIp(p.subarray(8, 24));
    dst = bytesToIp(p.subarray(24, 40));
  } else return undefined;
  const protocol = PROTOCOLS[proto] ?? String(proto);
  if (!WITH_PORTS.has(proto) || p.length < l4 + 4) return { src, dst, protocol };
  return { src, dst, protocol, srcPort: p.readUInt16BE(l4), dstPort: p.readUInt16BE(l4 + 2) };
}

/**
 * Reads the group until close(). `bound` settles once the kernel has answered the bind: rejects
 * with its errno (EBUSY: another process of this namespace holds the group).
 */
export async function listenDenied(onPacket: (p: DeniedPacket) => void, o: { open?: OpenSocket; group?: number; onError?: (e: Error) => void } = {}): Promise<{ close(): void }> {
  const sock = (o.open ?? (await netfilterSocket({ recvBufferSize: 1 << 20, sendBufferSize: 1 << 16 })))();
  const seq = Math.floor(Math.random() * 2 ** 30) + 1;
  let settle: { resolve: () => void; reject: (e: Error) => void } | undefined;
  const bound = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  sock.on('message', (buf: Buffer) => {
    for (const m of nlmsgs(buf)) {
      if (m.type === NLMSG_ERROR && m.seq === seq) {
        const errno = -m.data.readInt32LE(0);
        if (errno === 0) settle?.resolve();
        else settle?.reject(Object.assign(new Error(`NFLOG group bind refused: errno ${errno}`), { code: 'ERR_POLICY_DENIED_LOG', errno }));
        continue;
      }
      const p = parsePacket(m.type, m.data);
      if (p) onPacket(p);
    }
  });
  let isBound = false;
  sock.on('error', (e: Error) => (isBound ? o.onError?.(e) : settle?.reject(e)));
  sock.unref();
  sock.send(bindRequest(o.group ?? DENIED_LOG_GROUP, seq), {}, (err) => {
    if (err) settle?.reject(err);
  });
  const timer = setTimeout(() => settle?.reject(new Error('NFLOG group bind: no answer within 5 s')), 5000);
  try {
    await bound;
    isBound = true;
  } catch (e) {
    sock.close();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return { close: () => sock.close() };
}

const POD_IP_INDEX = 'policy-denied-log-ip';

/**
 * policy.logDenied: one info line per denied connection, the pods at both ends named from the
 * watch cache's pods by address (an address no pod has, such as a node's or an outside one, is
 * logged bare). The index is built only here, so the log's memory is paid only when it is on.
 */
export async function logDeniedConnections(cache: WatchCache, log: Logger, open?: OpenSocket): Promise<{ close(): void }> {
  const pods = cache.store('policypods');
  pods.addIndex(POD_IP_INDEX, (p) => (p.hostNetwork ? [] : p.podIPs));
  const name = (ip: string): string | undefined => {
    const p = pods.byIndex(POD_IP_INDEX, ip)[0];
    return p && `${p.namespace}/${p.name}`;
  };
  return listenDenied(
    (p) => log.info({ ...p, srcPod: name(p.src), dstPod: name(p.dst) }, 'policy denied a connection'),
    // A burst beyond the socket's buffer loses lines (ENOBUFS), not the reader.
    { ...(open ? { open } : {}), onError: (e) => log.warn({ err: e.message }, 'policy.logDenied: reading the denied connections failed; some were not logged') },
  );
}
