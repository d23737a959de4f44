// Forwarding against scripted upstreams on 127.0.0.1 ports: failover, TCP retry, health checks,
// timeouts, stub domains, concurrency cap and loop detection.
import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../testing/harness.js';
import { makeRequest, type Request } from '../plugin.js';
import { decode } from '../wire/decode.js';
import { encode } from '../wire/encode.js';
import { CLASS_IN, Rcode, Type, newMessage, type Message } from '../wire/types.js';
import { ForwardPlugin } from './plugin.js';

type Script = (q: Message) => Message | undefined;

interface Fake {
  port: number;
  seen: Message[];
  close(): Promise<void>;
}

function answer(q: Message, ip: string, o: Partial<Message> = {}): Message {
  return newMessage({ id: q.id, qr: true, ra: true, question: q.question, answer: [{ name: q.question[0]!.name, type: Type.A, class: CLASS_IN, ttl: 60, data: ip }], ...o });
}

async function fakeUpstream(script: Script, o: { port?: number; tcp?: Script } = {}): Promise<Fake> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await bindFake(script, o);
    } catch (e) {
      // The ephemeral UDP port can be taken on TCP (by anything on this machine): take another one.
      if (o.port !== undefined || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 10) throw e;
    }
  }
}

async function bindFake(script: Script, o: { port?: number; tcp?: Script }): Promise<Fake> {
  const seen: Message[] = [];
  const udp = dgram.createSocket('udp4');
  udp.on('message', (buf, rinfo) => {
    const q = decode(buf);
    seen.push(q);
    const r = script(q);
    if (r) udp.send(encode(r), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => udp.bind(o.port ?? 0, '127.0.0.1', () => r()));
  const port = udp.address().port;
  let tcp: net.Server | undefined;
  if (o.tcp) {
    const tcpScript = o.tcp;
    tcp = net.createServer((s) => {
      s.on('data', (d: Buffer) => {
        const q = decode(d.subarray(2));
        seen.push(q);
        const r = tcpScript(q);
        if (!r) return;
        const out = encode(r);
        const len = Buffer.alloc(2);
        len.writeUInt16BE(out.length);
        s.end(Buffer.concat([len, out]));
      });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        tcp!.once('error', reject);
        tcp!.listen(port, '127.0.0.1', () => (tcp!.off('error', reject), resolve()));
      });
    } catch (e) {
      await new Promise<void>((r) => udp.close(() => r()));
      throw e;
    }
  }
  return {
    port,
    seen,
    close: async () => {
      await new Promise<void>((r) => udp.close(() => r()));
      if (tcp) await new Promise<void>((r) => tcp!.close(() => r()));
    },
  };
}

function req(name: string, type: number = Type.A): Request {
  return makeRequest(newMessage({ id: 7, rd: true, question: [{ name, type, class: CLASS_IN }], edns: { udpSize: 4096, version: 0, dnssecOk: true, options: [] } }), '10.244.0.9', 'udp');
}

const never = (): never => {
  throw new Error('forward is the last plugin');
};

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function plugin(ups: string[], o: ConstructorParameters<typeof ForwardPlugin>[1] = {}, stubs: Record<string, string[]> = {}): ForwardPlugin {
  const f = new ForwardPlugin({ upstreams: ups, stubDomains: stubs }, { timeoutMs: 300, deadlineMs: 600, healthIntervalMs: 50, ...o });
  cleanups.push(() => f.close());
  return f;
}

async function fake(script: Script, o?: { port?: number; tcp?: Script }): Promise<Fake> {
  const f = await fakeUpstream(script, o);
  cleanups.push(() => f.close());
  return f;
}

describe('forward', () => {
  it('forwards with EDNS0 and the client DO bit, and returns the upstream answer', async () => {
    const up = await fake((q) => answer(q, '192.0.2.1'));
    const f = plugin([`127.0.0.1:${up.port}`]);
    const r = await f.serve(req('www.example.org'), never);
    expect(r.rcode).toBe(Rcode.NOERROR);
    expect(r.answer[0]!.data).toBe('192.0.2.1');
    expect(up.seen[0]!.edns).toMatchObject({ udpSize: 1232, dnssecOk: true });
  });

  it('retries over TCP when the UDP answer is truncated', async () => {
    const up = await fake((q) => newMessage({ id: q.id, qr: true, tc: true, question: q.question }), { tcp: (q) => answer(q, '192.0.2.2') });
    const f = plugin([`127.0.0.1:${up.port}`]);
    const r = await f.serve(req('big.example.org'), never);
    expect(r.answer[0]!.data).toBe('192.0.2.2');
    expect(r.tc).toBe(false);
  });

  it('fails over from a dead upstream, marks it down, and health-checks it back', async () => {
    const deadPort = await freePort();
    const live = await fake((q) => answer(q, '192.0.2.3'));
    const f = plugin([`127.0.0.1:${deadPort}`, `127.0.0.1:${live.port}`]);
    const dead = f.upstreams().find((u) => u.port === deadPort)!;
    // Upstreams are tried in random order, so the dead one comes first only some of the time; every
    // answer must still come from the live one, and two failures mark the dead one down.
    for (let i = 0; i < 60 && !dead.down; i++) expect((await f.serve(req(`n${i}.example.org`), never)).answer[0]!.data).toBe('192.0.2.3');
    expect(dead.down).toBe(true);
    const revived = await fake((q) => answer(q, '192.0.2.4'), { port: deadPort });
    await expect.poll(() => dead.down, { timeout: 2000 }).toBe(false);
    expect(revived.seen.some((q) => q.question[0]!.type === Type.NS && q.question[0]!.name === '')).toBe(true);
  });

  it('answers SERVFAIL fast when every upstream is gone', async () => {
    const deadPort = await freePort();
    // Long timeouts, so "fast" (the refusal seen, not a timeout waited out) has a wide margin on a loaded machine.
    const f = plugin([`127.0.0.1:${deadPort}`], { timeoutMs: 5000, deadlineMs: 8000 });
    const t0 = performance.now();
    const r = await f.serve(req('x.example.org'), never);
    expect(r.rcode).toBe(Rcode.SERVFAIL);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('answers SERVFAIL within the deadline when the upstream is silent', async () => {
    const up = await fake(() => undefined);
    // The deadline, not the per-try timeout, ends the wait: without it this would take 8 s.
    const f = plugin([`127.0.0.1:${up.port}`], { timeoutMs: 8000, deadlineMs: 600 });
    const t0 = performance.now();
    const r = await f.serve(req('slow.example.org'), never);
    expect(r.rcode).toBe(Rcode.SERVFAIL);
    expect(performance.now() - t0).toBeLessThan(3000);
  });

  it('sends stub domains to their own upstreams, longest suffix first', async () => {
    const def = await fake((q) => answer(q, '192.0.2.10'));
    const corp = await fake((q) => answer(q, '192.0.2.20'));
    const lab = await fake((q) => answer(q, '192.0.2.30'));
    const f = plugin([`127.0.0.1:${def.port}`], {}, { 'corp.example': [`127.0.0.1:${corp.port}`], 'lab.corp.example.': [`127.0.0.1:${lab.port}`] });
    expect((await f.serve(req('www.example.org'), never)).answer[0]!.data).toBe('192.0.2.10');
    expect((await f.serve(req('git.corp.example'), never)).answer[0]!.data).toBe('192.0.2.20');
    expect((await f.serve(req('ci.LAB.corp.example'), never)).answer[0]!.data).toBe('192.0.2.30');
  });

  it('refuses beyond the concurrency cap', async () => {
    const up = await fake(() => undefined);
    const f = plugin([`127.0.0.1:${up.port}`], { maxConcurrent: 2 });
    const slow = [f.serve(req('a.example.org'), never), f.serve(req('b.example.org'), never)];
    const r = await f.serve(req('c.example.org'), never);
    expect(r.rcode).toBe(Rcode.REFUSED);
    await Promise.all(slow);
  });

  it('ignores an upstream that is this server, and retires one whose probe comes back', async () => {
    const self = plugin(['127.0.0.1:53'], { self: ['127.0.0.1:53'] });
    expect((await self.serve(req('x.example.org'), never)).rcode).toBe(Rcode.SERVFAIL);
    const ref: { f?: ForwardPlugin } = {};
    // An upstream that forwards everything back to us.
    const loop = await fake((q) => {
      void ref.f?.serve(makeRequest(q, '127.0.0.1', 'udp'), never);
      return undefined;
    });
    const f = (ref.f = plugin([`127.0.0.1:${loop.port}`]));
    await f.probeLoops();
    expect(f.upstreams()[0]!.looping).toBe(true);
    expect((await f.serve(req('y.example.org'), never)).rcode).toBe(Rcode.SERVFAIL);
  });
});
