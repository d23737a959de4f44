import { describe, expect, it } from 'vitest';
import { AnswerFeedPlugin, chainAddresses, type FeedElement, type FeedTable } from './answer-feed.js';
import { AutopathPlugin } from './autopath.js';
import { chain, isPromise, makeRequest, type Plugin, type Reply, type Request } from './plugin.js';
import { cacheWith, pod } from './testing/fixtures.js';
import { CLASS_IN, Rcode, Type, newMessage, replyTo, type RR } from './wire/types.js';

const rr = (name: string, type: number, data: string, ttl = 60): RR => ({ name, type, class: CLASS_IN, ttl, data });

/** An upstream that knows a few names (with a CNAME chain), answering synchronously or not. */
class Upstream implements Plugin {
  readonly name = 'forward';
  constructor(private readonly async: boolean) {}
  serve(req: Request): Reply | Promise<Reply> {
    req.answeredBy = this.name;
    const m = replyTo(req.msg);
    const A = req.q.type === Type.A;
    if (req.qname === 'allowed.example') m.answer = A ? [rr('allowed.example.', Type.A, '192.0.2.10', 7)] : [rr('allowed.example.', Type.AAAA, '2001:db8::10', 7)];
    else if (req.qname === 'www.cdn.example') m.answer = [rr('www.cdn.example.', Type.CNAME, 'edge.other.net.'), rr('edge.other.net.', Type.CNAME, 'e1.other.net.'), rr('e1.other.net.', Type.A, '198.51.100.1', 20)];
    // A hostile upstream: its own name, plus a record for a name the policy allows.
    else if (req.qname === 'evil.example') m.answer = [rr('evil.example.', Type.A, '203.0.113.66'), rr('allowed.example.', Type.A, '203.0.113.67')];
    else return { ...replyTo(req.msg, Rcode.NXDOMAIN) };
    return this.async ? Promise.resolve(m) : m;
  }
}

const TABLE: FeedTable = {
  sets: { s4: { family: 4, patterns: ['allowed.example', '*.cdn.example'] }, s6: { family: 6, patterns: ['allowed.example'] }, other: { family: 4, patterns: ['evil.example'] } },
  clients: { '10.244.0.9': ['s4', 's6'] },
};

function setup(o: { async?: boolean; add?: (e: readonly FeedElement[]) => Promise<void>; waitMs?: number } = {}) {
  const adds: FeedElement[][] = [];
  const feed = new AnswerFeedPlugin({ add: o.add ?? (async (e) => void adds.push([...e])), server: 'dns://:53', waitMs: o.waitMs });
  feed.setTable(TABLE);
  const cache = cacheWith({ namespaces: ['default'], pods: [pod('default', 'client', ['10.244.0.9'])] });
  const auto = new AutopathPlugin({ zone: 'cluster.local', pods: cache.store('pods'), server: 'dns://:53', enabled: () => true });
  return { feed, adds, next: chain([auto, feed, new Upstream(o.async ?? false)]) };
}

const query = (name: string, src = '10.244.0.9', type: number = Type.A): Request => makeRequest(newMessage({ id: 1, rd: true, question: [{ name, type, class: CLASS_IN }] }), src, 'udp');

describe('answer feed', () => {
  it('feeds a matching answer before it is returned, per family, with the record TTL', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const adds: FeedElement[][] = [];
    const { next } = setup({ add: async (e) => (adds.push([...e]), gate) });
    let done = false;
    const p = Promise.resolve(next(query('allowed.example.'))).then((r) => ((done = true), r));
    await new Promise((r) => setTimeout(r, 20));
    // The add has been asked for and the reply waits for it.
    expect(adds).toEqual([[{ set: 's4', ip: '192.0.2.10', ttl: 7 }]]);
    expect(done).toBe(false);
    release();
    expect((await p).answer[0]!.data).toBe('192.0.2.10');
    await next(query('ALLOWED.example.', '10.244.0.9', Type.AAAA));
    expect(adds[1]).toEqual([{ set: 's6', ip: '2001:db8::10', ttl: 7 }]);
  });

  it('costs nothing for clients without a table entry or names that do not match: the answer stays synchronous', () => {
    const { next, adds, feed } = setup();
    expect(isPromise(next(query('allowed.example.', '10.244.0.77')))).toBe(false);
    expect(isPromise(next(query('cdn.example.')))).toBe(false);
    expect(isPromise(next(query('allowed.example.', '10.244.0.9', Type.TXT)))).toBe(false);
    expect(adds).toEqual([]);
    expect(feed.watches('10.244.0.9')).toBe(true);
    expect(feed.watches('::ffff:10.244.0.9')).toBe(true);
    expect(feed.watches('10.244.0.77')).toBe(false);
  });

  it('follows the CNAME chain of one reply; a wildcard matches one or more labels, never the bare suffix', async () => {
    const { next, adds } = setup({ async: true });
    await next(query('www.cdn.example.'));
    expect(adds).toEqual([[{ set: 's4', ip: '198.51.100.1', ttl: 20 }]]);
  });

  it('never trusts a record for another name than the question (a hostile upstream)', async () => {
    const { next, adds } = setup();
    await next(query('evil.example.'));
    expect(adds).toEqual([]);
  });

  it('matches the name autopath resolved for a search-path query', async () => {
    const { next, adds } = setup();
    const r = await next(query('allowed.example.default.svc.cluster.local.'));
    expect(r.answer.map((x) => x.type)).toEqual([Type.CNAME, Type.A]);
    expect(adds).toEqual([[{ set: 's4', ip: '192.0.2.10', ttl: 7 }]]);
  });

  it('still answers when the add fails or is too slow, and follows a new table', async () => {
    const failing = setup({ add: () => Promise.reject(new Error('no such set')) });
    expect((await failing.next(query('allowed.example.'))).answer).toHaveLength(1);
    const slow = setup({ add: () => new Promise(() => undefined), waitMs: 30 });
    expect((await slow.next(query('allowed.example.'))).answer).toHaveLength(1);
    const { next, adds, feed } = setup();
    feed.setTable({ sets: {}, clients: {} });
    expect(isPromise(next(query('allowed.example.')))).toBe(false);
    expect(adds).toEqual([]);
  });

  it('chainAddresses: out-of-order chains, loops and unrelated records', () => {
    const reply = replyTo(newMessage({ id: 1, question: [{ name: 'a.example.', type: Type.A, class: CLASS_IN }] }));
    reply.answer = [rr('c.example.', Type.A, '192.0.2.3', 5), rr('b.example.', Type.CNAME, 'c.example.'), rr('a.example.', Type.CNAME, 'b.example.'), rr('x.example.', Type.A, '192.0.2.9'), rr('c.example.', Type.CNAME, 'a.example.')];
    expect(chainAddresses(reply, 'a.example')).toEqual([{ ip: '192.0.2.3', family: 4, ttl: 5 }]);
  });
});
