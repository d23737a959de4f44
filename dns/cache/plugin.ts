// CoreDNS cache in front of forward: positive answers live for their smallest TTL (capped), negative
// ones for the SOA minimum (RFC 2308), entries are bounded with least-recently-used eviction, hot
// entries are refreshed before they expire (prefetch), and with serve-stale an expired entry answers
// when the upstream cannot (RFC 8767). Time comes from an injected clock so tests never sleep.
import { dnsMetrics } from '../metrics.js';
import { isPromise, type Next, type Plugin, type Reply, type Request } from '../plugin.js';
import { Rcode, Type, replyTo, type RR, type SOAData } from '../wire/types.js';

export interface CacheOptions {
  readonly capacity: () => number;
  readonly prefetch: () => boolean;
  readonly serveStale: () => boolean;
  readonly now?: () => number;
  readonly maxTtl?: number;
  readonly maxNegativeTtl?: number;
  /** TTL of a negative answer without SOA. */
  readonly defaultNegativeTtl?: number;
  /** Hits within an entry's life before it is worth prefetching. */
  readonly prefetchHits?: number;
  /** Prefetch when less than this fraction of the original TTL is left. */
  readonly prefetchPercent?: number;
  /** How long past expiry an entry may still be served stale (seconds). */
  readonly staleMaxAge?: number;
  /** TTL on stale answers (RFC 8767 suggests 30). */
  readonly staleTtl?: number;
  /**
   * RFC 8767's client response timer: with a stale entry at hand, answer from it when the upstream
   * has not answered within this many ms (the refresh goes on and updates the cache). Default 1000.
   */
  readonly staleAnswerMs?: number;
  readonly server?: string;
}

interface Entry {
  readonly rcode: number;
  readonly answer: readonly RR[];
  readonly authority: readonly RR[];
  readonly additional: readonly RR[];
  readonly ad: boolean;
  readonly stored: number;
  readonly ttl: number;
  readonly negative: boolean;
  hits: number;
  prefetching: boolean;
}

const ZONES = '.';

export class CachePlugin implements Plugin {
  readonly name = 'cache';
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly server: string;
  private counts = { success: 0, denial: 0 };

  constructor(private readonly o: CacheOptions) {
    this.now = o.now ?? Date.now;
    this.server = o.server ?? 'dns://:53';
  }

  get size(): number {
    return this.entries.size;
  }

  private key(req: Request): string {
    return `${req.qname}\u0000${req.q.type}\u0000${req.msg.edns?.dnssecOk ? 1 : 0}${req.msg.cd ? 1 : 0}`;
  }

  serve(req: Request, next: Next): Reply | Promise<Reply> {
    const key = this.key(req);
    const e = this.entries.get(key);
    const now = this.now();
    if (e) {
      const age = Math.floor((now - e.stored) / 1000);
      if (age < e.ttl) {
        e.hits++;
        // Refresh LRU position.
        this.entries.delete(key);
        this.entries.set(key, e);
        dnsMetrics.cacheHits.inc([this.server, e.negative ? 'denial' : 'success', ZONES, '']);
        if (this.o.prefetch() && !e.prefetching && e.hits >= (this.o.prefetchHits ?? 2) && e.ttl - age <= Math.max(1, e.ttl * (this.o.prefetchPercent ?? 0.1))) {
          this.prefetch(key, e, req, next);
        }
        req.answeredBy = this.name;
        return this.reply(req, e, age, undefined);
      }
    }
    dnsMetrics.cacheMisses.inc([this.server, ZONES, '']);
    const r = next(req);
    const stale = e && this.o.serveStale() && now - e.stored <= (e.ttl + (this.o.staleMaxAge ?? 3600)) * 1000 ? e : undefined;
    if (!isPromise(r)) return this.after(req, key, r, stale);
    if (!stale) return r.then((m) => this.after(req, key, m, undefined), (err: unknown) => this.failed(req, undefined, err));
    // A dead upstream makes the forward wait for its deadline; a client with a short timeout
    // would give up before the stale answer came, so the stale answer does not wait that long.
    // Whichever comes second only refreshes the cache (a late upstream answer) or is dropped.
    return new Promise<Reply>((resolve) => {
      let answered = false;
      const timer = setTimeout(() => {
        answered = true;
        resolve(this.serveStale(req, stale));
      }, this.o.staleAnswerMs ?? 1000);
      const settle = (m: Reply | undefined): void => {
        clearTimeout(timer);
        if (!answered) return resolve(m ? this.after(req, key, m, stale) : this.serveStale(req, stale));
        if (m && m.rcode !== Rcode.SERVFAIL && m.rcode !== Rcode.REFUSED) this.store(key, m);
      };
      r.then(settle, () => settle(undefined));
    });
  }

  private failed(req: Request, stale: Entry | undefined, err: unknown): Reply {
    if (stale) return this.serveStale(req, stale);
    throw err;
  }

  private serveStale(req: Request, e: Entry): Reply {
    dnsMetrics.cacheStale.inc([this.server, ZONES, '']);
    req.answeredBy = this.name;
    req.uncacheable = true;
    return this.reply(req, e, 0, this.o.staleTtl ?? 30);
  }

  private after(req: Request, key: string, m: Reply, stale: Entry | undefined): Reply {
    if (m.rcode === Rcode.SERVFAIL || m.rcode === Rcode.REFUSED) {
      if (stale) return this.serveStale(req, stale);
      return m;
    }
    this.store(key, m);
    return m;
  }

  private prefetch(key: string, e: Entry, req: Request, next: Next): void {
    e.prefetching = true;
    dnsMetrics.cachePrefetch.inc([this.server, ZONES, '']);
    const done = (m: Reply): void => {
      e.prefetching = false;
      if (m.rcode !== Rcode.SERVFAIL && m.rcode !== Rcode.REFUSED) this.store(key, m);
    };
    try {
      const r = next({ ...req, answeredBy: '' });
      if (isPromise(r)) r.then(done, () => (e.prefetching = false));
      else done(r);
    } catch {
      e.prefetching = false;
    }
  }

  /** TTL for storing a reply, or 0 when it must not be cached. */
  ttlOf(m: Reply): { ttl: number; negative: boolean } {
    const negative = m.rcode === Rcode.NXDOMAIN || (m.rcode === Rcode.NOERROR && m.answer.length === 0);
    if (m.rcode !== Rcode.NOERROR && m.rcode !== Rcode.NXDOMAIN) return { ttl: 0, negative };
    if (m.tc) return { ttl: 0, negative };
    if (negative) {
      const soa = m.authority.find((r) => r.type === Type.SOA);
      if (!soa) return { ttl: this.o.defaultNegativeTtl ?? 5, negative };
      return { ttl: Math.min(soa.ttl, (soa.data as SOAData).minimum, this.o.maxNegativeTtl ?? 1800), negative };
    }
    let ttl = this.o.maxTtl ?? 3600;
    for (const r of m.answer) ttl = Math.min(ttl, r.ttl);
    for (const r of m.authority) ttl = Math.min(ttl, r.ttl);
    return { ttl, negative };
  }

  private store(key: string, m: Reply): void {
    const { ttl, negative } = this.ttlOf(m);
    const cap = this.o.capacity();
    if (ttl <= 0 || cap <= 0) return;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.count(old, -1);
    }
    while (this.entries.size >= cap) {
      const [k, victim] = this.entries.entries().next().value as [string, Entry];
      this.entries.delete(k);
      this.count(victim, -1);
      dnsMetrics.cacheEvictions.inc([this.server, victim.negative ? 'denial' : 'success', ZONES, '']);
    }
    const e: Entry = {
      rcode: m.rcode,
      answer: m.answer,
      authority: m.authority,
      additional: m.additional,
      ad: m.ad,
      stored: this.now(),
      ttl,
      negative,
      hits: 0,
      prefetching: false,
    };
    this.entries.set(key, e);
    this.count(e, 1);
  }

  private count(e: Entry, d: number): void {
    if (e.negative) this.counts.denial += d;
    else this.counts.success += d;
    dnsMetrics.cacheEntries.set([this.server, 'success', ZONES, ''], this.counts.success);
    dnsMetrics.cacheEntries.set([this.server, 'denial', ZONES, ''], this.counts.denial);
  }

  private reply(req: Request, e: Entry, age: number, fixedTtl: number | undefined): Reply {
    const m = replyTo(req.msg, e.rcode);
    const adj = (rrs: readonly RR[]): RR[] => rrs.map((r) => ({ ...r, ttl: fixedTtl ?? Math.max(0, r.ttl - age) }));
    m.answer = adj(e.answer);
    m.authority = adj(e.authority);
    m.additional = adj(e.additional);
    m.ad = e.ad;
    return m;
  }

  clear(): void {
    this.entries.clear();
    this.counts = { success: 0, denial: 0 };
    this.count({ negative: false } as Entry, 0);
  }
}
