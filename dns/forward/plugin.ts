// CoreDNS forward: names outside the cluster go to upstream resolvers (stub domains first, by
// longest suffix). Random healthy upstream, failover to the next on error or timeout inside one
// deadline, health checks only for upstreams marked down, a cap on queries in flight, and a loop
// probe that retires an upstream which sends our own queries back to us.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { dnsMetrics } from '../metrics.js';
import type { Next, Plugin, Reply, Request } from '../plugin.js';
import { decode } from '../wire/decode.js';
import { encode } from '../wire/encode.js';
import { CLASS_IN, Rcode, Type, canonical, newMessage, rcodeName, replyTo, type Message } from '../wire/types.js';
import { Upstream } from './upstream.js';

export interface UpstreamConfig {
  /** host or host:port ([v6]:port). */
  readonly upstreams: readonly string[];
  readonly stubDomains: Readonly<Record<string, readonly string[]>>;
}

export interface ForwardOptions {
  readonly log?: Logger;
  /** Per-attempt timeout. */
  readonly timeoutMs?: number;
  /** Total time for one query across failover attempts; then SERVFAIL. */
  readonly deadlineMs?: number;
  readonly maxConcurrent?: number;
  readonly maxFails?: number;
  readonly healthIntervalMs?: number;
  /** host:port strings this server listens on; an upstream equal to one is a loop. */
  readonly self?: readonly string[];
}

export function resolvConfServers(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push(m[1]!.includes(':') ? `[${m[1]}]:53` : m[1]!);
  }
  return out;
}

const PROBE_ZONE = 'skiff-loop-probe';

export class ForwardPlugin implements Plugin {
  readonly name = 'forward';
  private pool = new Map<string, Upstream>();
  private groups: { suffix: string; upstreams: Upstream[] }[] = [];
  private defaults: Upstream[] = [];
  private inFlight = 0;
  private timer?: NodeJS.Timeout;
  private readonly nonce = randomBytes(6).toString('hex');
  private readonly timeoutMs: number;
  private readonly deadlineMs: number;
  private readonly maxConcurrent: number;
  private readonly maxFails: number;

  constructor(
    cfg: UpstreamConfig,
    private readonly o: ForwardOptions = {},
  ) {
    this.timeoutMs = o.timeoutMs ?? 1500;
    this.deadlineMs = o.deadlineMs ?? 2500;
    this.maxConcurrent = o.maxConcurrent ?? 1000;
    this.maxFails = o.maxFails ?? 2;
    this.configure(cfg);
    this.timer = setInterval(() => void this.healthCheck(), o.healthIntervalMs ?? 500);
    this.timer.unref();
  }

  /** Applies a new upstream set, keeping the health state of upstreams that stay. */
  configure(cfg: UpstreamConfig): void {
    const pool = new Map<string, Upstream>();
    const get = (spec: string): Upstream => {
      const fresh = new Upstream(spec);
      const u = pool.get(fresh.label) ?? this.pool.get(fresh.label) ?? fresh;
      if (this.o.self?.includes(u.label) && !u.looping) {
        u.looping = true;
        this.o.log?.error({ upstream: u.label }, 'dns: upstream is this server itself, ignoring it (forwarding loop)');
      }
      pool.set(u.label, u);
      return u;
    };
    this.defaults = cfg.upstreams.map(get);
    this.groups = Object.entries(cfg.stubDomains)
      .map(([d, ups]) => ({ suffix: canonical(d), upstreams: ups.map(get) }))
      .sort((a, b) => b.suffix.length - a.suffix.length);
    for (const [label, u] of this.pool) if (!pool.has(label)) u.close();
    this.pool = pool;
  }

  upstreams(): Upstream[] {
    return [...this.pool.values()];
  }

  private groupFor(qname: string): Upstream[] {
    for (const g of this.groups) if (qname === g.suffix || qname.endsWith(`.${g.suffix}`)) return g.upstreams;
    return this.defaults;
  }

  serve(req: Request, _next: Next): Promise<Reply> | Reply {
    req.answeredBy = this.name;
    if (req.qname.endsWith(`.${PROBE_ZONE}`)) return this.probeSeen(req);
    const ups = this.groupFor(req.qname).filter((u) => u.usable);
    if (ups.length === 0) return replyTo(req.msg, Rcode.SERVFAIL);
    if (this.inFlight >= this.maxConcurrent) return replyTo(req.msg, Rcode.REFUSED);
    return this.exchange(req, ups);
  }

  private async exchange(req: Request, ups: Upstream[]): Promise<Reply> {
    this.inFlight++;
    try {
      const query = encode(
        newMessage({
          id: 0,
          rd: true,
          cd: req.msg.cd,
          question: [{ name: req.q.name, type: req.q.type, class: req.q.class }],
          edns: { udpSize: 1232, version: 0, dnssecOk: req.msg.edns?.dnssecOk ?? false, options: [] },
        }),
      );
      const order = ordered(ups);
      const deadline = performance.now() + this.deadlineMs;
      for (const u of order) {
        const left = deadline - performance.now();
        if (left <= 0) break;
        try {
          const m = await this.ask(u, query, req, Math.min(this.timeoutMs, left));
          u.fails = 0;
          return m;
        } catch (e) {
          this.failed(u, e as Error);
        }
      }
      return replyTo(req.msg, Rcode.SERVFAIL);
    } finally {
      this.inFlight--;
    }
  }

  private async ask(u: Upstream, query: Buffer, req: Request, timeoutMs: number): Promise<Reply> {
    dnsMetrics.forwardRequests.inc([u.label]);
    let m = decode(await u.udp(query, timeoutMs));
    if (m.tc) m = decode(await u.tcp(query, timeoutMs));
    const q = m.question[0];
    if (!m.qr || !q || canonical(q.name) !== req.qname || q.type !== req.q.type) throw new Error('upstream answered another question');
    dnsMetrics.forwardResponses.inc([u.label, rcodeName(m.rcode)]);
    const r: Message = replyTo(req.msg, m.rcode);
    r.answer = m.answer;
    r.authority = m.authority;
    r.additional = m.additional;
    r.ad = m.ad;
    return r;
  }

  private failed(u: Upstream, e: Error): void {
    u.fails++;
    this.o.log?.debug({ upstream: u.label, err: e.message }, 'dns: upstream failed');
    if (u.fails >= this.maxFails && !u.down) {
      u.down = true;
      this.o.log?.warn({ upstream: u.label }, 'dns: upstream marked down');
    }
  }

  /** Upstreams marked down get a ". IN NS" probe per interval until one answers. */
  private async healthCheck(): Promise<void> {
    const down = [...this.pool.values()].filter((u) => u.down && u.usable);
    if (down.length === 0) return;
    if (down.length === [...this.pool.values()].filter((u) => u.usable).length) dnsMetrics.forwardHealthyDown.inc([]);
    const q = encode(newMessage({ id: 0, question: [{ name: '', type: Type.NS, class: CLASS_IN }] }));
    await Promise.all(
      down.map(async (u) => {
        try {
          await u.udp(q, this.timeoutMs);
          u.down = false;
          u.fails = 0;
          this.o.log?.info({ upstream: u.label }, 'dns: upstream healthy again');
        } catch {
          dnsMetrics.forwardHealthFailures.inc([u.label]);
        }
      }),
    );
  }

  /**
   * Sends each upstream a query for a name only we would generate; if it ever reaches this server
   * the upstream forwards back to us (CoreDNS loop plugin), and it is retired.
   */
  async probeLoops(): Promise<void> {
    const ups = [...this.pool.values()].filter((u) => u.usable);
    await Promise.all(
      ups.map(async (u, i) => {
        this.probes.set(String(i), u);
        const name = `${this.nonce}.${i}.${PROBE_ZONE}`;
        const q = encode(newMessage({ id: 0, rd: true, question: [{ name, type: Type.HINFO, class: CLASS_IN }] }));
        try {
          await u.udp(q, this.timeoutMs);
        } catch {
          /* an unreachable upstream is the health checker's business */
        }
      }),
    );
  }

  private readonly probes = new Map<string, Upstream>();

  private probeSeen(req: Request): Reply {
    const [nonce, i] = req.qname.split('.');
    const u = nonce === this.nonce ? this.probes.get(i ?? '') : undefined;
    if (u && !u.looping) {
      u.looping = true;
      this.o.log?.error({ upstream: u.label }, 'dns: forwarding loop detected (our probe came back), no longer using this upstream');
    }
    return replyTo(req.msg, Rcode.NXDOMAIN);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const u of this.pool.values()) u.close();
    this.pool.clear();
  }
}

/** Healthy upstreams in random order, then the ones marked down (still worth a try when all are). */
function ordered(ups: Upstream[]): Upstream[] {
  const up = ups.filter((u) => !u.down);
  const down = ups.filter((u) => u.down);
  for (let i = up.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [up[i], up[j]] = [up[j]!, up[i]!];
  }
  return [...up, ...down];
}
