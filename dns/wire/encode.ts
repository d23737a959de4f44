// Message -> wire, with name compression and truncation to the client's size limit. One scratch
// buffer is reused for every message (the event loop is single-threaded) and the result is copied
// out, because a dgram send may complete after the next encode starts.
import { isIPv4, isIPv6 } from 'node:net';
import { Type, type HINFOData, type MXData, type Message, type RR, type SOAData, type SRVData } from './types.js';

export class EncodeError extends Error {
  readonly code = 'ERR_DNS_ENCODE';
}

const scratch = Buffer.allocUnsafe(65535 + 512);

/** Splits presentation form into raw labels, undoing \. \\ and \DDD escapes. */
export function nameLabels(name: string): Buffer[] {
  if (name === '' || name === '.') return [];
  const n = name.endsWith('.') && !name.endsWith('\\.') ? name.slice(0, -1) : name;
  if (!n.includes('\\')) {
    return n.split('.').map((l) => {
      if (l.length === 0 || l.length > 63) throw new EncodeError(`bad label in ${name}`);
      return Buffer.from(l, 'latin1');
    });
  }
  const labels: Buffer[] = [];
  let cur: number[] = [];
  for (let i = 0; i < n.length; i++) {
    const ch = n.charCodeAt(i);
    if (ch === 0x5c) {
      const d = /^\d{3}/.exec(n.slice(i + 1, i + 4));
      if (d) {
        cur.push(Number(d[0]) & 0xff);
        i += 3;
      } else if (i + 1 < n.length) {
        cur.push(n.charCodeAt(++i) & 0xff);
      }
    } else if (ch === 0x2e) {
      labels.push(Buffer.from(cur));
      cur = [];
    } else cur.push(ch & 0xff);
  }
  labels.push(Buffer.from(cur));
  for (const l of labels) if (l.length === 0 || l.length > 63) throw new EncodeError(`bad label in ${name}`);
  return labels;
}

class Writer {
  pos = 0;
  private readonly names = new Map<string, number>();
  constructor(readonly buf: Buffer) {}

  room(n: number): void {
    if (this.pos + n > this.buf.length) throw new EncodeError('message larger than 64 KiB');
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.room(2);
    this.buf.writeUInt16BE(v & 0xffff, this.pos);
    this.pos += 2;
  }
  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  name(name: string, compress: boolean): void {
    const labels = nameLabels(name);
    let total = 1;
    for (const l of labels) total += l.length + 1;
    if (total > 255) throw new EncodeError(`name too long: ${name}`);
    for (let i = 0; i < labels.length; i++) {
      // Keys are lowercased latin1 suffixes: compression is case-insensitive, as RFC 1035 allows.
      const key = labels
        .slice(i)
        .map((l) => l.toString('latin1'))
        .join('\u0000')
        .toLowerCase();
      const at = this.names.get(key);
      if (compress && at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (at === undefined && this.pos < 0x4000) this.names.set(key, this.pos);
      this.u8(labels[i]!.length);
      this.bytes(labels[i]!);
    }
    this.u8(0);
  }

  charString(s: string): void {
    const b = Buffer.from(s, 'latin1');
    if (b.length > 255) throw new EncodeError('character-string longer than 255 octets');
    this.u8(b.length);
    this.bytes(b);
  }
}

function ipv4(w: Writer, s: string): void {
  if (!isIPv4(s)) throw new EncodeError(`bad IPv4 address ${s}`);
  for (const p of s.split('.')) w.u8(Number(p));
}

/** The eight 16-bit groups of an IPv6 address, embedded dotted quads included. */
export function ipv6Groups(s: string): number[] {
  if (!isIPv6(s)) throw new EncodeError(`bad IPv6 address ${s}`);
  let text = s;
  let quad: number[] | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    quad = text.slice(lastColon + 1).split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const dbl = text.indexOf('::');
  const part = (x: string): number[] => (x === '' ? [] : x.split(':').map((g) => parseInt(g, 16)));
  let groups: number[];
  if (dbl < 0) groups = part(text);
  else {
    const head = part(text.slice(0, dbl));
    const tail = part(text.slice(dbl + 2));
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  if (quad) {
    groups[6] = (quad[0]! << 8) | quad[1]!;
    groups[7] = (quad[2]! << 8) | quad[3]!;
  }
  if (groups.length !== 8) throw new EncodeError(`bad IPv6 address ${s}`);
  return groups;
}

function ipv6(w: Writer, s: string): void {
  for (const g of ipv6Groups(s)) w.u16(g);
}

function rdata(w: Writer, rr: RR): void {
  const lenAt = w.pos;
  w.u16(0);
  const start = w.pos;
  const d = rr.data;
  switch (rr.type) {
    case Type.A:
      ipv4(w, d as string);
      break;
    case Type.AAAA:
      ipv6(w, d as string);
      break;
    case Type.NS:
    case Type.CNAME:
    case Type.PTR:
      w.name(d as string, true);
      break;
    case Type.MX:
      w.u16((d as MXData).preference);
      w.name((d as MXData).exchange, true);
      break;
    case Type.SRV: {
      const s = d as SRVData;
      w.u16(s.priority);
      w.u16(s.weight);
      w.u16(s.port);
      w.name(s.target, false); // RFC 2782: the target is never compressed
      break;
    }
    case Type.SOA: {
      const s = d as SOAData;
      w.name(s.mname, true);
      w.name(s.rname, true);
      w.u32(s.serial);
      w.u32(s.refresh);
      w.u32(s.retry);
      w.u32(s.expire);
      w.u32(s.minimum);
      break;
    }
    case Type.TXT:
      for (const s of d as readonly string[]) w.charString(s);
      break;
    case Type.HINFO:
      w.charString((d as HINFOData).cpu);
      w.charString((d as HINFOData).os);
      break;
    default:
      w.bytes(d as Uint8Array);
  }
  w.buf.writeUInt16BE(w.pos - start, lenAt);
}

function record(w: Writer, rr: RR, ttlAt?: number[]): void {
  w.name(rr.name, true);
  w.u16(rr.type);
  w.u16(rr.class);
  ttlAt?.push(w.pos);
  w.u32(rr.ttl);
  rdata(w, rr);
}

function flagsOf(m: Message): number {
  return (
    (m.qr ? 0x8000 : 0) |
    ((m.opcode & 0xf) << 11) |
    (m.aa ? 0x0400 : 0) |
    (m.tc ? 0x0200 : 0) |
    (m.rd ? 0x0100 : 0) |
    (m.ra ? 0x0080 : 0) |
    (m.ad ? 0x0020 : 0) |
    (m.cd ? 0x0010 : 0) |
    (m.rcode & 0xf)
  );
}

function write(m: Message, sections: boolean, ttlAt?: number[]): Buffer {
  const w = new Writer(scratch);
  w.u16(m.id);
  w.u16(flagsOf(m));
  w.u16(m.question.length);
  const an = sections ? m.answer : [];
  const ns = sections ? m.authority : [];
  const ar = sections ? m.additional : [];
  w.u16(an.length);
  w.u16(ns.length);
  w.u16(ar.length + (m.edns ? 1 : 0));
  for (const q of m.question) {
    w.name(q.name, true);
    w.u16(q.type);
    w.u16(q.class);
  }
  for (const rr of an) record(w, rr, ttlAt);
  for (const rr of ns) record(w, rr, ttlAt);
  for (const rr of ar) record(w, rr, ttlAt);
  if (m.edns) {
    w.u8(0);
    w.u16(Type.OPT);
    w.u16(m.edns.udpSize);
    w.u32(((m.rcode >> 4) << 24) | ((m.edns.version & 0xff) << 16) | (m.edns.dnssecOk ? 0x8000 : 0));
    const lenAt = w.pos;
    w.u16(0);
    for (const o of m.edns.options) {
      w.u16(o.code);
      w.u16(o.data.length);
      w.bytes(o.data);
    }
    scratch.writeUInt16BE(w.pos - lenAt - 2, lenAt);
  }
  const out = Buffer.allocUnsafe(w.pos);
  scratch.copy(out, 0, 0, w.pos);
  return out;
}

/**
 * Encodes; when the result exceeds maxSize (a UDP client's limit) the answer is replaced by a
 * header-and-question reply with TC set, which sends the client to TCP. `ttlAt` collects the offset
 * of every record's TTL field (in section order) for callers that patch TTLs later.
 */
export function encode(m: Message, maxSize = 65535, ttlAt?: number[]): Buffer {
  const full = write(m, true, ttlAt);
  if (full.length <= maxSize) return full;
  if (ttlAt) ttlAt.length = 0;
  const tc = write({ ...m, tc: true }, false);
  return tc;
}
