// Netlink messages and attributes, built and read by hand where a request has no typed encoder in
// the netlink package: rtnetlink in the CNI plugin (cni/plugin/rtnl.ts, on the CNI binary's path:
// so this module imports nothing) and nf_tables in policy/ and common/nft/. Layout from
// linux/netlink.h: nlmsghdr and attribute headers in host order (little-endian here), every
// attribute padded to 4 bytes; payload byte order is each family's own (nf_tables: big-endian).

export const NLMSG_HDRLEN = 16;
export const NLMSG_ERROR = 2;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
/** Set by libmnl (so by nft) on every nest; rtnetlink takes nests without it. */
export const NLA_F_NESTED = 0x8000;
/** The type bits of an attribute header (without NLA_F_NESTED and NLA_F_NET_BYTEORDER). */
const NLA_TYPE_MASK = 0x3fff;

export const align4 = (n: number): number => (n + 3) & ~3;

/** One attribute: header, the payloads one after the other, padding. */
export function nla(type: number, ...payload: Buffer[]): Buffer {
  const body = payload.length === 1 ? payload[0]! : Buffer.concat(payload);
  const len = 4 + body.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  body.copy(out, 4);
  return out;
}

/** A nested attribute flagged as such. */
export const nest = (type: number, ...parts: Buffer[]): Buffer => nla(type | NLA_F_NESTED, ...parts);

export const cstr = (s: string): Buffer => Buffer.from(`${s}\0`);

/** Host order, as rtnetlink's numbers. */
export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

/** Network order: ports, conntrack zones. */
export function be16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
}

/** Network order, as nf_tables' numbers (negative ones, like verdict codes, as two's complement). */
export function be32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

export function be64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n, 0);
  return b;
}

/** nlmsghdr, then the body; port 0 (the kernel fills in the sender's). */
export function nlmsg(type: number, flags: number, seq: number, ...body: Buffer[]): Buffer {
  const payload = Buffer.concat(body);
  const h = Buffer.alloc(NLMSG_HDRLEN);
  h.writeUInt32LE(NLMSG_HDRLEN + payload.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  return Buffer.concat([h, payload]);
}

export interface Nlmsg {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  /** What follows the header. */
  readonly data: Buffer;
}

/** The messages of one datagram as received; stops at a malformed length. */
export function* nlmsgs(buf: Buffer): Generator<Nlmsg> {
  for (let off = 0; off + NLMSG_HDRLEN <= buf.length; ) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN) return;
    yield { type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8), data: buf.subarray(off + NLMSG_HDRLEN, off + len) };
    off += align4(len);
  }
}

/** The attributes from `start` on: type without flag bits, payload without padding; stops at a malformed length. */
export function* nlattrs(data: Uint8Array, start = 0): Generator<{ readonly type: number; readonly payload: Buffer }> {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  for (let off = start; off + 4 <= b.length; ) {
    const len = b.readUInt16LE(off);
    if (len < 4) return;
    yield { type: b.readUInt16LE(off + 2) & NLA_TYPE_MASK, payload: b.subarray(off + 4, off + len) };
    off += align4(len);
  }
}
