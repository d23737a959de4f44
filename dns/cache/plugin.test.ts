import { describe, expect, it } from 'vitest';
import { makeRequest, type Reply, type Request } from '../plugin.js';
import { CLASS_IN, Rcode, Type, newMessage, replyTo, type RR } from '../wire/types.js';
import { CachePlugin } from './plugin.js';

function req(name: string, type: number = Type.A): Request {
  return makeRequest(newMessage({ id: 1, rd: true, question: [{ name, type, class: CLASS_IN }] }), '10.244.0.9', 'udp');
}

const a = (name: string, ip: string, ttl: number): RR => ({ name, type: Type.A, class: CLASS_IN, ttl, data: ip });
const soa = (ttl: number, minimum: number): RR => ({
  name: 'example.org',
  type: Type.SOA,
  class: CLASS_IN,
  ttl,
  data: { mname: 'ns.example.org', rname: 'h.example.org', serial: 1, refresh: 1, retry: 1, expire: 1, minimum },
});

/** An upstream stand-in: answers from a script and counts calls. */
function upstream(answer: (r: Request) => Partial<Reply> | Error) {
  const u = {
    calls: 0,
    next: async (r: Request): Promise<Reply> => {
      u.calls++;
      const a = answer(r);
      if (a instanceof Error) throw a;
      return { ...replyTo(r.msg), ...a };
    },
  };
  return u;
}

function setup(o: { capacity?: number; prefetch?: boolean; serveStale?: boolean; staleAnswerMs?: number } = {}) {
  const clock = { t: 1_000_000 };
  const cache = new CachePlugin({ capacity: () => o.capacity ?? 100, prefetch: () => o.prefetch ?? false, serveStale: () => o.serveStale ?? false, staleAnswerMs: o.staleAnswerMs, now: () => clock.t });
  return { cache, clock };
}

describe('cache', () => {
  it('serves positive answers until their smallest TTL runs out, counting TTLs down', async () => {
    const { cache, clock } = setup();
    const up = upstream((r) => ({ answer: [a(r.q.name, '192.0.2.1', 60), a(r.q.name, '192.0.2.2', 20)] }));
    await cache.serve(req('www.example.org'), up.next);
    clock.t += 15_000;
    const hit = await cache.serve(req('WWW.example.org'), up.next);
    expect(up.calls).toBe(1);
    expect(hit.answer.map((x) => x.ttl)).toEqual([45, 5]);
    clock.t += 5_000;
    await cache.serve(req('www.example.org'), up.next);
    expect(up.calls).toBe(2);
  });

  it('caps positive TTLs', async () => {
    const { cache, clock } = setup();
    const up = upstream((r) => ({ answer: [a(r.q.name, '192.0.2.1', 86400)] }));
    await cache.serve(req('x.example.org'), up.next);
    clock.t += 3599_000;
    await cache.serve(req('x.example.org'), up.next);
    expect(up.calls).toBe(1);
    clock.t += 1_000;
    await cache.serve(req('x.example.org'), up.next);
    expect(up.calls).toBe(2);
  });

  it('keeps NXDOMAIN for the SOA minimum, and never caches SERVFAIL', async () => {
    const { cache, clock } = setup();
    const nx = upstream(() => ({ rcode: Rcode.NXDOMAIN, authority: [soa(300, 10)] }));
    await cache.serve(req('nope.example.org'), nx.next);
    clock.t += 9_000;
    const hit = await cache.serve(req('nope.example.org'), nx.next);
    expect(hit.rcode).toBe(Rcode.NXDOMAIN);
    expect(nx.calls).toBe(1);
    clock.t += 1_000;
    await cache.serve(req('nope.example.org'), nx.next);
    expect(nx.calls).toBe(2);
    const sf = upstream(() => ({ rcode: Rcode.SERVFAIL }));
    await cache.serve(req('broken.example.org'), sf.next);
    await cache.serve(req('broken.example.org'), sf.next);
    expect(sf.calls).toBe(2);
  });

  it('evicts the least recently used entry when full', async () => {
    const { cache } = setup({ capacity: 2 });
    const up = upstream((r) => ({ answer: [a(r.q.name, '192.0.2.1', 60)] }));
    await cache.serve(req('a.example.org'), up.next);
    await cache.serve(req('b.example.org'), up.next);
    await cache.serve(req('a.example.org'), up.next); // a is now the most recent
    await cache.serve(req('c.example.org'), up.next); // evicts b
    expect(cache.size).toBe(2);
    expect(up.calls).toBe(3);
    await cache.serve(req('a.example.org'), up.next);
    expect(up.calls).toBe(3);
    await cache.serve(req('b.example.org'), up.next);
    expect(up.calls).toBe(4);
  });

  it('prefetches a hot entry near expiry so it never goes cold', async () => {
    const { cache, clock } = setup({ prefetch: true });
    let ip = '192.0.2.1';
    const up = upstream((r) => ({ answer: [a(r.q.name, ip, 100)] }));
    await cache.serve(req('hot.example.org'), up.next);
    await cache.serve(req('hot.example.org'), up.next);
    clock.t += 95_000;
    ip = '192.0.2.9';
    const r = await cache.serve(req('hot.example.org'), up.next);
    expect(r.answer[0]!.data).toBe('192.0.2.1'); // served from cache
    await new Promise((res) => setImmediate(res));
    expect(up.calls).toBe(2); // and refreshed in the background
    clock.t += 10_000; // past the old expiry
    const after = await cache.serve(req('hot.example.org'), up.next);
    expect(after.answer[0]!.data).toBe('192.0.2.9');
    expect(up.calls).toBe(2);
  });

  it('serves stale answers with a 30s TTL when the upstream fails, only when enabled', async () => {
    for (const serveStale of [true, false]) {
      const { cache, clock } = setup({ serveStale });
      let down = false;
      const up = upstream((r) => (down ? { rcode: Rcode.SERVFAIL } : { answer: [a(r.q.name, '192.0.2.1', 10)] }));
      await cache.serve(req('s.example.org'), up.next);
      down = true;
      clock.t += 60_000;
      const r = await cache.serve(req('s.example.org'), up.next);
      if (serveStale) {
        expect(r.rcode).toBe(Rcode.NOERROR);
        expect(r.answer.map((x) => x.ttl)).toEqual([30]);
      } else expect(r.rcode).toBe(Rcode.SERVFAIL);
    }
  });

  it('answers stale without waiting out a silent upstream, and the late answer still refreshes the cache', async () => {
    const { cache, clock } = setup({ serveStale: true, staleAnswerMs: 30 });
    let release: (() => void) | undefined;
    let silent = false;
    const next = async (r: Request): Promise<Reply> => {
      const address = silent ? '192.0.2.2' : '192.0.2.1';
      if (silent) await new Promise<void>((res) => (release = res));
      return { ...replyTo(r.msg), answer: [a(r.q.name, address, 10)] };
    };
    await cache.serve(req('slow.example.org'), next);
    silent = true;
    clock.t += 60_000;
    const t0 = Date.now();
    const r = await cache.serve(req('slow.example.org'), next);
    // 30 ms, against an upstream that would never answer: a wide margin for a loaded machine.
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.answer.map((x) => [x.data, x.ttl])).toEqual([['192.0.2.1', 30]]);
    silent = false;
    release!();
    await new Promise((res) => setTimeout(res, 10));
    const fresh = await cache.serve(req('slow.example.org'), next);
    expect(fresh.answer.map((x) => x.data)).toEqual(['192.0.2.2']);
  });
});
