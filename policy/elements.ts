// Set and map element changes written straight to nf_tables over netlink, one atomic batch, no nft
// process. Why: nft 1.0.x fills its cache before any `add/delete element` by dumping the elements
// of EVERY set in the table (one request per set): at the kube-burner shape (3,500 sets, 76,000
// elements) that is ~1 s of kernel time per transaction, whatever its size, while chains, rules,
// sets and counters cost nft a few milliseconds. Pod churn is almost only elements (README.md,
// "Element-level updates"), so the applier sends those here and the rest through nft.
//
// The encoding is nft's own (compare `nft --debug=netlink`): keys in network byte order, each
// field of a concatenation padded to 4 bytes, verdict map values as a jump verdict, intervals as
// a start element and an end element (flag INTERVAL_END) one past the range.
import type { NetlinkSocket } from 'netlink';
import { parseGeneration } from '../common/nft/generation.js';
import { ipToBigint, parseCidr, type Family } from './ipnet.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
const NFT_MSG_GETGEN = 16;
const NFT_MSG_NEWGEN = 15;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 0x1;
const NLM_F_CREATE = 0x400;
const NFPROTO_INET = 1;
// nf_tables attributes
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_SET_ELEM_FLAGS = 3;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFTA_VERDICT_CHAIN = 2;
const NFT_JUMP = -3;
const NFT_SET_ELEM_INTERVAL_END = 1;
/** Elements per message: keeps each message far below the socket's buffer. */
const PER_MESSAGE = 500;

const PROTO: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };

export interface ElementChange {
  readonly verb: 'add' | 'delete';
  readonly set: string;
  /** As render.ts writes it: an address, a CIDR (interval sets), or "addr . proto . port". */
  readonly key: string;
  /** "" in sets, "jump <chain>" in verdict maps. */
  readonly value: string;
}

/** What a set's declaration (render.ts's `type … ;` body) says about its elements. */
export interface KeyShape {
  readonly family: Family;
  readonly concat: boolean;
  readonly interval: boolean;
  readonly verdict: boolean;
}

/** The shape of a set from its declaration; undefined for what this writer does not encode. */
export function keyShape(decl: string): KeyShape | undefined {
  const m = /^type (ipv4_addr|ipv6_addr)( \. inet_proto \. inet_service)?( : verdict)? ;( flags interval ;)?$/.exec(decl.trim());
  if (!m) return undefined;
  return { family: m[1] === 'ipv4_addr' ? 4 : 6, concat: !!m[2], interval: !!m[4], verdict: !!m[3] };
}

function addrBytes(n: bigint, family: Family): Buffer {
  const len = family === 4 ? 4 : 16;
  const b = Buffer.alloc(len);
  for (let i = len - 1; i >= 0; i--) {
    b[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return b;
}

/** The kernel's elements for one rendered element: one, or two for an interval (start, end). */
export function encodeKeys(shape: KeyShape, key: string): { readonly key: Buffer; readonly end: boolean }[] {
  if (shape.concat) {
    const [ip, proto, port] = key.split(' . ') as [string, string, string];
    const p = PROTO[proto];
    if (p === undefined || !(Number(port) >= 0 && Number(port) <= 65535)) throw new Error(`cannot encode element ${key}`);
    const tail = Buffer.alloc(8);
    tail[0] = p;
    tail.writeUInt16BE(Number(port), 4);
    return [{ key: Buffer.concat([addrBytes(ipToBigint(ip), shape.family), tail]), end: false }];
  }
  if (!shape.interval) return [{ key: addrBytes(ipToBigint(key), shape.family), end: false }];
  const c = parseCidr(key.includes('/') ? key : `${key}/${shape.family === 4 ? 32 : 128}`);
  if (!c) throw new Error(`cannot encode element ${key}`);
  const bits = shape.family === 4 ? 32n : 128n;
  const lo = c.lo;
  const next = c.hi + 1n;
  // A range reaching the last address has no end element (nft does the same).
  return next >> bits ? [{ key: addrBytes(lo, shape.family), end: false }] : [{ key: addrBytes(lo, shape.family), end: false }, { key: addrBytes(next, shape.family), end: true }];
}

// ---- netlink message building ----

function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}

const nest = (type: number, parts: Buffer[]): Buffer => attr(type, Buffer.concat(parts));
const str = (type: number, s: string): Buffer => attr(type, Buffer.from(`${s}\0`));
const be32 = (type: number, v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return attr(type, b);
};

function message(type: number, flags: number, seq: number, family: number, resId: number, body: Buffer): Buffer {
  const len = 16 + 4 + body.length;
  const h = Buffer.alloc(20);
  h.writeUInt32LE(len, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  h.writeUInt32LE(0, 12);
  h.writeUInt8(family, 16);
  h.writeUInt8(0, 17);
  h.writeUInt16BE(resId, 18);
  return Buffer.concat([h, body]);
}

function elementAttr(k: { key: Buffer; end: boolean }, value: string, withData: boolean): Buffer {
  const parts = [nest(NFTA_SET_ELEM_KEY, [attr(NFTA_DATA_VALUE, k.key)])];
  if (k.end) parts.push(be32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END));
  if (withData) {
    const m = /^jump (\S+)$/.exec(value);
    if (!m) throw new Error(`cannot encode map value ${value}`);
    parts.push(nest(NFTA_SET_ELEM_DATA, [nest(NFTA_DATA_VERDICT, [be32(NFTA_VERDICT_CODE, NFT_JUMP), str(NFTA_VERDICT_CHAIN, m[1]!)])]));
  }
  return nest(NFTA_LIST_ELEM, parts);
}

/**
 * The batch's messages (without BEGIN/END), in the order given: consecutive changes with the same
 * verb and set share a message. `shapes` gives each set's shape; seq() numbers the messages.
 */
export function elementMessages(table: string, changes: readonly ElementChange[], shapes: (set: string) => KeyShape | undefined, seq: () => number): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < changes.length) {
    const { verb, set } = changes[i]!;
    const shape = shapes(set);
    if (!shape) throw new Error(`set ${set}: element encoding unknown`);
    const elems: Buffer[] = [];
    let n = 0;
    while (i < changes.length && changes[i]!.verb === verb && changes[i]!.set === set && n < PER_MESSAGE) {
      const c = changes[i]!;
      // Deletes are matched by key (and the end flag); the value is not needed.
      for (const k of encodeKeys(shape, c.key)) elems.push(elementAttr(k, c.value, shape.verdict && verb === 'add' && !k.end));
      i++;
      n++;
    }
    const body = Buffer.concat([str(NFTA_SET_ELEM_LIST_TABLE, table), str(NFTA_SET_ELEM_LIST_SET, set), nest(NFTA_SET_ELEM_LIST_ELEMENTS, elems)]);
    const type = (NFNL_SUBSYS_NFTABLES << 8) | (verb === 'add' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
    out.push(message(type, NLM_F_REQUEST | (verb === 'add' ? NLM_F_CREATE : 0), seq(), NFPROTO_INET, 0, body));
  }
  return out;
}

/** Writes element batches to the nf_tables of the namespace its socket was opened in. */
export interface ElementWriter {
  /** One atomic transaction; rejects with the kernel's error (nothing applied). Resolves with the generation after it. */
  write(table: string, changes: readonly ElementChange[], shapes: (set: string) => KeyShape | undefined): Promise<number | undefined>;
  /** The namespace's ruleset generation (common/nft/generation.ts's reader, on this socket). */
  generation(): Promise<number | undefined>;
  close(): void;
}

export type OpenSocket = () => NetlinkSocket;

/**
 * `open` makes the NETLINK_NETFILTER socket (default: in this process's namespace; a test or the
 * bench opens it in another one). Errors come back as NLMSG_ERROR for the failing message; a
 * GETGEN sent after the batch is the fence: netlink answers in order, so when its reply is in,
 * every answer to the batch is too (and the reply says which generation the commit made).
 */
export function netlinkElements(open?: OpenSocket): ElementWriter {
  let sock: NetlinkSocket | undefined;
  let errors: { seq: number; errno: number }[] = [];
  let queue: Promise<unknown> = Promise.resolve();
  const socket = async (): Promise<NetlinkSocket> => {
    if (sock) return sock;
    const { createNetlink } = await import('netlink');
    const s = open ? open() : createNetlink(NETLINK_NETFILTER, { ref: false, recvBufferSize: 1 << 20, sendBufferSize: 4 << 20 });
    s.on('message', (m) => {
      const one = Array.isArray(m) ? m : [m];
      for (const x of one) if (x.type === NLMSG_ERROR && x.data.length >= 4) errors.push({ seq: x.seq, errno: Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength).readInt32LE(0) });
    });
    sock = s;
    return s;
  };
  const once = async (table: string, changes: readonly ElementChange[], shapes: (set: string) => KeyShape | undefined): Promise<number | undefined> => {
    if (changes.length === 0) return undefined;
    const s = await socket();
    const first = s.seq;
    const msgs = elementMessages(table, changes, shapes, () => s.generateSeq());
    const begin = message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, s.generateSeq(), 0, NFNL_SUBSYS_NFTABLES, Buffer.alloc(0));
    const end = message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, s.generateSeq(), 0, NFNL_SUBSYS_NFTABLES, Buffer.alloc(0));
    errors = [];
    try {
      await new Promise<void>((resolve, reject) => s.socket.send(Buffer.concat([begin, ...msgs, end]), {}, (e) => (e ? reject(e) : resolve())));
      const [reply] = await s.request((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, Buffer.alloc(4), { timeout: 5000 });
      const failed = errors.filter((e) => e.errno !== 0 && e.seq >= first);
      if (failed.length > 0) {
        const e = failed[0]!;
        const which = e.seq - first;
        throw Object.assign(new Error(`nf_tables refused an element batch: errno ${-e.errno} (message ${which} of ${msgs.length})`), { code: 'ERR_POLICY_ELEMENTS', errno: -e.errno });
      }
      const gen = reply.find((x) => (x.type & 0xff) === NFT_MSG_NEWGEN);
      return gen ? parseGeneration(gen.data) : undefined;
    } catch (e) {
      // The socket's state is in doubt (a timeout, a send error): the next batch opens a new one.
      if ((e as { code?: string }).code !== 'ERR_POLICY_ELEMENTS') close();
      throw e;
    }
  };
  const close = (): void => {
    sock?.close();
    sock = undefined;
  };
  return {
    write(table, changes, shapes) {
      const r = queue.then(() => once(table, changes, shapes));
      queue = r.catch(() => undefined);
      return r;
    },
    async generation() {
      try {
        const s = await socket();
        const [reply] = await s.request((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, Buffer.alloc(4), { timeout: 2000 });
        const gen = reply.find((x) => (x.type & 0xff) === NFT_MSG_NEWGEN);
        return gen ? parseGeneration(gen.data) : undefined;
      } catch {
        close();
        return undefined;
      }
    },
    close,
  };
}
