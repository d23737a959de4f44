// Answers that someone must see before the client does. FQDN egress (admin policy `domainNames`)
// allows a pod to reach the addresses its own lookups returned; since this server gives the pod
// those answers, the addresses can be in force before the reply leaves: no packet snooping and no
// race with the pod's first connect. DNS knows nothing of policy: the agent wires in a table
// ("answers to this client for names like these feed these keys") and an `add` that resolves once
// the addresses are in force. A client not in the table costs one Map lookup.
//
// The plugin sits behind autopath, so a pod's search-path lookup (example.org.<ns>.svc.<zone>,
// answered by autopath with a CNAME to example.org) is matched on the name autopath resolved.
// Only the question's name is matched, never a CNAME target: an upstream answering for
// evil.example could otherwise put "allowed.example A <any address>" in its own reply. The
// addresses taken are those the question's name leads to through the reply's CNAME chain
// (NPEP-133: one response with the whole chain is enough; no chasing of our own).
import type { Logger } from 'pino';
import { dnsMetrics } from './metrics.js';
import { isPromise, type Next, type Plugin, type Reply, type Request } from './plugin.js';
import { Rcode, Type, canonical } from './wire/types.js';

export interface FeedSet {
  readonly family: 4 | 6;
  /** Exact names, or "*." + a suffix matching one or more whole labels in front of it. */
  readonly patterns: readonly string[];
}

/** Published by whoever wants the answers (policy), serialisable for the DNS threads. */
export interface FeedTable {
  readonly sets: Readonly<Record<string, FeedSet>>;
  /** Client address -> the keys of `sets` its answers may feed. */
  readonly clients: Readonly<Record<string, readonly string[]>>;
}

export interface FeedElement {
  readonly set: string;
  readonly ip: string;
  /** The record's TTL as the client receives it, in seconds. */
  readonly ttl: number;
}

/** The agent's side of the wiring: the table as it changes, and the add DNS waits for. */
export interface AnswerFeed {
  subscribe(fn: (table: FeedTable) => void): () => void;
  add(elements: readonly FeedElement[]): Promise<void>;
}

export const EMPTY_FEED: FeedTable = { sets: {}, clients: {} };

interface Compiled {
  readonly set: string;
  readonly family: 4 | 6;
  readonly exact: ReadonlySet<string>;
  /** ".example.com" for "*.example.com". */
  readonly suffixes: readonly string[];
}

/** Whether a lowercased name without its trailing dot matches one of the set's patterns. */
function matches(c: Compiled, name: string): boolean {
  if (c.exact.has(name)) return true;
  for (const s of c.suffixes) if (name.length > s.length && name.endsWith(s)) return true;
  return false;
}

function compile(t: FeedTable): Map<string, Compiled[]> {
  const sets = new Map<string, Compiled>();
  for (const [set, s] of Object.entries(t.sets)) {
    const pats = s.patterns.map((p) => canonical(p));
    sets.set(set, { set, family: s.family, exact: new Set(pats.filter((p) => !p.startsWith('*.'))), suffixes: pats.filter((p) => p.startsWith('*.')).map((p) => p.slice(1)) });
  }
  const out = new Map<string, Compiled[]>();
  for (const [client, keys] of Object.entries(t.clients)) {
    const list = keys.map((k) => sets.get(k)).filter((c): c is Compiled => c !== undefined);
    if (list.length > 0) out.set(client, list);
  }
  return out;
}

/**
 * The addresses (and TTLs) the reply gives for `qname`: its own A/AAAA records and those of the
 * names its CNAME chain leads to, within this one reply.
 */
export function chainAddresses(reply: Reply, qname: string): { ip: string; family: 4 | 6; ttl: number }[] {
  const names = new Set([qname]);
  // A chain is in order in practice, but nothing requires it: repeat until no new name joins.
  for (let grew = true, rounds = 0; grew && rounds < 16; rounds++) {
    grew = false;
    for (const rr of reply.answer) {
      if (rr.type !== Type.CNAME || !names.has(canonical(rr.name))) continue;
      const target = canonical(rr.data as string);
      if (names.has(target)) continue;
      names.add(target);
      grew = true;
    }
  }
  const out: { ip: string; family: 4 | 6; ttl: number }[] = [];
  for (const rr of reply.answer) {
    if ((rr.type !== Type.A && rr.type !== Type.AAAA) || !names.has(canonical(rr.name))) continue;
    out.push({ ip: rr.data as string, family: rr.type === Type.A ? 4 : 6, ttl: rr.ttl });
  }
  return out;
}

export interface AnswerFeedOptions {
  /** Resolves once the addresses are in force; the reply waits for it (at most waitMs). */
  readonly add: (elements: readonly FeedElement[]) => Promise<void>;
  readonly server: string;
  readonly log?: Logger;
  /** Longest a reply waits for the add; past it the reply goes out and the add goes on. Default 2000. */
  readonly waitMs?: number;
}

export class AnswerFeedPlugin implements Plugin {
  readonly name = 'answerfeed';
  private clients = new Map<string, Compiled[]>();

  constructor(private readonly o: AnswerFeedOptions) {}

  setTable(t: FeedTable): void {
    this.clients = compile(t);
  }

  /** Whether answers to this client may have to be fed (the encoded-answer fast path must not skip them). */
  watches = (src: string): boolean => this.clients.size > 0 && this.clients.has(src.startsWith('::ffff:') ? src.slice(7) : src);

  serve(req: Request, next: Next): Reply | Promise<Reply> {
    if (this.clients.size === 0) return next(req);
    const t = req.q.type;
    if (t !== Type.A && t !== Type.AAAA) return next(req);
    const sets = this.clients.get(req.src.startsWith('::ffff:') ? req.src.slice(7) : req.src);
    if (sets === undefined) return next(req);
    const hit = sets.filter((c) => matches(c, req.qname));
    if (hit.length === 0) return next(req);
    const r = next(req);
    return isPromise(r) ? r.then((m) => this.feed(req, hit, m)) : this.feed(req, hit, r);
  }

  private async feed(req: Request, sets: readonly Compiled[], reply: Reply): Promise<Reply> {
    if (reply.rcode !== Rcode.NOERROR) return reply;
    const elements: FeedElement[] = [];
    for (const a of chainAddresses(reply, req.qname)) for (const c of sets) if (c.family === a.family) elements.push({ set: c.set, ip: a.ip, ttl: a.ttl });
    if (elements.length === 0) return reply;
    const start = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), this.o.waitMs ?? 2000)));
    try {
      const r = await Promise.race([this.o.add(elements), late]);
      if (r === 'late') {
        dnsMetrics.feedErrors.inc([this.o.server, 'timeout']);
        this.o.log?.warn({ qname: req.qname, client: req.src }, 'dns: answer feed too slow; replying before the addresses are in force');
      }
    } catch (e) {
      // The reply still goes out: a connection to the address is then refused by policy, and the
      // client's next lookup tries again. Refusing to answer would break name resolution itself,
      // which FQDN policy must never do (NPEP-133).
      dnsMetrics.feedErrors.inc([this.o.server, 'error']);
      this.o.log?.warn({ qname: req.qname, client: req.src, err: (e as Error).message }, 'dns: answer feed failed');
    } finally {
      clearTimeout(timer);
    }
    dnsMetrics.feedDuration.observe([this.o.server], (performance.now() - start) / 1000);
    return reply;
  }
}
