// Strict mode's conntrack access over ctnetlink (NETLINK_NETFILTER, subsystem CTNETLINK) from the
// agent itself, instead of conntrack(8) processes: one dump of every family's entries, then the
// denied ones deleted by original tuple, many per datagram. Why: each cut started two
// `conntrack -L` processes and one `conntrack -D` per entry beside the sync loop, and on a 2-core
// node they overlapped the next policy change (AGENT.md, "Cost of a sync").
//
// Encoding and parsing are pure (tested in ctnetlink.test.ts); layouts from linux/netfilter/
// nfnetlink_conntrack.h (attributes), nf_conntrack_tcp.h (TCP states) and nfnetlink.h (nfgenmsg).
// Attribute payloads are in network order. The socket is common/nft/batch.ts's, opened where the
// caller says (the agent's namespace by default; a bench or test opens it in a node namespace).
import { bigintToBytes, bytesToIp, familyOf, ipToBigint, type Family } from '../common/ipaddr.js';
import { be16, be32, nest, nla, nlattrs, NLM_F_ACK, NLM_F_REQUEST } from '../common/netlink/attrs.js';
import { nfmsg, nfTablesBatches, type NfTablesBatches, type OpenSocket } from '../common/nft/batch.js';
import type { Protocol } from './model.js';
import type { ConntrackTable, Flow, Tuple } from './conntrack.js';

const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_NEW = 0;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
/** NLM_F_ROOT | NLM_F_MATCH. */
const NLM_F_DUMP = 0x300;

const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_INET6 = 10;

// enum ctattr_type
const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_REPLY = 2;
const CTA_PROTOINFO = 4;
const CTA_ID = 12;
const CTA_ZONE = 18;
// enum ctattr_tuple
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
// enum ctattr_ip
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
// enum ctattr_l4proto
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;
// enum ctattr_protoinfo, ctattr_protoinfo_tcp
const CTA_PROTOINFO_TCP = 1;
const CTA_PROTOINFO_TCP_STATE = 1;
// enum tcp_conntrack: connections already over (conntrack.ts's OVER says why they are skipped).
const TCP_CONNTRACK_TIME_WAIT = 7;
const TCP_CONNTRACK_CLOSE = 8;

const PROTOCOLS: Readonly<Record<number, Protocol>> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };
const PROTO_NUMBERS: Readonly<Record<Protocol, number>> = { TCP: 6, UDP: 17, SCTP: 132 };

/** The dump of every entry of every family (nfgenmsg family AF_UNSPEC: the kernel filters none). */
export function dumpRequest(seq: number): Buffer {
  return nfmsg((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq, AF_UNSPEC, 0);
}

function attrs(data: Buffer, start = 0): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (const a of nlattrs(data, start)) m.set(a.type, a.payload);
  return m;
}

function tuple(payload: Buffer | undefined): { family: Family; proto: number; t: Tuple } | undefined {
  if (!payload) return undefined;
  const top = attrs(payload);
  const ip = top.get(CTA_TUPLE_IP);
  const proto = top.get(CTA_TUPLE_PROTO);
  if (!ip || !proto) return undefined;
  const a = attrs(ip);
  const p = attrs(proto);
  const num = p.get(CTA_PROTO_NUM);
  const sport = p.get(CTA_PROTO_SRC_PORT);
  const dport = p.get(CTA_PROTO_DST_PORT);
  if (!num || num.length < 1 || !sport || sport.length < 2 || !dport || dport.length < 2) return undefined;
  const v4 = a.get(CTA_IP_V4_SRC) && a.get(CTA_IP_V4_DST);
  const family: Family = v4 ? 4 : 6;
  const src = a.get(family === 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC);
  const dst = a.get(family === 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST);
  const size = family === 4 ? 4 : 16;
  if (!src || !dst || src.length !== size || dst.length !== size) return undefined;
  return { family, proto: num[0]!, t: { src: bytesToIp(src), dst: bytesToIp(dst), sport: sport.readUInt16BE(0), dport: dport.readUInt16BE(0) } };
}

/**
 * One entry of the dump (an IPCTNL_MSG_CT_NEW message's body, nfgenmsg included) as a flow;
 * undefined for other protocols (ICMP), TCP connections that are over, and anything unreadable.
 */
export function parseEntry(type: number, data: Buffer): Flow | undefined {
  if (type !== ((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW) || data.length < 4) return undefined;
  const top = attrs(data, 4);
  const o = tuple(top.get(CTA_TUPLE_ORIG));
  const r = tuple(top.get(CTA_TUPLE_REPLY));
  if (!o || !r || o.family !== r.family) return undefined;
  const protocol = PROTOCOLS[o.proto];
  if (!protocol) return undefined;
  if (protocol === 'TCP') {
    const tcp = attrs(attrs(top.get(CTA_PROTOINFO) ?? Buffer.alloc(0)).get(CTA_PROTOINFO_TCP) ?? Buffer.alloc(0)).get(CTA_PROTOINFO_TCP_STATE);
    if (tcp && (tcp[0] === TCP_CONNTRACK_TIME_WAIT || tcp[0] === TCP_CONNTRACK_CLOSE)) return undefined;
  }
  const id = top.get(CTA_ID);
  const zone = top.get(CTA_ZONE);
  return {
    protocol,
    family: o.family,
    orig: o.t,
    reply: r.t,
    ...(id && id.length >= 4 ? { id: id.readUInt32BE(0) } : {}),
    ...(zone && zone.length >= 2 && zone.readUInt16BE(0) !== 0 ? { zone: zone.readUInt16BE(0) } : {}),
  };
}

/**
 * IPCTNL_MSG_CT_DELETE of exactly this entry: its original tuple, its zone, and its id when the
 * dump gave one (a newer connection that took the same tuple since is left alone: ENOENT).
 */
export function deleteRequest(f: Flow, seq: number): Buffer {
  const fam = f.family;
  const ip = nest(CTA_TUPLE_IP, nla(fam === 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, addrBytes(f.orig.src, fam)), nla(fam === 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, addrBytes(f.orig.dst, fam)));
  const proto = nest(CTA_TUPLE_PROTO, nla(CTA_PROTO_NUM, Buffer.from([PROTO_NUMBERS[f.protocol]])), nla(CTA_PROTO_SRC_PORT, be16(f.orig.sport)), nla(CTA_PROTO_DST_PORT, be16(f.orig.dport)));
  const parts = [nest(CTA_TUPLE_ORIG, ip, proto)];
  if (f.zone !== undefined) parts.push(nla(CTA_ZONE, be16(f.zone)));
  if (f.id !== undefined) parts.push(nla(CTA_ID, be32(f.id)));
  return nfmsg((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, fam === 4 ? AF_INET : AF_INET6, 0, ...parts);
}

function addrBytes(ip: string, family: Family): Buffer {
  if (familyOf(ip) !== family) throw new Error(`conntrack entry address ${ip} is not IPv${family}`);
  return bigintToBytes(ipToBigint(ip), family);
}

/** Deletes per datagram: each ~100 bytes, and an error answer carries the request back. */
const PER_DATAGRAM = 256;
const ENOENT = 2;

/**
 * The conntrack table over ctnetlink. `open` makes the socket (default: this process's namespace).
 * A refused dump (ctnetlink missing) rejects: the caller falls back to conntrack(8).
 */
export function netlinkConntrack(open?: OpenSocket, o: { timeoutMs?: number } = {}): ConntrackTable & { close(): void } {
  const nl: NfTablesBatches = nfTablesBatches(open, { ...o, refusedCode: 'ERR_POLICY_CONNTRACK' });
  return {
    async list() {
      const flows: Flow[] = [];
      await nl.dump(dumpRequest, (m) => {
        const f = parseEntry(m.type, m.data);
        if (f) flows.push(f);
      });
      return flows;
    },
    async delete(flows, still = () => true) {
      let n = 0;
      for (let i = 0; i < flows.length; i += PER_DATAGRAM) {
        // Asked right before each datagram: the rules may have changed since the flows were judged.
        const chunk = flows.slice(i, i + PER_DATAGRAM).filter((f) => still(f));
        if (chunk.length === 0) continue;
        const errnos = await nl.requests((seq) => chunk.map((f) => deleteRequest(f, seq())));
        for (const e of errnos) {
          if (e === 0) n++;
          else if (e !== ENOENT) throw Object.assign(new Error(`conntrack delete refused: errno ${e}`), { code: 'ERR_POLICY_CONNTRACK', errno: e });
        }
      }
      return n;
    },
    close: () => nl.close(),
  };
}
