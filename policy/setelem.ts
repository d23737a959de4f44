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
// timeouts in milliseconds. Additions carry NLM_F_CREATE without EXCL, so an existing element is no
// error and takes the new timeout, as `nft add` does. common/nft/batch.ts sends each write as one
// atomic batch.
import { bigintToBytes, familyOf, ipToBigint, type Family } from '../common/ipaddr.js';
import { parseCidr } from './ipnet.js';
import { be32, be64, cstr, nest, nla, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST } from '../common/netlink/attrs.js';
import { NFNL_SUBSYS_NFTABLES, NFPROTO, nfmsg, nfTablesBatches, type OpenSocket } from '../common/nft/batch.js';
import {
  NFTA_DATA_VALUE, NFTA_DATA_VERDICT, NFTA_LIST_ELEM, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_KEY_END,
  NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_TIMEOUT, NFTA_VERDICT_CHAIN, NFTA_VERDICT_CODE,
  NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM, NFT_SET_ELEM_INTERVAL_END, VERDICT_CODES, L4_PROTOCOLS,
} from '../common/nft/nf-tables-h.js';
import { commandMessage, type Command } from './nlcommands.js';

const NFPROTO_INET = NFPROTO.inet!;
const NFT_JUMP = VERDICT_CODES.jump!;
/** Elements per message: keeps each message far below the socket's buffer. */
const PER_MESSAGE = 500;


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
  if (shape.family === 4) {
    const n = v4(ip);
    if (n !== undefined) return u32(n);
  }
  if (familyOf(ip) !== shape.family) throw new Error(`cannot encode element ${key}`);
  return bigintToBytes(ipToBigint(ip), shape.family);
}

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * A dotted quad as a number, without the bigint round trip (a pod add encodes hundreds of
 * addresses); undefined for anything else (the general path decides).
 */
function v4(ip: string): number | undefined {
  const m = V4.exec(ip);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255 || (m[i]!.length > 1 && m[i]![0] === '0')) return undefined;
    n = n * 256 + o;
  }
  return n;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** An IPv4 interval element (an address or a CIDR) as start and end, or undefined (general path). */
function v4Interval(key: string): EncodedKey[] | undefined {
  const slash = key.indexOf('/');
  const lo = v4(slash < 0 ? key : key.slice(0, slash));
  const prefix = slash < 0 ? 32 : /^\d{1,2}$/.test(key.slice(slash + 1)) ? Number(key.slice(slash + 1)) : NaN;
  if (lo === undefined || !(prefix <= 32)) return undefined;
  const size = 2 ** (32 - prefix);
  const start = lo - (lo % size);
  const next = start + size;
  // A range reaching the last address has no end element (nft does the same).
  return next === 2 ** 32 ? [{ key: u32(start), end: false }] : [{ key: u32(start), end: false }, { key: u32(next), end: true }];
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
    const p = L4_PROTOCOLS[proto];
    const [from, to = from] = (range ?? '').split('-').map((x) => (x === '' ? NaN : Number(x)));
    if (p === undefined || !validPort(from!) || !validPort(to!) || to! < from!) throw new Error(`cannot encode element ${key}`);
    return [{ key: protoPort(p, from!), end: false, keyEnd: protoPort(p, to!) }];
  }
  if (shape.concat) {
    const [ip, proto, port] = key.split(' . ') as [string, string, string];
    const p = L4_PROTOCOLS[proto];
    if (p === undefined || !(Number(port) >= 0 && Number(port) <= 65535)) throw new Error(`cannot encode element ${key}`);
    return [{ key: Buffer.concat([addrKey(ip, shape, key), protoPort(p, Number(port))]), end: false }];
  }
  if (!shape.interval) return [{ key: addrKey(key, shape, key), end: false }];
  const fast = shape.family === 4 ? v4Interval(key) : undefined;
  if (fast) return fast;
  const c = parseCidr(key.includes('/') ? key : `${key}/${shape.family === 4 ? 32 : 128}`);
  if (!c || c.family !== shape.family) throw new Error(`cannot encode element ${key}`);
  const bits = shape.family === 4 ? 32n : 128n;
  const next = c.hi + 1n;
  const start = { key: bigintToBytes(c.lo, shape.family), end: false };
  // A range reaching the last address has no end element (nft does the same).
  return next >> bits ? [start] : [start, { key: bigintToBytes(next, shape.family), end: true }];
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

/** NFTA_SET_ELEM_LIST_SET_ID: a set created earlier in the same batch, by its batch-local id. */
const NFTA_SET_ELEM_LIST_SET_ID = 4;

/**
 * The batch's messages (without BEGIN/END), in the order given: consecutive changes with the same
 * verb and set share a message. `shapes` gives each set's shape; seq() numbers the messages.
 * `newSets`: sets the same batch creates, by name -> batch-local id. Their elements name the set
 * by that id alone: the kernel then finds it among the batch's new sets, instead of walking the
 * table's list of sets by name (thousands at the kube-burner shape: AGENT.md, "Cost of a sync").
 */
export function elementMessages(table: string, changes: readonly ElementChange[], shapes: (set: string) => KeyShape | undefined, seq: () => number, newSets?: ReadonlyMap<string, number>): Buffer[] {
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
    const id = newSets?.get(set);
    const which = id === undefined ? nla(NFTA_SET_ELEM_LIST_SET, cstr(set)) : nla(NFTA_SET_ELEM_LIST_SET_ID, be32(id));
    out.push(nfmsg(type, flags, seq(), NFPROTO_INET, 0, nla(NFTA_SET_ELEM_LIST_TABLE, cstr(table)), which, nest(NFTA_SET_ELEM_LIST_ELEMENTS, ...elems)));
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
  /** The messages `write` would send, built and dropped: warms the encoders before the first pod ADD needs them. */
  encode?(table: string, changes: readonly ElementChange[], shapes: (set: string) => KeyShape | undefined, commands?: readonly Command[]): Buffer[];
  /** The namespace's ruleset generation (common/nft/generation.ts's reader, on this socket); undefined when the kernel cannot be asked. */
  generation(): Promise<number | undefined>;
  close(): void;
}

export type { OpenSocket };

/**
 * The writer on one NETLINK_NETFILTER socket (common/nft/batch.ts: `open` makes it, default in
 * this process's namespace; answers told apart by sequence number, a socket in doubt replaced).
 * A batch the kernel refuses rejects with code ERR_POLICY_ELEMENTS and its errno.
 */
export function netlinkElements(open?: OpenSocket, o: { timeoutMs?: number } = {}): ElementWriter {
  const batches = nfTablesBatches(open, { ...o, refusedCode: 'ERR_POLICY_ELEMENTS', ackLast: true });
  const messages = (table: string, changes: readonly ElementChange[], shapes: (set: string) => KeyShape | undefined, commands: readonly Command[], seq: () => number): Buffer[] => {
    const msgs = commands.map((c, i) => {
      const m = commandMessage(table, c, i + 1);
      return nfmsg((NFNL_SUBSYS_NFTABLES << 8) | m.type, NLM_F_REQUEST | NLM_F_ACK | m.flags, seq(), NFPROTO_INET, 0, ...m.attrs);
    });
    // Encoding errors (an unknown set, a malformed key) throw here, before anything is sent.
    const newSets = new Map<string, number>();
    commands.forEach((c, i) => c.kind === 'set' && newSets.set(c.name, i + 1));
    msgs.push(...elementMessages(table, changes, shapes, seq, newSets));
    return msgs;
  };
  return {
    async write(table, changes, shapes, commands = []) {
      if (changes.length === 0 && commands.length === 0) return;
      await batches.commit((seq) => messages(table, changes, shapes, commands, seq));
    },
    encode(table, changes, shapes, commands = []) {
      let n = 0;
      return messages(table, changes, shapes, commands, () => ++n);
    },
    generation: () => batches.generation(),
    close: () => batches.close(),
  };
}
