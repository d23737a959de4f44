// Bytes in, bytes out: the protocol hygiene every query passes before and after the plugin chain.
// Malformed input is answered FORMERR when its header can be trusted and dropped otherwise; nothing
// a client sends can throw out of handle().
import type { Logger } from 'pino';
import { dnsMetrics, onCollect, typeLabel } from '../metrics.js';
import { isPromise, makeRequest, type Next, type Proto, type Reply, type Request } from '../plugin.js';
import { WireError, decode, peekHeader } from '../wire/decode.js';
import { FastPath, ZONE_WIDE, type FastEntry, type FastInit } from './fastpath.js';
import { encode } from '../wire/encode.js';
import { CLASS_IN, Rcode, Type, newMessage, rcodeName, replyTo, typeName, type Message, type SOAData } from '../wire/types.js';

export interface HandlerOptions {
  readonly chain: Next;
  /** coredns "server" label, e.g. dns://:53 */
  readonly server: string;
  /** Source ACL; true when the client may query. */
  readonly allowed: (ip: string) => boolean;
  readonly log?: Logger;
  /**
   * Enables the encoded-answer fast path (see fastpath.ts): a change of this number empties it.
   * Zone changes reach it Service by Service through invalidate().
   */
  readonly generation?: () => number;
  /** Clients whose answers must pass the chain every time (answer-feed.ts), never the fast path. */
  readonly bypassFast?: (ip: string) => boolean;
}

const BADVERS = 16;
/** Our advertised EDNS buffer: the DNS flag day 2020 value, safe from fragmentation. */
export const UDP_SIZE = 1232;
/** The largest answer the fast path keeps (see remember()). */
export const MAX_CACHED_REPLY = 512;
const ZONE = '.';
const VIEW = '';

export class QueryHandler {
  private readonly fast?: FastPath;
  private readonly keys: { udp: string[]; tcp: string[] };
  private readonly unhook?: () => void;
  private fastHits = 0;
  private readonly typeKeys = new Map<string, { durationKey: string; requestKeys: readonly string[] }>();
  private fastDuration = 0.00001;

  constructor(private readonly o: HandlerOptions) {
    if (o.generation) {
      const fast = new FastPath(o.generation, (e) => this.fold(e));
      this.fast = fast;
      this.unhook = onCollect(() => fast.foldAll());
    }
    const s = o.server;
    const m = dnsMetrics;
    // Label keys of the fast path's series, per protocol: [responses NOERROR/kubernetes, request size, response size].
    const perProto = (p: Proto): string[] => [m.responses.key([s, ZONE, VIEW, 'NOERROR', 'kubernetes']), m.requestSize.key([s, ZONE, VIEW, p]), m.responseSize.key([s, ZONE, VIEW, p])];
    this.keys = { udp: perProto('udp'), tcp: perProto('tcp') };
  }

  /** Forgets encoded answers (after a settings change that alters them, such as the TTL). */
  clearFast(): void {
    this.fast?.clear();
  }

  /** The zone changed for these Services ("namespace/name"): their encoded answers go. */
  invalidate(services: Iterable<string>): void {
    this.fast?.invalidate(services);
  }

  handle(buf: Buffer, src: string, proto: Proto): Buffer | undefined | Promise<Buffer | undefined> {
    const fast = this.fast;
    const fh = fast === undefined ? -1 : fast.hash(buf);
    if (fh >= 0) {
      const e = fast!.get(buf, fh);
      if (e !== undefined && this.o.allowed(src) && !this.o.bypassFast?.(src)) return this.fastReply(e, buf, src, proto);
    }
    const start = performance.now();
    const hdr = peekHeader(buf);
    if (!hdr || hdr.qr) return undefined; // not a query: answering could feed a reflection loop
    let msg: Message;
    try {
      msg = decode(buf);
    } catch (e) {
      if (!(e instanceof WireError)) this.o.log?.warn({ err: e }, 'dns: unexpected decode failure');
      return this.finishRaw(newMessage({ id: hdr.id, qr: true, opcode: hdr.opcode, rcode: Rcode.FORMERR }), proto, start);
    }
    if (msg.opcode !== 0) return this.finishRaw(replyTo(msg, Rcode.NOTIMP), proto, start);
    if (msg.question.length !== 1) return this.finishRaw(newMessage({ id: msg.id, qr: true, opcode: msg.opcode, rcode: Rcode.FORMERR }), proto, start);
    const req = makeRequest(msg, src, proto);
    dnsMetrics.requests.inc([this.o.server, ZONE, VIEW, proto, String(req.family), typeLabel(typeName(req.q.type))]);
    if (msg.edns && msg.edns.version > 0) return this.finish(req, replyTo(msg, BADVERS), start);
    if (!this.o.allowed(src)) return this.finish(req, replyTo(msg, Rcode.REFUSED), start);
    const t = req.q.type;
    if (req.q.class !== CLASS_IN || t === Type.AXFR || t === Type.IXFR) return this.finish(req, replyTo(msg, Rcode.REFUSED), start);
    if (t === Type.ANY) return this.finish(req, this.minimalAny(msg), start);
    let r: Reply | Promise<Reply>;
    try {
      r = this.o.chain(req);
    } catch (e) {
      this.o.log?.error({ err: e, qname: req.qname }, 'dns: plugin failed');
      return this.finish(req, replyTo(msg, Rcode.SERVFAIL), start);
    }
    if (!isPromise(r)) return this.finish(req, r, start, buf, fh);
    return r.then(
      (reply) => this.finish(req, reply, start, buf, fh),
      (e: unknown) => {
        this.o.log?.error({ err: e, qname: req.qname }, 'dns: plugin failed');
        return this.finish(req, replyTo(msg, Rcode.SERVFAIL), start);
      },
    );
  }

  /**
   * The fast path alone, for the query at `buf[o .. o + n)`: writes a cached answer into `out` at
   * `at` and returns its length, or -1 (not cached, or not allowed) for handle() to take it. The
   * batched UDP path calls this first, so a cached answer costs no object at all: no view of the
   * query, no reply Buffer (garbage per query is what made the serving thread's scavenges).
   * `out` must have MAX_CACHED_REPLY bytes free at `at`.
   */
  answerCached(buf: Uint8Array, o: number, n: number, src: string, proto: Proto, out: Buffer, at: number): number {
    const fast = this.fast;
    if (fast === undefined) return -1;
    const fh = fast.hashAt(buf, o, n);
    if (fh < 0) return -1;
    const e = fast.getAt(buf, o, n, fh);
    if (e === undefined || !this.o.allowed(src)) return -1;
    this.count(e, src, proto);
    if ((++this.fastHits & 31) !== 0) return fast.patchInto(e, buf, o, out, at);
    const start = performance.now();
    const len = fast.patchInto(e, buf, o, out, at);
    this.fastDuration = (performance.now() - start) / 1000;
    return len;
  }

  /** RFC 8482: one synthesized HINFO instead of everything we know about the name. */
  private minimalAny(msg: Message): Message {
    const m = replyTo(msg);
    m.answer = [{ name: msg.question[0]!.name, type: Type.HINFO, class: CLASS_IN, ttl: 8482, data: { cpu: 'RFC8482', os: '' } }];
    return m;
  }

  private maxSize(req: Request): number {
    if (req.proto === 'tcp') return 65535;
    return req.msg.edns ? Math.min(Math.max(512, req.msg.edns.udpSize), 4096) : 512;
  }

  private fastReply(e: FastEntry, buf: Buffer, src: string, proto: Proto): Buffer {
    this.count(e, src, proto);
    if ((++this.fastHits & 31) !== 0) return this.fast!.patch(e, buf);
    const start = performance.now();
    const out = this.fast!.patch(e, buf);
    this.fastDuration = (performance.now() - start) / 1000;
    return out;
  }

  /** Metrics are counted on the entry and folded in on read (fold()); the duration is sampled. */
  private count(e: FastEntry, src: string, proto: Proto): void {
    e.counts[(proto === 'tcp' ? 2 : 0) + (src.includes(':') ? 1 : 0)]!++;
  }

  private fold = (e: FastEntry): void => {
    const m = dnsMetrics;
    for (let i = 0; i < 4; i++) {
      const n = e.counts[i]!;
      if (n === 0) continue;
      e.counts[i] = 0;
      const k = i < 2 ? this.keys.udp : this.keys.tcp;
      m.requests.incKey(e.requestKeys[i]!, n);
      m.responses.incKey(e.responseKey ?? k[0]!, n);
      m.requestSize.observeKey(k[1]!, i < 2 ? e.udpSize : 65535, n);
      m.responseSize.observeKey(k[2]!, e.bytes.length, n);
      m.duration.observeKey(e.durationKey, this.fastDuration, n);
      if (e.hitKey !== undefined) m.cacheHits.incKey(e.hitKey, n);
    }
  };

  /** Stops folding fast-path counts into the metrics. */
  close(): void {
    this.fast?.foldAll();
    this.unhook?.();
  }

  /** `query` and its fast-path hash `fh` (-1: does not qualify) let the reply be remembered. */
  private finish(req: Request, reply: Reply, start: number, query?: Buffer, fh = -1): Buffer | undefined {
    // Shallow copy: cached replies are shared and must not be mutated.
    const out: Message = { ...reply, id: req.msg.id, qr: true, rd: req.msg.rd, cd: req.msg.cd, question: [req.q] };
    if (req.msg.edns) out.edns = { udpSize: UDP_SIZE, version: 0, dnssecOk: req.msg.edns.dnssecOk, options: [] };
    else delete out.edns;
    let bytes: Buffer;
    const ttlAt: number[] = [];
    try {
      bytes = encode(out, this.maxSize(req), ttlAt);
    } catch (e) {
      this.o.log?.error({ err: e, qname: req.qname }, 'dns: cannot encode reply');
      bytes = encode({ ...replyTo(req.msg, Rcode.SERVFAIL), id: req.msg.id, question: [req.q] }, 512);
    }
    if (fh >= 0 && query !== undefined && !req.uncacheable && (bytes[2]! & 0x02) === 0 && bytes.length <= MAX_CACHED_REPLY) this.remember(query, fh, req, out, bytes, ttlAt);
    const s = this.o.server;
    dnsMetrics.responses.inc([s, ZONE, VIEW, rcodeName(out.rcode), req.answeredBy]);
    dnsMetrics.duration.observe([s, ZONE, VIEW, typeLabel(typeName(req.q.type))], (performance.now() - start) / 1000);
    dnsMetrics.requestSize.observe([s, ZONE, VIEW, req.proto], req.proto === 'tcp' ? 65535 : this.maxSize(req));
    dnsMetrics.responseSize.observe([s, ZONE, VIEW, req.proto], bytes.length);
    return bytes;
  }

  /** Stores a reply in the fast path when it is the same for every client (see fastpath.ts). */
  private remember(query: Buffer, fh: number, req: Request, out: Message, bytes: Buffer, ttlAt: number[]): void {
    const fast = this.fast!;
    const kube = req.answeredBy === 'kubernetes';
    const forwarded = req.answeredBy === 'cache' || req.answeredBy === 'forward';
    let entry: Omit<FastInit, 'durationKey' | 'requestKeys' | 'udpSize'>;
    if (kube) {
      if (out.rcode !== 0 || out.answer.length !== 1) return;
      entry = { bytes, tag: req.dependsOn ?? ZONE_WIDE };
    } else if (forwarded) {
      if (out.rcode !== Rcode.NOERROR && out.rcode !== Rcode.NXDOMAIN) return;
      if (out.answer.filter((r) => r.type === Type.A || r.type === Type.AAAA).length > 1) return;
      const rrs = [...out.answer, ...out.authority, ...out.additional];
      if (rrs.length !== ttlAt.length || rrs.length === 0) return;
      let ttl = 3600;
      for (const r of [...out.answer, ...out.authority]) ttl = Math.min(ttl, r.ttl, r.type === Type.SOA ? (r.data as SOAData).minimum : ttl);
      if (ttl < 10) return;
      const now = fast.now();
      entry = {
        bytes,
        ttlAt,
        ttls: rrs.map((r) => r.ttl),
        stored: now,
        until: now + ttl * 900,
        hitKey: dnsMetrics.cacheHits.key([this.o.server, out.rcode === 0 && out.answer.length > 0 ? 'success' : 'denial', '.', '']),
        // A reverse name the zone does not own today may be a headless endpoint's tomorrow.
        ...(req.qname.endsWith('.arpa') ? { tag: ZONE_WIDE } : {}),
        responseKey: dnsMetrics.responses.key([this.o.server, ZONE, VIEW, rcodeName(out.rcode), 'cache']),
      };
    } else return;
    fast.set(query, fh, {
      ...entry,
      udpSize: req.msg.edns ? Math.min(Math.max(512, req.msg.edns.udpSize), 4096) : 512,
      ...this.metricKeys(typeLabel(typeName(req.q.type))),
    });
  }

  /** One set of metric keys per query type, shared by every entry (50,000 entries held ~0.6 KB of copies each). */
  private metricKeys(t: string): { durationKey: string; requestKeys: readonly string[] } {
    let k = this.typeKeys.get(t);
    if (!k) {
      const s = this.o.server;
      k = { durationKey: dnsMetrics.duration.key([s, ZONE, VIEW, t]), requestKeys: (['udp', 'tcp'] as const).flatMap((p) => ['1', '2'].map((f) => dnsMetrics.requests.key([s, ZONE, VIEW, p, f, t]))) };
      this.typeKeys.set(t, k);
    }
    return k;
  }

  private finishRaw(m: Message, proto: Proto, start: number): Buffer {
    const bytes = encode(m, 512);
    dnsMetrics.responses.inc([this.o.server, ZONE, VIEW, rcodeName(m.rcode), '']);
    dnsMetrics.duration.observe([this.o.server, ZONE, VIEW, 'other'], (performance.now() - start) / 1000);
    dnsMetrics.responseSize.observe([this.o.server, ZONE, VIEW, proto], bytes.length);
    return bytes;
  }
}
