// nf_tables transactions written straight over NETLINK_NETFILTER, no nft process: the element
// writers of policy/ (policy/setelem.ts) and proxy/ (proxy/nft/elements.ts) encode their messages,
// this sends them as one atomic batch and waits for the kernel's answer. What nft would spend
// parsing text (~0.4 s of CPU per 100,000 elements, measured) is not spent at all; the kernel's
// own work is the same.
//
// A batch is BATCH_BEGIN, the messages (each with NLM_F_ACK), BATCH_END. The kernel answers each
// message with an NLMSG_ERROR (0: done), and BEGIN or END only with an error (a failed commit is
// reported on BEGIN): the first error rejects the batch at once (the kernel applied nothing), the
// last ack resolves it.
//
// The same socket also carries plain requests of other NETLINK_NETFILTER subsystems (ctnetlink:
// policy/ctnetlink.ts): a dump (`dump`, answered by multipart messages up to NLMSG_DONE) and
// acknowledged requests sent back to back in one datagram outside any batch (`requests`: each
// gets its own answer, a failed one does not stop the others).
import { constants } from 'node:os';
import type { RawNetlinkSocket } from 'netlink/dist/raw.js';
import { nlmsg, nlmsgs, NLMSG_ERROR, NLM_F_ACK, NLM_F_REQUEST } from '../netlink/attrs.js';
import { parseGeneration } from './generation.js';

const NETLINK_NETFILTER = 12;
export const NFNL_SUBSYS_NFTABLES = 10;
const NLMSG_DONE = 3;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG_GETGEN = 16;
const NFT_MSG_NEWGEN = 15;
const NFPROTO_UNSPEC = 0;

/** NFPROTO_* per nft family word. */
export const NFPROTO: Readonly<Record<string, number>> = { inet: 1, ip: 2, ip6: 10 };

/** nlmsghdr and nfgenmsg (family, version 0, res_id in network order), then the attributes. */
export function nfmsg(type: number, flags: number, seq: number, family: number, resId: number, ...attrs: Buffer[]): Buffer {
  const nfgen = Buffer.from([family, 0, resId >> 8, resId & 0xff]);
  return nlmsg(type, flags, seq, nfgen, ...attrs);
}

/** One transaction's messages (without BEGIN/END), numbered by `seq`. */
export type BatchBuilder = (seq: () => number) => Buffer[];

export interface NfTablesBatches {
  /** One atomic transaction; rejects with the kernel's first error (then nothing was applied). */
  commit(build: BatchBuilder): Promise<void>;
  /** The namespace's ruleset generation (generation.ts's reader, on this socket); undefined when the kernel cannot be asked. */
  generation(): Promise<number | undefined>;
  /**
   * One dump request (`build` gets its sequence number; the caller sets NLM_F_DUMP): `onMessage`
   * sees every answer until NLMSG_DONE; rejects with the kernel's error (code `refusedCode`).
   */
  dump(build: (seq: number) => Buffer, onMessage: (m: { type: number; data: Buffer }) => void): Promise<void>;
  /**
   * Requests with NLM_F_ACK, sent together in one datagram (not a transaction): resolves with each
   * one's errno (0: done), in order.
   */
  requests(build: BatchBuilder): Promise<number[]>;
  close(): void;
}

export type OpenSocket = () => RawNetlinkSocket;

/** The code of an error the kernel returned (the batch was refused whole, the socket is fine), unless the caller names its own. */
export const REFUSED = 'ERR_NFTABLES_BATCH';
const errnoName = (errno: number): string => Object.entries(constants.errno).find(([, v]) => v === errno)?.[0] ?? 'unknown';

interface Exchange {
  answer(m: { type: number; seq: number; data: Buffer }): void;
  fail(e: Error): void;
}

/**
 * Opens NETLINK_NETFILTER sockets in this process's namespace. Loaded on first use: a component
 * that never talks netfilter this way needs no netlink module.
 */
export async function netfilterSocket(sizes: { recvBufferSize: number; sendBufferSize: number } = { recvBufferSize: 1 << 20, sendBufferSize: 4 << 20 }): Promise<OpenSocket> {
  const { RawNetlinkSocket } = await import('netlink/dist/raw.js');
  return () => new RawNetlinkSocket(NETLINK_NETFILTER, sizes);
}

/**
 * Adjacent views of one buffer as one view. A chunk's messages are written side by side and handed
 * out as views (proxy/nft/elements.ts), so the datagram is one copy of a few pieces; before, each
 * message was first copied out of the encoder's buffer (a `Buffer.from` of a view, ~150 ms of a
 * 50,000-Service full sync in a CPU profile) and then concatenated piece by piece.
 */
export function coalesce(parts: readonly Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const p of parts) {
    const last = out.at(-1);
    if (last && last.buffer === p.buffer && last.byteOffset + last.length === p.byteOffset) out[out.length - 1] = Buffer.from(p.buffer, last.byteOffset, last.length + p.length);
    else out.push(p);
  }
  return out;
}

/**
 * `open` makes the socket (default: in this process's namespace; a test or a bench opens it in
 * another one). Batches may overlap: each one's answers are told apart by sequence number. A batch
 * or read the kernel does not answer within `timeoutMs`, or a socket error, puts the socket in
 * doubt: it is closed, what waits on it fails, and the next batch opens a new one.
 */
export function nfTablesBatches(open?: OpenSocket, o: { timeoutMs?: number; refusedCode?: string; ackLast?: boolean } = {}): NfTablesBatches {
  const timeoutMs = o.timeoutMs ?? 5000;
  const refused = o.refusedCode ?? REFUSED;
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
    const make = open ?? (await netfilterSocket());
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
      const x: Exchange = { answer: (m) => answer(m, done), fail: done };
      const timer = setTimeout(() => close(new Error(`nf_tables: no answer within ${timeoutMs} ms`)), timeoutMs);
      for (const q of seqs) waiting.set(q, x);
      s.send(msgs.length === 1 ? msgs[0]! : Buffer.concat(coalesce(msgs)), {}, (err) => {
        if (err && sock === s) close(err);
      });
    });
  };

  return {
    async commit(build) {
      const begin = nextSeq();
      // Encoding errors (an unknown set, a malformed key) throw here, before anything is sent.
      const msgs = build(nextSeq);
      if (msgs.length === 0) return;
      const end = nextSeq();
      const seqs = msgs.map((m) => m.readUInt32LE(8));
      // ackLast: only the last message asks for an ack. The kernel reports a failing message (and
      // a failed commit, on BEGIN) whether it asked or not, and all of them before that ack, so
      // the ack still means "all applied"; one answer (one recvmsg and one callback on the
      // agent's thread) instead of one per message.
      if (o.ackLast) for (const m of msgs.slice(0, -1)) m.writeUInt16LE(m.readUInt16LE(6) & ~NLM_F_ACK, 6);
      const pending = new Set(o.ackLast ? seqs.slice(-1) : seqs);
      const batch = [nfmsg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES), ...msgs, nfmsg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES)];
      await exchange<void>(batch, [begin, ...seqs, end], (m, done) => {
        if (m.type !== NLMSG_ERROR || m.data.length < 4) return;
        const errno = -m.data.readInt32LE(0);
        if (errno === 0) {
          if (pending.delete(m.seq) && pending.size === 0) done(undefined);
          return;
        }
        const where = m.seq === begin ? 'its begin' : m.seq === end ? 'its end' : `message ${seqs.indexOf(m.seq) + 1} of ${seqs.length}`;
        done(Object.assign(new Error(`nf_tables refused a batch: errno ${errno} (${errnoName(errno)}) at ${where}`), { code: refused, errno }));
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
    async dump(build, onMessage) {
      const q = nextSeq();
      await exchange<void>([build(q)], [q], (m, done) => {
        if (m.type === NLMSG_DONE) done(undefined);
        else if (m.type === NLMSG_ERROR && m.data.length >= 4) {
          const errno = -m.data.readInt32LE(0);
          done(Object.assign(new Error(`netlink dump refused: errno ${errno} (${errnoName(errno)})`), { code: refused, errno }));
        } else onMessage(m);
      });
    },
    async requests(build) {
      const msgs = build(nextSeq);
      if (msgs.length === 0) return [];
      const seqs = msgs.map((m) => m.readUInt32LE(8));
      const index = new Map(seqs.map((q, i) => [q, i]));
      const errnos: number[] = new Array<number>(msgs.length).fill(-1);
      let left = msgs.length;
      return exchange<number[]>(msgs, seqs, (m, done) => {
        const i = index.get(m.seq);
        if (m.type !== NLMSG_ERROR || m.data.length < 4 || i === undefined || errnos[i] !== -1) return;
        errnos[i] = -m.data.readInt32LE(0);
        if (--left === 0) done(undefined, errnos);
      });
    },
    close: () => close(),
  };
}
