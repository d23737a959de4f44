// Set and map elements written straight to nf_tables over netlink, one atomic batch per write, no
// nft process. Two writers need it, for the same reason: nft reads the table it touches into its
// cache before any command, and a node's policy table holds thousands of sets and chains.
// - The policy applier (index.ts, dataplane.ts): nft 1.0.x fills its cache before any `add/delete
//   element` by dumping the elements of EVERY set in the table (one request per set): at the
//   kube-burner shape (3,500 sets, 76,000 elements) that is ~1 s of kernel time per transaction,
//   whatever its size, while chains, rules, sets and counters cost nft a few milliseconds. Pod
//   churn is almost only elements (README.md, "Element-level updates"), so they come here.
// - FQDN egress (fqdn.ts), where a DNS reply waits for the write: measured (`npm run bench -- fqdn
//   --filler 10000`) 76 ms p50 per `add element` through a long-lived `nft -i` with 10,000 other
//   sets and chains in the table, against ~0.3 ms in an empty one. Its addresses are additions
//   with a timeout.
//
// The encoding is nft's own (compare `nft --debug=netlink`; linux/netfilter/nf_tables.h): keys in
// network byte order, each field of a concatenation padded to 4 bytes, verdict map values as a jump
// verdict, intervals as a start element and an end element (flag INTERVAL_END) one past the range,
// timeouts in milliseconds. A batch is BATCH_BEGIN, the element messages (NLM_F_ACK on each;
// additions with NLM_F_CREATE and without EXCL, so an existing element is no error and takes the
// new timeout, as `nft add` does), BATCH_END. The kernel answers each element message with an
// NLMSG_ERROR (0: done), and BEGIN or END only with an error (a failed commit is reported on
// BEGIN): the first error rejects the write at once (the kernel applied nothing), the last ack
// resolves it.
import { constants } from 'node:os';
import type { RawNetlinkSocket } from 'netlink';
import { bigintToBytes, familyOf, ipToBigint, type Family } from '../common/ipaddr.js';
import { parseCidr } from './ipnet.js';
import { be32, be64, cstr, nest, nla, nlmsg, nlmsgs, NLMSG_ERROR, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST } from '../common/netlink/attrs.js';
import { parseGeneration } from '../common/nft/generation.js';
import { commandMessage, type Command } from './nlcommands.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
const NFT_MSG_GETGEN = 16;
const NFT_MSG_NEWGEN = 15;
const NFPROTO_UNSPEC = 0;
const NFPROTO_INET = 1;
// nf_tables attributes
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_SET_ELEM_FLAGS = 3;
const NFTA_SET_ELEM_TIMEOUT = 4;
const NFTA_SET_ELEM_KEY_END = 10;
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
  /** Additions to sets with `flags timeout` (FQDN egress): the element expires after this. */
  readonly timeoutS?: number;
}

/** What a set's declaration (render.ts's `type … ;` body) says about its elements. */
export type KeyShape = AddressShape | PortShape;

export interface AddressShape {
  readonly family: Family;
  readonly concat: boolean;
  readonly interval: boolean;
  readonly verdict: boolean;
}

/** `inet_proto . inet_service` with intervals: a rule's ports ("tcp . 80", "udp . 1000-2000"). */
export interface PortShape {
  readonly ports: true;
}

/** The shape of a set from its declaration; undefined for what the applier does not write here. */
export function keyShape(decl: string): KeyShape | undefined {
  if (decl.trim() === 'type inet_proto . inet_service ; flags interval ;') return { ports: true };
  const m = /^type (ipv4_addr|ipv6_addr)( \. inet_proto \. inet_service)?( : verdict)? ;( flags interval ;)?$/.exec(decl.trim());
  if (!m) return undefined;
  return { family: m[1] === 'ipv4_addr' ? 4 : 6, concat: !!m[2], interval: !!m[4], verdict: !!m[3] };
}

/** A plain address set of one family (FQDN egress's timeout sets). */
export const addressShape = (family: Family): AddressShape => ({ family, concat: false, interval: false, verdict: false });

/** The address in the set's family; an address of the other family would fit no key of the set. */
function addrKey(ip: string, shape: AddressShape, key: string): Buffer {
  if (familyOf(ip) !== shape.family) throw new Error(`cannot encode element ${key}`);
  return bigintToBytes(ipToBigint(ip), shape.family);
}

/** One element as the kernel takes it; `keyEnd`: the inclusive end of a concatenated range. */
export interface EncodedKey {
  readonly key: Buffer;
  readonly end: boolean;
  readonly keyEnd?: Buffer;
}

/** protocol and port, each padded to 4 bytes as in every concatenation. */
function protoPort(proto: number, port: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = proto;
  b.writeUInt16BE(port, 4);
  return b;
}

const validPort = (p: number): boolean => Number.isInteger(p) && p >= 0 && p <= 65535;

/**
 * The kernel's elements for one rendered element: one, or two for an address interval (start,
 * end). A concatenation with intervals (the kernel's pipapo set) is one element with KEY_END, as
 * nft sends it, also for a single port.
 */
export function encodeKeys(shape: KeyShape, key: string): EncodedKey[] {
  if ('ports' in shape) {
    const [proto, range] = key.split(' . ') as [string, string | undefined];
    const p = PROTO[proto];
    const [from, to = from] = (range ?? '').split('-').map((x) => (x === '' ? NaN : Number(x)));
    if (p === undefined || !validPort(from!) || !validPort(to!) || to! < from!) throw new Error(`cannot encode element ${key}`);
    return [{ key: protoPort(p, from!), end: false, keyEnd: protoPort(p, to!) }];
  }
  if (shape.concat) {
    const [ip, proto, port] = key.split(' . ') as [string, string, string];
    const p = PROTO[proto];
    if (p === undefined || !(Number(port) >= 0 && Number(port) <= 65535)) throw new Error(`cannot encode element ${key}`);
    return [{ key: Buffer.concat([addrKey(ip, shape, key), protoPort(p, Number(port))]), end: false }];
  }
  if (!shape.interval) return [{ key: addrKey(key, shape, key), end: false }];
  const c = parseCidr(key.includes('/') ? key : `${key}/${shape.family === 4 ? 32 : 128}`);
  if (!c || c.family !== shape.family) throw new Error(`cannot encode element ${key}`);
  const bits = shape.family === 4 ? 32n : 128n;
  const next = c.hi + 1n;
  const start = { key: bigintToBytes(c.lo, shape.family), end: false };
  // A range reaching the last address has no end element (nft does the same).
  return next >> bits ? [start] : [start, { key: bigintToBytes(next, shape.family), end: true }];
}

/** nlmsghdr and nfgenmsg (family, version 0, res_id in network order), then the attributes. */
function nfmsg(type: number, flags: number, seq: number, family: number, resId: number, ...attrs: Buffer[]): Buffer {
  const nfgen = Buffer.from([family, 0, resId >> 8, resId & 0xff]);
  return nlmsg(type, flags, seq, nfgen, ...attrs);
}

function elementAttr(k: EncodedKey, c: ElementChange, withData: boolean): Buffer {
  const parts = [nest(NFTA_SET_ELEM_KEY, nla(NFTA_DATA_VALUE, k.key))];
  if (k.keyEnd) parts.push(nest(NFTA_SET_ELEM_KEY_END, nla(NFTA_DATA_VALUE, k.keyEnd)));
  if (k.end) parts.push(nla(NFTA_SET_ELEM_FLAGS, be32(NFT_SET_ELEM_INTERVAL_END)));
  if (c.timeoutS !== undefined && c.verb === 'add') parts.push(nla(NFTA_SET_ELEM_TIMEOUT, be64(BigInt(Math.round(c.timeoutS * 1000)))));
  if (withData) {
    const m = /^jump (\S+)$/.exec(c.value);
    if (!m) throw new Error(`cannot encode map value ${c.value}`);
    parts.push(nest(NFTA_SET_ELEM_DATA, nest(NFTA_DATA_VERDICT, nla(NFTA_VERDICT_CODE, be32(NFT_JUMP)), nla(NFTA_VERDICT_CHAIN, cstr(m[1]!)))));
  }
  return nest(NFTA_LIST_ELEM, ...parts);
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
      const verdict = 'verdict' in shape && shape.verdict;
      for (const k of encodeKeys(shape, c.key)) elems.push(elementAttr(k, c, verdict && verb === 'add' && !k.end));
      i++;
      n++;
    }
    const type = (NFNL_SUBSYS_NFTABLES << 8) | (verb === 'add' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
    const flags = NLM_F_REQUEST | NLM_F_ACK | (verb === 'add' ? NLM_F_CREATE : 0);
    out.push(nfmsg(type, flags, seq(), NFPROTO_INET, 0, nla(NFTA_SET_ELEM_LIST_TABLE, cstr(table)), nla(NFTA_SET_ELEM_LIST_SET, cstr(set)), nest(NFTA_SET_ELEM_LIST_ELEMENTS, ...elems)));
  }
  return out;
}

/** Writes element batches to the nf_tables of the namespace its socket was opened in. */
export interface ElementWriter {
  /**
   * One atomic transaction; rejects with the kernel's first error (then nothing was applied).
   * `commands` (nlcommands.ts: new sets, chains, rules, counters) go first in the same batch.
   */
  write(table: string, changes: readonly ElementChange[], shapes: (set: string) => KeyShape | undefined, commands?: readonly Command[]): Promise<void>;
  /** The namespace's ruleset generation (common/nft/generation.ts's reader, on this socket); undefined when the kernel cannot be asked. */
  generation(): Promise<number | undefined>;
  close(): void;
}

export type OpenSocket = () => RawNetlinkSocket;

/** An error the kernel returned: the batch was refused whole, the socket is fine. */
const REFUSED = 'ERR_POLICY_ELEMENTS';
const errnoName = (errno: number): string => Object.entries(constants.errno).find(([, v]) => v === errno)?.[0] ?? 'unknown';

interface Exchange {
  readonly seqs: readonly number[];
  answer(m: { type: number; seq: number; data: Buffer }): void;
  fail(e: Error): void;
}

/** Loaded on first use: a policy component that never writes elements needs no netlink socket. */
async function ownNamespace(): Promise<OpenSocket> {
  const { RawNetlinkSocket } = await import('netlink');
  return () => new RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize: 1 << 20, sendBufferSize: 4 << 20 });
}

/**
 * `open` makes the NETLINK_NETFILTER socket (default: in this process's namespace; a test or a
 * bench opens it in another one). Writes may overlap: each batch's answers are told apart by
 * sequence number. A write or read the kernel does not answer within `timeoutMs`, or a socket
 * error, puts the socket in doubt: it is closed, what waits on it fails, and the next write opens
 * a new one.
 */
export function netlinkElements(open?: OpenSocket, o: { timeoutMs?: number } = {}): ElementWriter {
  const timeoutMs = o.timeoutMs ?? 5000;
  let sock: RawNetlinkSocket | undefined;
  let seq = Math.floor(Math.random() * 2 ** 30);
  const nextSeq = (): number => (seq = (seq % 2 ** 31) + 1);
  const waiting = new Map<number, Exchange>();

  const close = (e = new Error('nf_tables writer closed')): void => {
    const s = sock;
    sock = undefined;
    s?.close();
    for (const x of new Set(waiting.values())) x.fail(e);
  };

  const socket = async (): Promise<RawNetlinkSocket> => {
    const make = open ?? (await ownNamespace());
    if (sock) return sock;
    const s = make();
    s.on('message', (buf: Buffer) => {
      for (const m of nlmsgs(buf)) waiting.get(m.seq)?.answer(m);
    });
    s.on('error', (e: Error) => {
      if (sock === s) close(e);
    });
    s.unref();
    sock = s;
    return s;
  };

  /** Sends `msgs` as one datagram; `answer` sees each reply to one of `seqs` until it calls done. */
  const exchange = async <T>(msgs: Buffer[], seqs: readonly number[], answer: (m: { type: number; seq: number; data: Buffer }, done: (e: Error | undefined, v?: T) => void) => void): Promise<T> => {
    const s = await socket();
    return new Promise<T>((resolve, reject) => {
      let over = false;
      const done = (e: Error | undefined, v?: T): void => {
        if (over) return;
        over = true;
        clearTimeout(timer);
        for (const q of seqs) if (waiting.get(q) === x) waiting.delete(q);
        if (e) reject(e);
        else resolve(v as T);
      };
      const x: Exchange = { seqs, answer: (m) => answer(m, done), fail: done };
      const timer = setTimeout(() => close(new Error(`nf_tables: no answer within ${timeoutMs} ms`)), timeoutMs);
      for (const q of seqs) waiting.set(q, x);
      s.send(Buffer.concat(msgs), {}, (err) => {
        if (err && sock === s) close(err);
      });
    });
  };

  return {
    async write(table, changes, shapes, commands = []) {
      if (changes.length === 0 && commands.length === 0) return;
      const begin = nextSeq();
      const msgs = commands.map((c, i) => {
        const m = commandMessage(table, c, i + 1);
        return nfmsg((NFNL_SUBSYS_NFTABLES << 8) | m.type, NLM_F_REQUEST | NLM_F_ACK | m.flags, nextSeq(), NFPROTO_INET, 0, ...m.attrs);
      });
      // Encoding errors (an unknown set, a malformed key) throw here, before anything is sent.
      msgs.push(...elementMessages(table, changes, shapes, nextSeq));
      const end = nextSeq();
      const seqs = msgs.map((m) => m.readUInt32LE(8));
      const pending = new Set(seqs);
      const batch = [nfmsg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES), ...msgs, nfmsg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES)];
      await exchange<void>(batch, [begin, ...seqs, end], (m, done) => {
        if (m.type !== NLMSG_ERROR || m.data.length < 4) return;
        const errno = -m.data.readInt32LE(0);
        if (errno === 0) {
          if (pending.delete(m.seq) && pending.size === 0) done(undefined);
          return;
        }
        const where = m.seq === begin ? 'its begin' : m.seq === end ? 'its end' : `message ${seqs.indexOf(m.seq) + 1} of ${seqs.length}`;
        done(Object.assign(new Error(`nf_tables refused an element batch: errno ${errno} (${errnoName(errno)}) at ${where}`), { code: REFUSED, errno }));
      });
    },
    async generation() {
      try {
        const q = nextSeq();
        return await exchange<number | undefined>([nfmsg((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST, q, NFPROTO_UNSPEC, 0)], [q], (m, done) => {
          if (m.type === NLMSG_ERROR && m.data.length >= 4) done(new Error(`nf_tables: GETGEN refused: errno ${-m.data.readInt32LE(0)}`));
          else if ((m.type & 0xff) === NFT_MSG_NEWGEN) done(undefined, parseGeneration(m.data));
        });
      } catch {
        return undefined;
      }
    },
    close: () => close(),
  };
}
