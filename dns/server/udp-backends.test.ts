// Both UDP paths over real loopback sockets: the batched addon (native-udp.ts + dns/native) and
// Node's dgram. The same handler and the same expectations for each.
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../common/config.js';
import { buildRuntime, type Runtime } from '../runtime.js';
import { cacheWith, service } from '../testing/fixtures.js';
import { mutate, rng } from '../testing/fuzz.js';
import { decode } from '../wire/decode.js';
import { encode } from '../wire/encode.js';
import { Rcode, Type, newMessage, replyTo, type Message } from '../wire/types.js';
import { DnsListener } from './listeners.js';
import { loadUdpBatch, resolveUdpBackend, type UdpBackend } from './native-udp.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
let addonDir: string | undefined;

/** CI may run the tests before `npm run build` put the addon in dist/: build a private copy then. */
function nativeUnavailable(): string | undefined {
  if (!existsSync(join(root, 'dist/native/udpbatch.node')) && !process.env.SKIFF_UDPBATCH_ADDON) {
    addonDir = mkdtempSync(join(tmpdir(), 'skiffdns-addon-'));
    const out = join(addonDir, 'udpbatch.node');
    try {
      execFileSync('bash', [join(root, 'scripts/build-native.sh'), 'udpbatch', out], { stdio: 'ignore' });
      if (existsSync(out)) process.env.SKIFF_UDPBATCH_ADDON = out;
    } catch {
      /* reported below */
    }
  }
  const { error } = loadUdpBatch();
  if (error) console.warn(`skipping the native UDP backend: ${error}`);
  return error;
}
const nativeSkip = nativeUnavailable();

const N_SERVICES = 50;
const services = Array.from({ length: N_SERVICES }, (_, i) => service('default', `svc-${i}`, { clusterIPs: [`10.96.1.${i + 1}`] }));
const cache = cacheWith({ namespaces: ['default'], services });

function has6(): boolean {
  try {
    return execFileSync('ip', ['-6', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' }).includes('::1/128');
  } catch {
    return false;
  }
}

/** A fake upstream: host-N.<anything> is 192.0.2.<N+1>, answered after a delay so our answers are async. */
async function fakeUpstream(): Promise<{ port: number; close: () => Promise<void> }> {
  const s = dgram.createSocket('udp4');
  let open = true;
  s.on('message', (m, r) => {
    const q = decode(m);
    if (q.question.length !== 1) return;
    const a = replyTo(q);
    a.answer = [{ name: q.question[0]!.name, type: Type.A, class: 1, ttl: 60, data: `192.0.2.${Number(/^host-(\d+)\./i.exec(q.question[0]!.name)?.[1] ?? 0) + 1}` }];
    setTimeout(() => open && s.send(encode(a), r.port, r.address), 2);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return {
    port: s.address().port,
    close: () => {
      open = false;
      return new Promise((r) => s.close(() => r()));
    },
  };
}

/** Sends every packet at once and collects the replies by id until `want` of them (or `want(got)`) or 5 s. */
async function burst(family: 4 | 6, port: number, packets: readonly Buffer[], want: number | ((got: Map<number, Message>) => boolean)): Promise<Map<number, Message>> {
  const done = typeof want === 'number' ? (g: Map<number, Message>) => g.size >= want : want;
  const address = family === 4 ? '127.0.0.1' : '::1';
  const sock = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6', recvBufferSize: 8 << 20 });
  const got = new Map<number, Message>();
  try {
    await new Promise<void>((r) => sock.bind(0, address, () => r()));
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 5000);
      sock.on('message', (m) => {
        const r = decode(m);
        got.set(r.id, r);
        if (done(got)) {
          clearTimeout(t);
          resolve();
        }
      });
      for (const p of packets) sock.send(p, port, address);
    });
  } finally {
    sock.close();
  }
  return got;
}

/** Mixed-case names: the reply must carry the client's exact spelling back. */
function caseOf(name: string, seed: number): string {
  return [...name].map((c, i) => ((seed >> i % 16) & 1 ? c.toUpperCase() : c)).join('');
}

const backends: { backend: UdpBackend; skip: string | undefined }[] = [
  { backend: 'native', skip: nativeSkip },
  { backend: 'dgram', skip: undefined },
];

afterAll(() => {
  if (addonDir) rmSync(addonDir, { recursive: true, force: true });
});

describe('dns.udpBackend', () => {
  it('auto takes the addon when it loads, dgram always means dgram', () => {
    expect(parseConfig({ nodeName: 'n' }).dns.udpBackend).toBe('auto');
    expect(resolveUdpBackend('auto').backend).toBe(nativeSkip ? 'dgram' : 'native');
    expect(resolveUdpBackend('dgram').backend).toBe('dgram');
  });
});

describe.each(backends)('UDP over $backend', ({ backend, skip }) => {
  let runtime: Runtime;
  let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
  const listeners: DnsListener[] = [];
  let port4 = 0;
  let port6 = 0;
  const v6 = has6();

  beforeAll(async () => {
    if (skip) return;
    upstream = await fakeUpstream();
    const cfg = parseConfig({ nodeName: 'node-a', dnsServiceIPs: ['127.0.0.1'], dns: { upstreams: [`127.0.0.1:${upstream.port}`], udpBackend: backend } });
    runtime = buildRuntime(cfg, cache, { forward: { healthIntervalMs: 60_000 } });
    const l4 = new DnsListener(runtime.handler);
    listeners.push(l4);
    port4 = (await l4.listen('127.0.0.1', 0, { udp: backend })).port;
    if (v6) {
      const l6 = new DnsListener(runtime.handler);
      listeners.push(l6);
      port6 = (await l6.listen('::1', 0, { udp: backend })).port;
    }
  });
  afterAll(async () => {
    await Promise.all(listeners.map((l) => l.close()));
    runtime?.close();
    await upstream?.close();
  });

  it.skipIf(skip)('uses the backend it was asked for', () => {
    expect(listeners[0]!.udpBackend).toBe(backend);
  });

  it.skipIf(skip)('answers a burst of 500 queries, each by its id with its own case', async () => {
    const names = new Map<number, string>();
    const packets = Array.from({ length: 500 }, (_, id) => {
      const name = caseOf(`svc-${id % N_SERVICES}.default.svc.cluster.local`, id * 7919);
      names.set(id, name);
      return encode(newMessage({ id, rd: true, question: [{ name, type: Type.A, class: 1 }] }));
    });
    const got = await burst(4, port4, packets, 500);
    expect(got.size).toBe(500);
    for (const [id, r] of got) {
      expect(r.question[0]!.name).toBe(names.get(id));
      expect(r.answer.map((a) => a.data)).toEqual([`10.96.1.${(id % N_SERVICES) + 1}`]);
      expect(r.answer[0]!.name).toBe(names.get(id));
    }
  });

  it.skipIf(skip)('sends answers that waited on an upstream back to their own clients', async () => {
    const packets = Array.from({ length: 60 }, (_, id) => encode(newMessage({ id: 1000 + id, rd: true, question: [{ name: `host-${id}.example.test`, type: Type.A, class: 1 }] })));
    const got = await burst(4, port4, packets, 60);
    expect(got.size).toBe(60);
    for (const [id, r] of got) {
      expect(r.rcode).toBe(Rcode.NOERROR);
      expect(r.question[0]!.name).toBe(`host-${id - 1000}.example.test`);
      expect(r.answer.map((a) => a.data)).toEqual([`192.0.2.${id - 1000 + 1}`]);
    }
  });

  it.skipIf(skip || !v6)('answers over IPv6 on ::1', async () => {
    const q = encode(newMessage({ id: 4242, rd: true, question: [{ name: 'SVC-3.default.svc.cluster.local', type: Type.A, class: 1 }] }));
    const got = await burst(6, port6, [q], 1);
    expect(got.get(4242)?.answer.map((a) => a.data)).toEqual(['10.96.1.4']);
    expect(got.get(4242)?.question[0]!.name).toBe('SVC-3.default.svc.cluster.local');
  });

  it.skipIf(skip)('survives malformed datagrams: drops runts and responses, FORMERR for a broken body, still answers', async () => {
    const good = encode(newMessage({ id: 7, rd: true, question: [{ name: 'svc-1.default.svc.cluster.local', type: Type.A, class: 1 }] }));
    const r = rng(42);
    const junk: Buffer[] = [Buffer.alloc(0), Buffer.alloc(3), Buffer.alloc(11, 0xff), Buffer.alloc(6000, 0x41)];
    for (let i = 0; i < 300; i++) {
      const m = mutate(good, r);
      if (m.length >= 2) m.writeUInt16BE(10_000 + i, 0); // ids apart from the probes below
      junk.push(m);
    }
    const response = Buffer.from(good);
    response.writeUInt16BE(8, 0);
    response[2]! |= 0x80; // QR: a response, never answered (reflection loops)
    const broken = Buffer.from(good.subarray(0, 20));
    broken.writeUInt16BE(9, 0);
    const probe = Buffer.from(good);
    probe.writeUInt16BE(11, 0);
    // Datagrams are handled in order, so once the last probe is answered everything before it was seen.
    const got = await burst(4, port4, [...junk, response, broken, probe], (g) => g.has(11));
    expect(got.has(8)).toBe(false);
    expect(got.get(9)?.rcode).toBe(Rcode.FORMERR);
    expect(got.get(11)?.answer.map((a) => a.data)).toEqual(['10.96.1.2']);
    // And the socket still serves afterwards.
    const again = await burst(4, port4, [good], 1);
    expect(again.get(7)?.answer.map((a) => a.data)).toEqual(['10.96.1.2']);
  });

  it.skipIf(skip)('close() frees the UDP and TCP port at once', async () => {
    const l = new DnsListener(runtime.handler);
    const { port } = await l.listen('127.0.0.1', 0, { udp: backend });
    await l.close();
    const u = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      u.once('error', reject);
      u.bind({ port, address: '127.0.0.1', exclusive: true }, () => resolve());
    });
    const t = net.createServer();
    await new Promise<void>((resolve, reject) => {
      t.once('error', reject);
      t.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((r) => u.close(() => r()));
    await new Promise<void>((r) => t.close(() => r()));
  });
});

describe.skipIf(nativeSkip)('native SO_REUSEPORT group', () => {
  it('spreads one client\'s datagrams over the group, where the kernel hash would pin them to one socket', async () => {
    const addon = loadUdpBatch().addon!;
    const counts = [0, 0];
    const meta = [new Int32Array(64 * addon.META_WORDS), new Int32Array(64 * addon.META_WORDS)];
    const a = addon.open('127.0.0.1', 0, 2, 1 << 20);
    const port = addon.port(a);
    const b = addon.open('127.0.0.1', port, 2, 1 << 20);
    try {
      // Each datagram is read from its slot of the socket's data Buffer, where the meta table points.
      const seen = new Set<number>();
      const data = [Buffer.alloc(64 * addon.SLOT), Buffer.alloc(64 * addon.SLOT)];
      const onBatch = (k: number) => (n: number) => {
        counts[k]! += n;
        for (let i = 0; i < n; i++) {
          const off = meta[k]![i * addon.META_WORDS]!;
          if (meta[k]![i * addon.META_WORDS + 1] === 4) seen.add(data[k]!.readUInt16BE(off));
        }
      };
      addon.start(a, meta[0]!, data[0]!, onBatch(0));
      addon.start(b, meta[1]!, data[1]!, onBatch(1));
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      for (let i = 0; i < 400; i++) sock.send(Buffer.from([i >> 8, i & 255, 0, 0]), port, '127.0.0.1');
      const until = Date.now() + 5000;
      while (counts[0]! + counts[1]! < 400 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      sock.close();
      expect(counts[0]! + counts[1]!).toBe(400);
      expect(seen.size).toBe(400);
      // Random per datagram: each socket gets about half (binomial, 400 draws: below 100 is ~1e-24).
      expect(Math.min(counts[0]!, counts[1]!)).toBeGreaterThan(100);
    } finally {
      addon.close(a);
      addon.close(b);
    }
  });
});

