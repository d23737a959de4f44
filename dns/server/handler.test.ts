// Protocol hygiene and a mutation fuzz run, in-process against the full handler and chain.
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../common/config.js';
import { buildRuntime } from '../runtime.js';
import { cacheWith, endpoint, service, slice } from '../testing/fixtures.js';
import { decode } from '../wire/decode.js';
import { encode } from '../wire/encode.js';
import { Rcode, Type, newMessage, type Message } from '../wire/types.js';
import { mutate, rng } from '../testing/fuzz.js';

const many = Array.from({ length: 60 }, (_, i) => `10.244.1.${i + 1}`);
const cache = cacheWith({
  namespaces: ['default'],
  services: [service('default', 'web', { clusterIPs: ['10.96.0.20'] }), service('default', 'many', { headless: true })],
  slices: [slice('default', 'many', 'many-1', { endpoints: many.map((ip) => endpoint([ip])) })],
});
// No upstream: anything forwarded fails at once, so the fuzz run never waits on the network.
const cfg = parseConfig({ nodeName: 'node-a', dns: { upstreams: [] } });
const rt = buildRuntime(cfg, cache, { log: pino({ level: 'silent' }) });
afterAll(() => rt.close());

function query(name: string, type: number, o: Partial<Message> = {}): Buffer {
  return encode(newMessage({ id: 4242, rd: true, question: [{ name, type, class: 1 }], ...o }));
}

async function ask(buf: Buffer, src = '10.244.0.9', proto: 'udp' | 'tcp' = 'udp'): Promise<Buffer | undefined> {
  return rt.handler.handle(buf, src, proto);
}

describe('query hygiene', () => {
  it('answers FORMERR to an unparseable query whose header is intact', async () => {
    const bad = Buffer.concat([query('web.default.svc.cluster.local', Type.A).subarray(0, 12), Buffer.from([0x3f, 0x61])]);
    const r = decode((await ask(bad))!);
    expect(r.rcode).toBe(Rcode.FORMERR);
    expect(r.id).toBe(4242);
  });

  it('drops runts and responses', async () => {
    expect(await ask(Buffer.from([1, 2, 3]))).toBeUndefined();
    const resp = query('web.default.svc.cluster.local', Type.A, { qr: true });
    expect(await ask(resp)).toBeUndefined();
  });

  it('answers NOTIMP to other opcodes and FORMERR to several questions', async () => {
    expect(decode((await ask(query('x', Type.A, { opcode: 2 })))!).rcode).toBe(Rcode.NOTIMP);
    const two = encode(newMessage({ id: 1, question: [{ name: 'a', type: 1, class: 1 }, { name: 'b', type: 1, class: 1 }] }));
    expect(decode((await ask(two))!).rcode).toBe(Rcode.FORMERR);
  });

  it('refuses clients outside the pod and allowed CIDRs, and zone transfers', async () => {
    expect(decode((await ask(query('web.default.svc.cluster.local', Type.A), '192.0.2.1'))!).rcode).toBe(Rcode.REFUSED);
    expect(decode((await ask(query('web.default.svc.cluster.local', Type.A), '127.0.0.1'))!).rcode).toBe(Rcode.NOERROR);
    expect(decode((await ask(query('cluster.local', Type.AXFR), '10.244.0.9', 'tcp'))!).rcode).toBe(Rcode.REFUSED);
    expect(decode((await ask(query('cluster.local', Type.IXFR)))!).rcode).toBe(Rcode.REFUSED);
  });

  it('answers ANY with one HINFO (RFC 8482)', async () => {
    const r = decode((await ask(query('web.default.svc.cluster.local', Type.ANY)))!);
    expect(r.answer.map((a) => a.type)).toEqual([Type.HINFO]);
  });

  it('preserves the question case and compresses names', async () => {
    const out = (await ask(query('WeB.DeFault.SVC.cluster.local', Type.A)))!;
    const r = decode(out);
    expect(r.question[0]!.name).toBe('WeB.DeFault.SVC.cluster.local');
    expect(r.answer[0]!.name).toBe('WeB.DeFault.SVC.cluster.local');
    // header 12 + question 35 + answer: pointer 2 + 10 fixed + 4 rdata
    expect(out.length).toBe(12 + 35 + 16);
  });

  it('fits UDP answers into 512 bytes without EDNS, the client size with it, and sets TC beyond', async () => {
    const plain = decode((await ask(query('many.default.svc.cluster.local', Type.A)))!);
    expect(plain.tc).toBe(true);
    expect(plain.answer).toHaveLength(0);
    const edns = { udpSize: 4096, version: 0, dnssecOk: false, options: [] };
    const big = (await ask(query('many.default.svc.cluster.local', Type.A, { edns })))!;
    const r = decode(big);
    expect(r.tc).toBe(false);
    expect(r.answer).toHaveLength(60);
    expect(r.edns?.udpSize).toBe(1232);
    const tcp = decode((await ask(query('many.default.svc.cluster.local', Type.A), '10.244.0.9', 'tcp'))!);
    expect(tcp.answer).toHaveLength(60);
  });

  it('answers BADVERS to EDNS versions it does not speak', async () => {
    const r = decode((await ask(query('web.default.svc.cluster.local', Type.A, { edns: { udpSize: 1232, version: 1, dnssecOk: false, options: [] } })))!);
    expect(r.rcode).toBe(16);
  });
});

describe('fuzz', () => {
  it('survives 100k mutated packets without throwing', async () => {
    const edns = { udpSize: 4096, version: 0, dnssecOk: true, options: [{ code: 10, data: new Uint8Array(8) }] };
    const seeds = [
      query('web.default.svc.cluster.local', Type.A),
      query('many.default.svc.cluster.local', Type.A, { edns }),
      query('_http._tcp.web.default.svc.cluster.local', Type.SRV),
      query('20.0.96.10.in-addr.arpa', Type.PTR),
      query('10-244-1-1.default.pod.cluster.local', Type.A, { edns }),
      encode(decode(encode(newMessage({ id: 9, qr: false, question: [{ name: 'a.b', type: 1, class: 1 }], answer: [{ name: 'a.b', type: Type.SOA, class: 1, ttl: 1, data: { mname: 'x.y', rname: 'z.y', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 } }] })))),
    ];
    const r = rng(1234);
    let answered = 0;
    let dropped = 0;
    const pending: Promise<Buffer | undefined>[] = [];
    for (let i = 0; i < 100_000; i++) {
      const pkt = mutate(seeds[i % seeds.length]!, r);
      const out = rt.handler.handle(pkt, '10.244.0.9', i % 7 === 0 ? 'tcp' : 'udp');
      if (out instanceof Promise) pending.push(out);
      else if (out) {
        answered++;
        // Whatever we send must itself parse.
        decode(out);
      } else dropped++;
    }
    const settled = await Promise.all(pending);
    for (const out of settled) if (out) decode(out);
    expect(answered + dropped + pending.length).toBe(100_000);
    expect(answered).toBeGreaterThan(50_000);
  });
});

describe('encoded-answer fast path', () => {
  it('patches id and question case into a cached answer, and drops it when the zone changes', async () => {
    const first = decode((await ask(query('web.default.svc.cluster.local', Type.A)))!);
    const q2 = query('WEB.default.SVC.cluster.local', Type.A, { id: 777 });
    const second = decode((await ask(q2))!);
    expect(second.id).toBe(777);
    expect(second.question[0]!.name).toBe('WEB.default.SVC.cluster.local');
    expect(second.answer[0]!.name).toBe('WEB.default.SVC.cluster.local');
    expect(second.answer[0]!.data).toBe(first.answer[0]!.data);
    cache.upsert('services', 'default/web', service('default', 'web', { clusterIPs: ['10.96.0.77'] }));
    await new Promise((r) => setImmediate(r));
    expect(decode((await ask(q2))!).answer[0]!.data).toBe('10.96.0.77');
    // The ACL still applies on a hit.
    expect(decode((await ask(q2, '192.0.2.1'))!).rcode).toBe(Rcode.REFUSED);
  });
});

describe('fast path metrics', () => {
  it('counts every hit as a request and a response, by protocol and family', async () => {
    const { dnsMetrics } = await import('../metrics.js');
    const srv = 'dns://:53';
    const req = (proto: string, fam: string) => dnsMetrics.requests.value([srv, '.', '', proto, fam, 'A']);
    const before = { u4: req('udp', '1'), u6: req('udp', '2'), t4: req('tcp', '1'), ok: dnsMetrics.responses.value([srv, '.', '', 'NOERROR', 'kubernetes']) };
    const names = ['web.default.svc.cluster.local', 'WEB.default.svc.cluster.local', 'web.DEFAULT.svc.cluster.local'];
    for (let i = 0; i < 30; i++) expect(decode((await ask(query(names[i % 3]!, Type.A, { id: i })))!).id).toBe(i);
    for (let i = 0; i < 5; i++) await ask(query('web.default.svc.cluster.local', Type.A), 'fd00::1');
    for (let i = 0; i < 7; i++) await ask(query('web.default.svc.cluster.local', Type.A), '10.244.0.9', 'tcp');
    expect(req('udp', '1') - before.u4).toBe(30);
    expect(req('udp', '2') - before.u6).toBe(5);
    expect(req('tcp', '1') - before.t4).toBe(7);
    // fd00::1 is outside the ACL: REFUSED, not a fast-path NOERROR.
    expect(dnsMetrics.responses.value([srv, '.', '', 'NOERROR', 'kubernetes']) - before.ok).toBe(37);
  });
});

describe('fast path keys', () => {
  it('folds the case of the name only, never of type or class bytes', async () => {
    const { FastPath } = await import('./fastpath.js');
    const fp = new FastPath(() => 0, () => undefined);
    const init = { bytes: Buffer.from('reply'), durationKey: '', requestKeys: [], udpSize: 512 };
    const find = (q: Buffer) => {
      const h = fp.hash(q);
      return h < 0 ? undefined : fp.get(q, h);
    };
    const store = (q: Buffer) => fp.set(q, fp.hash(q), init);
    expect(find(query('web.default.svc', Type.A))).toBeUndefined(); // first get adopts the generation
    store(query('web.default.svc', Type.A));
    expect(find(query('Web.DeFault.SVC', Type.A))?.bytes.toString()).toBe('reply');
    expect(find(query('web.default.svc', Type.AAAA))).toBeUndefined();
    // 65 (HTTPS) is "A" and 97 is "a" in latin1: type bytes are never folded.
    store(query('web.default.svc', 65));
    expect(find(query('web.default.svc', 65))).toBeDefined();
    expect(find(query('web.default.svc', 97))).toBeUndefined();
    // RD and the OPT record are part of the key; options make a query unfit.
    expect(find(query('web.default.svc', Type.A, { rd: false }))).toBeUndefined();
    expect(find(query('web.default.svc', Type.A, { edns: { udpSize: 1232, version: 0, dnssecOk: false, options: [] } }))).toBeUndefined();
    expect(fp.hash(query('x', Type.A, { edns: { udpSize: 1232, version: 0, dnssecOk: false, options: [{ code: 10, data: new Uint8Array(8) }] } }))).toBe(-1);
  });

  it('keeps entries whose hashes collide apart', async () => {
    const { FastPath } = await import('./fastpath.js');
    const fp = new FastPath(() => 0, () => undefined);
    const entry = (s: string) => ({ bytes: Buffer.from(s), durationKey: '', requestKeys: [], udpSize: 512 });
    const a = query('a.example', Type.A);
    const b = query('b.example', Type.A);
    fp.get(a, 7);
    // The same bucket for both, as a hash collision would give.
    fp.set(a, 7, entry('A'));
    fp.set(b, 7, entry('B'));
    expect(fp.get(a, 7)?.bytes.toString()).toBe('A');
    expect(fp.get(b, 7)?.bytes.toString()).toBe('B');
    fp.set(a, 7, entry('A2'));
    expect(fp.get(a, 7)?.bytes.toString()).toBe('A2');
    expect(fp.get(b, 7)?.bytes.toString()).toBe('B');
  });
});

describe('fast path when full', () => {
  it('keeps most of a working set larger than it holds: a new entry pushes out about one, not all', async () => {
    const { FastPath, MAX_ENTRIES } = await import('./fastpath.js');
    const fp = new FastPath(() => 0, () => undefined);
    const init = { bytes: Buffer.from('reply'), durationKey: '', requestKeys: [], udpSize: 512 };
    const names = Array.from({ length: MAX_ENTRIES + MAX_ENTRIES / 10 }, (_, i) => query(`svc-${i}.ns-${i % 100}.svc`, Type.A));
    fp.get(names[0]!, fp.hash(names[0]!)); // adopts the generation
    for (const q of names) fp.set(q, fp.hash(q), init);
    const held = names.filter((q) => fp.get(q, fp.hash(q)) !== undefined).length;
    expect(held).toBeLessThanOrEqual(MAX_ENTRIES);
    // Dropping everything when full left a tenth of the names (those stored after the drop).
    expect(held).toBeGreaterThan(MAX_ENTRIES * 0.9);
  });
});

describe('answers written in place (batched UDP)', () => {
  it('writes the same bytes as handle() at the given offset, from a query inside a larger buffer, and declines what it has not cached', async () => {
    const name = 'web.default.svc.cluster.local';
    const q = query(name, Type.A);
    const slots = Buffer.alloc(3 * 4096, 0xee);
    const out = Buffer.alloc(2048, 0xee);
    q.copy(slots, 4096);
    rt.handler.clearFast();
    // Not remembered yet: left to handle().
    expect(rt.handler.answerCached(slots, 4096, q.length, '10.244.0.9', 'udp', out, 100)).toBe(-1);
    const full = (await ask(q))!;
    const mixed = query('WEB.default.svc.CLUSTER.local', Type.A, { id: 777 });
    mixed.copy(slots, 8192);
    const n = rt.handler.answerCached(slots, 8192, mixed.length, '10.244.0.9', 'udp', out, 100);
    expect(n).toBe(full.length);
    expect(out[99]).toBe(0xee);
    expect(out[100 + n]).toBe(0xee);
    const r = decode(out.subarray(100, 100 + n));
    expect(r.id).toBe(777);
    expect(r.question[0]!.name).toBe('WEB.default.svc.CLUSTER.local');
    expect(r.answer.map((a) => a.data)).toEqual(decode(full).answer.map((a) => a.data));
    // A client outside the ACL gets nothing here (handle() refuses it).
    expect(rt.handler.answerCached(slots, 8192, mixed.length, '192.0.2.1', 'udp', out, 100)).toBe(-1);
    // Another name in the same place misses.
    query('nope.default.svc.cluster.local', Type.A).copy(slots, 8192);
    expect(rt.handler.answerCached(slots, 8192, query('nope.default.svc.cluster.local', Type.A).length, '10.244.0.9', 'udp', out, 100)).toBe(-1);
  });
});

describe('fast path and zone changes', () => {
  it('keeps the encoded answers of Services a change did not touch, and drops the changed one', async () => {
    const c = cacheWith({
      namespaces: ['default'],
      services: [service('default', 'a', { clusterIPs: ['10.96.1.1'] }), service('default', 'b', { clusterIPs: ['10.96.1.2'] })],
    });
    const r = buildRuntime(cfg, c, { log: pino({ level: 'silent' }) });
    try {
      const out = Buffer.alloc(512);
      const qa = query('a.default.svc.cluster.local', Type.A);
      const qb = query('b.default.svc.cluster.local', Type.A);
      const ptr = query('1.1.96.10.in-addr.arpa', Type.PTR);
      const cached = (q: Buffer): boolean => r.handler.answerCached(q, 0, q.length, '10.244.0.9', 'udp', out, 0) >= 0;
      for (const q of [qa, qb, ptr]) await r.handler.handle(q, '10.244.0.9', 'udp');
      expect([cached(qa), cached(qb), cached(ptr)]).toEqual([true, true, true]);
      // Service b moves: its answer and the reverse ones (which may name anything) go, a's stays.
      c.upsert('services', 'default/b', service('default', 'b', { clusterIPs: ['10.96.1.3'] }));
      await new Promise((res) => setImmediate(res));
      expect([cached(qa), cached(qb), cached(ptr)]).toEqual([true, false, false]);
      const ans = decode((await r.handler.handle(qb, '10.244.0.9', 'udp'))!);
      expect(ans.answer.map((x) => x.data)).toEqual(['10.96.1.3']);
      // A new Service elsewhere leaves both alone; deleting a drops a's answer.
      c.upsert('services', 'default/c', service('default', 'c', { clusterIPs: ['10.96.1.4'] }));
      await new Promise((res) => setImmediate(res));
      expect([cached(qa), cached(qb)]).toEqual([true, true]);
      c.remove('services', 'default/a');
      await new Promise((res) => setImmediate(res));
      expect(cached(qa)).toBe(false);
      expect(decode((await r.handler.handle(qa, '10.244.0.9', 'udp'))!).rcode).toBe(Rcode.NXDOMAIN);
    } finally {
      r.close();
    }
  });
});
