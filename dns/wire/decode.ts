// Wire -> Message. Every read is bounds-checked and throws WireError, so a hostile or truncated packet
// costs one exception and never a crash; the server turns it into FORMERR or a silent drop.
import type { Edns, EdnsOption, Message, Question, RData, RR } from './types.js';
import { Type } from './types.js';

export class WireError extends Error {
  readonly code = 'ERR_DNS_WIRE';
}

const MAX_POINTER_HOPS = 64;

export interface Cursor {
  readonly buf: Buffer;
  pos: number;
}

function need(c: Cursor, n: number): void {
  if (c.pos + n > c.buf.length) throw new WireError(`truncated at ${c.pos}`);
}

function u16(c: Cursor): number {
  need(c, 2);
  const v = c.buf.readUInt16BE(c.pos);
  c.pos += 2;
  return v;
}

function u32(c: Cursor): number {
  need(c, 4);
  const v = c.buf.readUInt32BE(c.pos);
  c.pos += 4;
  return v;
}

/** One label in presentation form; bytes that would be ambiguous are escaped (\. \\ \DDD). */
function labelText(buf: Buffer, start: number, end: number): string {
  let plain = true;
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if (b <= 0x20 || b >= 0x7f || b === 0x2e || b === 0x5c) {
      plain = false;
      break;
    }
  }
  if (plain) return buf.toString('latin1', start, end);
  let s = '';
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if (b === 0x2e || b === 0x5c) s += '\\' + String.fromCharCode(b);
    else if (b <= 0x20 || b >= 0x7f) s += '\\' + String(b).padStart(3, '0');
    else s += String.fromCharCode(b);
  }
  return s;
}

export function readName(c: Cursor): string {
  const buf = c.buf;
  let pos = c.pos;
  let jumped = false;
  let hops = 0;
  let wireLen = 1;
  let name = '';
  for (;;) {
    if (pos >= buf.length) throw new WireError('name runs past the end');
    const len = buf[pos]!;
    if (len === 0) {
      pos += 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) throw new WireError('truncated pointer');
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (!jumped) c.pos = pos + 2;
      jumped = true;
      // Pointers must go backwards; with the hop limit that rules out loops.
      if (target >= pos || ++hops > MAX_POINTER_HOPS) throw new WireError('bad compression pointer');
      pos = target;
      continue;
    }
    if (kind !== 0) throw new WireError('unsupported label type');
    if (pos + 1 + len > buf.length) throw new WireError('label runs past the end');
    wireLen += len + 1;
    if (wireLen > 255) throw new WireError('name longer than 255 octets');
    const label = labelText(buf, pos + 1, pos + 1 + len);
    name = name === '' ? label : `${name}.${label}`;
    pos += 1 + len;
  }
  if (!jumped) c.pos = pos;
  return name;
}

function characterString(c: Cursor, end: number): string {
  if (c.pos >= end) throw new WireError('truncated character-string');
  const len = c.buf[c.pos]!;
  if (c.pos + 1 + len > end) throw new WireError('character-string runs past rdata');
  // latin1 keeps every byte as one char, so a decode-encode round trip is byte-exact.
  const s = c.buf.toString('latin1', c.pos + 1, c.pos + 1 + len);
  c.pos += 1 + len;
  return s;
}

function ipv6Text(b: Buffer, at: number): string {
  const parts: number[] = [];
  for (let i = 0; i < 8; i++) parts.push(b.readUInt16BE(at + i * 2));
  // Longest run of zero groups becomes "::" (RFC 5952).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (parts[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = parts.map((p) => p.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function readRData(c: Cursor, type: number, rdlen: number): RData {
  const end = c.pos + rdlen;
  need(c, rdlen);
  const buf = c.buf;
  let data: RData;
  switch (type) {
    case Type.A:
      if (rdlen !== 4) throw new WireError('A rdata must be 4 octets');
      data = `${buf[c.pos]}.${buf[c.pos + 1]}.${buf[c.pos + 2]}.${buf[c.pos + 3]}`;
      c.pos = end;
      return data;
    case Type.AAAA:
      if (rdlen !== 16) throw new WireError('AAAA rdata must be 16 octets');
      data = ipv6Text(buf, c.pos);
      c.pos = end;
      return data;
    case Type.NS:
    case Type.CNAME:
    case Type.PTR:
      data = readName(c);
      break;
    case Type.MX: {
      const preference = u16(c);
      data = { preference, exchange: readName(c) };
      break;
    }
    case Type.SRV: {
      const priority = u16(c);
      const weight = u16(c);
      const port = u16(c);
      data = { priority, weight, port, target: readName(c) };
      break;
    }
    case Type.SOA: {
      const mname = readName(c);
      const rname = readName(c);
      data = { mname, rname, serial: u32(c), refresh: u32(c), retry: u32(c), expire: u32(c), minimum: u32(c) };
      break;
    }
    case Type.TXT: {
      const strings: string[] = [];
      while (c.pos < end) strings.push(characterString(c, end));
      data = strings;
      break;
    }
    case Type.HINFO: {
      const cpu = characterString(c, end);
      data = { cpu, os: characterString(c, end) };
      break;
    }
    default:
      data = Uint8Array.prototype.slice.call(buf, c.pos, end);
      c.pos = end;
      return data;
  }
  if (c.pos !== end) throw new WireError(`rdata length mismatch for type ${type}`);
  return data;
}

function readRR(c: Cursor): RR {
  const name = readName(c);
  const type = u16(c);
  const klass = u16(c);
  const ttl = u32(c);
  const rdlen = u16(c);
  return { name, type, class: klass, ttl, data: readRData(c, type, rdlen) };
}

function readOpt(c: Cursor): { edns: Edns; extRcode: number } {
  const name = readName(c);
  if (name !== '') throw new WireError('OPT owner must be the root');
  u16(c); // type
  const udpSize = u16(c);
  const ttl = u32(c);
  const rdlen = u16(c);
  need(c, rdlen);
  const end = c.pos + rdlen;
  const options: EdnsOption[] = [];
  while (c.pos < end) {
    const code = u16(c);
    const len = u16(c);
    if (c.pos + len > end) throw new WireError('EDNS option runs past rdata');
    options.push({ code, data: Uint8Array.prototype.slice.call(c.buf, c.pos, c.pos + len) });
    c.pos += len;
  }
  return {
    edns: { udpSize: Math.max(512, udpSize), version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & 0x8000) !== 0, options },
    extRcode: ttl >>> 24,
  };
}

export interface Header {
  readonly id: number;
  readonly qr: boolean;
  readonly opcode: number;
}

/** Just enough to answer FORMERR to a packet whose body cannot be parsed. */
export function peekHeader(buf: Buffer): Header | undefined {
  if (buf.length < 12) return undefined;
  const flags = buf.readUInt16BE(2);
  return { id: buf.readUInt16BE(0), qr: (flags & 0x8000) !== 0, opcode: (flags >> 11) & 0xf };
}

export function decode(buf: Buffer): Message {
  const c: Cursor = { buf, pos: 0 };
  const id = u16(c);
  const flags = u16(c);
  const qd = u16(c);
  const an = u16(c);
  const ns = u16(c);
  const ar = u16(c);
  const question: Question[] = [];
  for (let i = 0; i < qd; i++) {
    const name = readName(c);
    question.push({ name, type: u16(c), class: u16(c) });
  }
  const answer: RR[] = [];
  for (let i = 0; i < an; i++) answer.push(readRR(c));
  const authority: RR[] = [];
  for (let i = 0; i < ns; i++) authority.push(readRR(c));
  const additional: RR[] = [];
  let edns: Edns | undefined;
  let extRcode = 0;
  for (let i = 0; i < ar; i++) {
    // OPT is recognised by its type, which follows the owner name (normally the single root byte).
    const save = c.pos;
    readName(c);
    const type = u16(c);
    c.pos = save;
    if (type === Type.OPT) {
      if (edns) throw new WireError('more than one OPT record');
      const o = readOpt(c);
      edns = o.edns;
      extRcode = o.extRcode;
    } else additional.push(readRR(c));
  }
  const m: Message = {
    id,
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    ad: (flags & 0x0020) !== 0,
    cd: (flags & 0x0010) !== 0,
    rcode: (extRcode << 4) | (flags & 0xf),
    question,
    answer,
    authority,
    additional,
  };
  if (edns) m.edns = edns;
  return m;
}
