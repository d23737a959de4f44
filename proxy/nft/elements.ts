// Set and map elements as nf_tables messages (common/nft/batch.ts sends them), in place of `add
// element` text: nft spends ~0.4 s of CPU parsing the ~110,000 elements of a full sync at 10,000
// Services, about half of its CPU on this 2-core machine, and the render competes with it; and a
// partial sync through `nft -i` pays nft's cache refill, which grows with the table. Here each
// element is written straight into one buffer per message.
//
// The encoding is nft's own (compare `nft --debug=netlink`): addresses, ports and protocols in
// network byte order, `mark` and numgen values in host order; a lone field at its own width (2
// bytes for inet_service), each field of a concatenation padded to 4 bytes; verdict map values as
// a verdict (code, and the chain for jump and goto). Additions carry NLM_F_CREATE without EXCL,
// like `nft add`. Sets whose declaration this does not know (intervals, timeouts) stay with nft.
import { endianness } from 'node:os';
import { bigintToBytes, ipToBigint } from '../../common/ipaddr.js';
import { NLA_F_NESTED, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST } from '../../common/netlink/attrs.js';
import { NFNL_SUBSYS_NFTABLES, NFPROTO } from '../../common/nft/batch.js';
import {
  NFTA_CHAIN_NAME, NFTA_CHAIN_TABLE, NFTA_DATA_VALUE, NFTA_DATA_VERDICT, NFTA_LIST_ELEM, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_LIST_ELEMENTS,
  NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_TABLE, NFTA_VERDICT_CHAIN, NFTA_VERDICT_CODE, NFT_MSG_DELSETELEM, NFT_MSG_NEWCHAIN, NFT_MSG_NEWSETELEM, VERDICT_CODES, L4_PROTOCOLS,
} from '../../common/nft/nf-tables-h.js';

/** Elements per message: a few hundred keep each message far below the socket's buffer. */
const PER_MESSAGE = 500;

const HOST_LE = endianness() === 'LE';
/** Where a host-order u32's bytes go, least significant first. */
const U32_AT: readonly number[] = HOST_LE ? [0, 1, 2, 3] : [3, 2, 1, 0];

type Field = 'u32' | 'ipv4_addr' | 'ipv6_addr' | 'inet_proto' | 'inet_service';
const WIDTH: Readonly<Record<Field, number>> = { u32: 4, ipv4_addr: 4, ipv6_addr: 16, inet_proto: 1, inet_service: 2 };
const FIELDS: Readonly<Record<string, Field>> = { mark: 'u32', ipv4_addr: 'ipv4_addr', ipv6_addr: 'ipv6_addr', inet_proto: 'inet_proto', inet_service: 'inet_service' };

/** How one set's keys and values are laid out. */
export interface ElementCodec {
  readonly key: readonly Field[];
  /** Undefined for a set, 'verdict' for a verdict map. */
  readonly data: readonly Field[] | 'verdict' | undefined;
}

function fields(s: string): Field[] | undefined {
  const t = s.trim();
  // A numgen key (`typeof numgen random mod N`) is a 32-bit integer in host order, like a mark.
  if (/^typeof numgen random mod \d+$/.test(t)) return ['u32'];
  const m = /^type (.+)$/.exec(t);
  const names = (m ? m[1]! : t).split(' . ');
  const out: Field[] = [];
  for (const n of names) {
    const f = FIELDS[n.trim()];
    if (!f) return undefined;
    out.push(f);
  }
  return out;
}

/** The codec for a set declared with `decl` (render.ts's body), or undefined when nft must write it. */
export function codecOf(decl: string): ElementCodec | undefined {
  const clauses = decl.split(';').map((c) => c.trim()).filter((c) => c !== '');
  if (clauses.length !== 1) return undefined;
  const [k, d, ...rest] = clauses[0]!.split(' : ');
  if (rest.length) return undefined;
  const key = fields(k!);
  if (!key) return undefined;
  if (d === undefined) return { key, data: undefined };
  if (d.trim() === 'verdict') return { key, data: 'verdict' };
  const data = fields(`type ${d}`);
  return data ? { key, data } : undefined;
}

/**
 * A byte buffer that grows, with the netlink attribute helpers the messages need. Messages are
 * written one after another and handed out as views (take), so a chunk's messages lie side by
 * side and the batch sends them with one copy (common/nft/batch.ts coalesces adjacent views).
 */
class Out {
  buf = Buffer.allocUnsafe(1 << 16);
  off = 0;
  /** Where the message being written starts. */
  private mark = 0;

  ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    // Offsets handed out by open() and begin() stay valid: everything moves. Views already taken
    // keep the old buffer.
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(b, 0, 0, this.off);
    this.buf = b;
  }

  /** Opens an attribute; close() writes its length. */
  open(type: number): number {
    this.ensure(4);
    const at = this.off;
    // Byte stores rather than writeUInt16LE: its checks were a visible part of a full sync.
    this.buf[at + 2] = type & 0xff;
    this.buf[at + 3] = type >>> 8;
    this.off += 4;
    return at;
  }

  close(at: number): void {
    const n = this.off - at;
    this.buf[at] = n & 0xff;
    this.buf[at + 1] = n >>> 8;
    this.pad();
  }

  pad(): void {
    while (this.off & 3) this.buf[this.off++] = 0;
  }

  cstr(type: number, s: string): void {
    const at = this.open(type);
    this.ensure(s.length * 3 + 4);
    this.off += this.buf.write(s, this.off, 'utf8');
    this.buf[this.off++] = 0;
    this.close(at);
  }

  be32(type: number, n: number): void {
    this.ensure(8);
    this.buf.writeUInt16LE(8, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeUInt32BE(n >>> 0, this.off + 4);
    this.off += 8;
  }

  /**
   * The fields of `text` ("10.0.0.1 . tcp . 80"), padded to 4 bytes each when concatenated.
   * `twice`: text is one field's value, written into every field (SetState.twice).
   */
  value(type: number, fs: readonly Field[], text: string, twice = false): void {
    const at = this.open(type);
    this.ensure(20 * fs.length);
    if (fs.length === 1) writeField(this, fs[0]!, text.trim(), text);
    else if (twice) {
      // Parsed once; the other fields are copies of the first's bytes (all fields have its type).
      const start = this.off;
      writeField(this, fs[0]!, text.trim(), text);
      const width = this.off - start;
      this.pad();
      for (let i = 1; i < fs.length; i++) {
        if (fs[i] !== fs[0]) throw new Error(`cannot encode element ${text}`);
        this.buf.copyWithin(this.off, start, start + width);
        this.off += width;
        this.pad();
      }
    }
    else {
      // Cut at " . " without an array per element (a full sync encodes ~1,000,000 at 50,000 Services).
      let from = 0;
      for (let i = 0; i < fs.length; i++) {
        const last = i === fs.length - 1;
        const cut = text.indexOf(' . ', from);
        if (last ? cut >= 0 : cut < 0) throw new Error(`cannot encode element ${text}`);
        writeField(this, fs[i]!, text.slice(from, last ? text.length : cut).trim(), text);
        this.pad();
        from = cut + 3;
      }
    }
    this.close(at);
  }

  /** A number key (ElementChunk.items) where the layout is one `u32` (a mark). */
  u32(type: number, fs: readonly Field[], n: number): void {
    if (fs.length !== 1 || fs[0] !== 'u32') throw new Error(`cannot encode element ${n}`);
    const at = this.open(type);
    this.ensure(4);
    writeU32(this, n, n);
    this.off += 4;
    this.close(at);
  }

  take(): Buffer {
    const b = this.buf.subarray(this.mark, this.off);
    this.mark = this.off;
    return b;
  }
}

/**
 * A plain decimal number (what render.ts writes) without a string operation, or -1 for anything
 * else, which then takes the general path below.
 */
function decimal(s: string, from: number, to: number): number {
  if (to <= from || to - from > 10) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** A dotted quad of plain decimals into b[at..at+4]; false for anything else. */
function quad(b: Buffer, at: number, s: string): boolean {
  let from = 0;
  for (let i = 0; i < 4; i++) {
    const dot = i === 3 ? s.length : s.indexOf('.', from);
    if (dot < 0) return false;
    const n = decimal(s, from, dot);
    if (n < 0 || n > 255) return false;
    b[at + i] = n;
    from = dot + 1;
  }
  return true;
}

/** A 32-bit integer in host order at o.off (the caller moves on). */
function writeU32(o: Out, n: number, text: string | number): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`cannot encode element ${text}`);
  const b = o.buf;
  const at = o.off;
  b[at + U32_AT[0]!] = n & 0xff;
  b[at + U32_AT[1]!] = (n >>> 8) & 0xff;
  b[at + U32_AT[2]!] = (n >>> 16) & 0xff;
  b[at + U32_AT[3]!] = n >>> 24;
}

function writeField(o: Out, f: Field, s: string, text: string): void {
  const b = o.buf;
  switch (f) {
    case 'u32': {
      const d = decimal(s, 0, s.length);
      writeU32(o, d >= 0 ? d : Number(s), text);
      break;
    }
    case 'ipv4_addr': {
      if (quad(b, o.off, s)) break;
      const q = s.split('.');
      if (q.length !== 4) throw new Error(`cannot encode element ${text}`);
      for (let i = 0; i < 4; i++) {
        const n = Number(q[i]);
        if (!(n >= 0 && n <= 255) || q[i] === '') throw new Error(`cannot encode element ${text}`);
        b[o.off + i] = n;
      }
      break;
    }
    case 'ipv6_addr': {
      if (!s.includes(':')) throw new Error(`cannot encode element ${text}`);
      bigintToBytes(ipToBigint(s), 6).copy(b, o.off);
      break;
    }
    case 'inet_proto': {
      const n = L4_PROTOCOLS[s] ?? Number(s);
      if (!(n >= 0 && n <= 255)) throw new Error(`cannot encode element ${text}`);
      b[o.off] = n;
      break;
    }
    case 'inet_service': {
      const d = decimal(s, 0, s.length);
      const n = d >= 0 ? d : Number(s);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`cannot encode element ${text}`);
      b[o.off] = n >>> 8;
      b[o.off + 1] = n & 0xff;
      break;
    }
  }
  o.off += WIDTH[f];
}

function verdict(o: Out, text: string): void {
  const space = text.indexOf(' ');
  const word = space < 0 ? text : text.slice(0, space);
  const code = VERDICT_CODES[word];
  const chain = space < 0 ? undefined : text.slice(space + 1);
  if (code === undefined || (chain === undefined) !== (code !== -3 && code !== -4)) throw new Error(`cannot encode map value ${text}`);
  const data = o.open(NFTA_SET_ELEM_DATA | NLA_F_NESTED);
  const v = o.open(NFTA_DATA_VERDICT | NLA_F_NESTED);
  o.be32(NFTA_VERDICT_CODE, code);
  if (chain !== undefined) o.cstr(NFTA_VERDICT_CHAIN, chain);
  o.close(v);
  o.close(data);
}

/** nlmsghdr and nfgenmsg; the message's length is written by end(). */
function begin(o: Out, type: number, flags: number, seq: number, family: number): number {
  o.ensure(NLMSG_HDRLEN + 4);
  const at = o.off;
  o.buf.writeUInt16LE((NFNL_SUBSYS_NFTABLES << 8) | type, at + 4);
  o.buf.writeUInt16LE(flags, at + 6);
  o.buf.writeUInt32LE(seq, at + 8);
  o.buf.writeUInt32LE(0, at + 12);
  o.buf[at + 16] = family;
  o.buf[at + 17] = 0;
  o.buf.writeUInt16BE(0, at + 18);
  o.off += NLMSG_HDRLEN + 4;
  return at;
}

function end(o: Out, at: number): void {
  o.buf.writeUInt32LE(o.off - at, at);
}

/**
 * One transaction's elements (a chunk of a staged full sync, or a partial sync's changes): chains
 * the verdict elements jump to, keys deleted, then elements added.
 */
export interface ElementChunk {
  readonly targets: Iterable<string>;
  /** Per set, keys. */
  readonly deletes?: ReadonlyMap<string, readonly string[]>;
  /**
   * Per set, keys and values alternating ("" for a set's elements); a number key is a `mark` key
   * as is (StageWriter: an endpoint map's `slot | index`).
   */
  readonly items: ReadonlyMap<string, readonly (string | number)[]>;
  /** Sets whose keys are carried once and written into each field of the key (SetState.twice). */
  readonly twice?: ReadonlySet<string>;
}

/** The sets a chunk writes to. */
export function setsOf(chunk: ElementChunk): string[] {
  return [...(chunk.deletes?.keys() ?? []), ...chunk.items.keys()];
}

/**
 * The chunk as one transaction's messages: the chains first (created if missing: verdict elements
 * must jump to an existing chain), the deletions, then the additions, PER_MESSAGE elements to a
 * message. `prefix` is "ip skiff"; `codec` gives each set's layout. Throws on anything it cannot
 * encode.
 */
export function chunkMessages(prefix: string, chunk: ElementChunk, codec: (set: string) => ElementCodec | undefined, seq: () => number): Buffer[] {
  const [familyWord, table] = prefix.split(' ') as [string, string];
  const family = NFPROTO[familyWord];
  if (family === undefined || !table) throw new Error(`unknown table ${prefix}`);
  const o = new Out();
  const out: Buffer[] = [];
  const flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
  for (const chain of chunk.targets) {
    const m = begin(o, NFT_MSG_NEWCHAIN, flags, seq(), family);
    o.cstr(NFTA_CHAIN_TABLE, table);
    o.cstr(NFTA_CHAIN_NAME, chain);
    end(o, m);
    out.push(o.take());
  }
  for (const [set, keys] of chunk.deletes ?? []) {
    const c = codec(set);
    if (!c) throw new Error(`set ${set}: element encoding unknown`);
    const twice = chunk.twice?.has(set) === true;
    for (let i = 0; i < keys.length; i += PER_MESSAGE) {
      // Deletions are matched by key alone.
      const m = begin(o, NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK, seq(), family);
      o.cstr(NFTA_SET_ELEM_LIST_TABLE, table);
      o.cstr(NFTA_SET_ELEM_LIST_SET, set);
      const list = o.open(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED);
      for (let j = i; j < keys.length && j < i + PER_MESSAGE; j++) {
        const el = o.open(NFTA_LIST_ELEM | NLA_F_NESTED);
        const key = o.open(NFTA_SET_ELEM_KEY | NLA_F_NESTED);
        o.value(NFTA_DATA_VALUE, c.key, keys[j]!, twice);
        o.close(key);
        o.close(el);
      }
      o.close(list);
      end(o, m);
      out.push(o.take());
    }
  }
  for (const [set, a] of chunk.items) {
    const c = codec(set);
    if (!c) throw new Error(`set ${set}: element encoding unknown`);
    const twice = chunk.twice?.has(set) === true;
    for (let i = 0; i < a.length; i += 2 * PER_MESSAGE) {
      const m = begin(o, NFT_MSG_NEWSETELEM, flags, seq(), family);
      o.cstr(NFTA_SET_ELEM_LIST_TABLE, table);
      o.cstr(NFTA_SET_ELEM_LIST_SET, set);
      const list = o.open(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED);
      for (let j = i; j < a.length && j < i + 2 * PER_MESSAGE; j += 2) {
        const el = o.open(NFTA_LIST_ELEM | NLA_F_NESTED);
        const key = o.open(NFTA_SET_ELEM_KEY | NLA_F_NESTED);
        const k = a[j]!;
        if (typeof k === 'number') o.u32(NFTA_DATA_VALUE, c.key, k);
        else o.value(NFTA_DATA_VALUE, c.key, k, twice);
        o.close(key);
        const v = a[j + 1]!;
        if (typeof v !== 'string') throw new Error(`cannot encode element value ${v}`);
        if (c.data === 'verdict') verdict(o, v);
        else if (c.data) {
          const data = o.open(NFTA_SET_ELEM_DATA | NLA_F_NESTED);
          o.value(NFTA_DATA_VALUE, c.data, v);
          o.close(data);
        }
        o.close(el);
      }
      o.close(list);
      end(o, m);
      out.push(o.take());
    }
  }
  return out;
}
