// CoreDNS's ServeDNS chain in TypeScript: each plugin answers or calls next. A plugin may answer
// synchronously (the kubernetes plugin always does) so the hot path never allocates a promise.
import { Rcode, canonical, replyTo, type Message, type Question } from './wire/types.js';

export type Proto = 'udp' | 'tcp';

export interface Request {
  /** The validated query: one question, opcode QUERY. */
  readonly msg: Message;
  readonly q: Question;
  /** q.name lowercased, no trailing dot. */
  readonly qname: string;
  readonly src: string;
  readonly proto: Proto;
  readonly family: 1 | 2;
  /** Name of the plugin that produced the reply, for coredns_dns_responses_total{plugin}. */
  answeredBy: string;
  /** Set by a plugin whose reply must not be reused for other queries (stale or per-client answers). */
  uncacheable?: boolean;
  /**
   * The one Service ("namespace/name") a kubernetes answer was built from, so a change elsewhere
   * in the zone leaves its encoded copy in place (fastpath.ts); unset: it may depend on anything.
   */
  dependsOn: string | undefined;
}

export type Reply = Message;
export type Next = (req: Request) => Reply | Promise<Reply>;

export interface Plugin {
  readonly name: string;
  serve(req: Request, next: Next): Reply | Promise<Reply>;
}

export function makeRequest(msg: Message, src: string, proto: Proto): Request {
  const q = msg.question[0]!;
  return { msg, q, qname: canonical(q.name), src, proto, family: src.includes(':') ? 2 : 1, answeredBy: '', dependsOn: undefined };
}

/** A request for another name on behalf of the same client (autopath's search-path expansion). */
export function subRequest(req: Request, name: string, type = req.q.type): Request {
  const q = { name, type, class: req.q.class };
  return { ...req, msg: { ...req.msg, question: [q] }, q, qname: canonical(name), answeredBy: '', dependsOn: undefined };
}

/** Builds the chain; a query that falls off the end gets SERVFAIL, like CoreDNS with no matching zone. */
export function chain(plugins: readonly Plugin[]): Next {
  let next: Next = (req) => {
    req.answeredBy = '';
    return replyTo(req.msg, Rcode.SERVFAIL);
  };
  for (let i = plugins.length - 1; i >= 0; i--) {
    const p = plugins[i]!;
    const after = next;
    next = (req) => p.serve(req, after);
  }
  return next;
}

export function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return v instanceof Promise;
}
