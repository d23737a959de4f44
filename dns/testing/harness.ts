// Real-socket fixtures for tests and the bench: the component on 127.0.0.1 with a free port, dig,
// and unbound/dnsmasq upstreams serving a local zone on other loopback ports.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { parseConfig, type ConfigInput } from '../../common/config.js';
import { Health } from '../../common/health.js';
import type { WatchCache } from '../../common/watch/store.js';
import { createDns, type DnsOptions } from '../index.js';
import { freePort } from '../../test/support/ports.js';

export { freePort };

const execFileP = promisify(execFile);

export interface RunningDns {
  readonly port: number;
  readonly health: Health;
  stop(): Promise<void>;
}

export async function startDns(cache: WatchCache, input: Partial<ConfigInput> = {}, opts: DnsOptions = {}): Promise<RunningDns> {
  const config = parseConfig({ nodeName: 'node-a', dnsServiceIPs: ['127.0.0.1'], ...input, dns: { healthPort: 0, readyPort: 0, workers: 0, upstreams: ['127.0.0.1:9'], ...input.dns } });
  const health = new Health();
  const log = pino({ level: process.env.SKIFF_TEST_LOG ?? 'silent' });
  const comp = createDns({ config, cache, log, health, api: { patchNodeAnnotations: async () => undefined, patchNodeCondition: async () => undefined } }, { nodeLocal: false, lameduckMs: 0, port: 0, ...opts, onListening: (b) => bound(b) });
  const ac = new AbortController();
  let bound!: (b: readonly { port: number }[]) => void;
  const ready = new Promise<readonly { port: number }[]>((r) => (bound = r));
  const done = comp.run(ac.signal);
  const b = await Promise.race([ready, done.then(() => Promise.reject(new Error('dns exited early')))]);
  return {
    port: b[0]!.port,
    health,
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

export interface DigResult {
  status: string;
  flags: string[];
  answer: string[];
  raw: string;
}

/** Runs dig against 127.0.0.1:port and parses status, flags and answer lines. */
export async function dig(port: number, args: readonly string[]): Promise<DigResult> {
  const { stdout } = await execFileP('dig', ['@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', '+noall', '+comments', '+answer', ...args]);
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? 'NONE';
  const flags = (/;; flags: ([^;]*);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/);
  const answer = stdout
    .split('\n')
    .filter((l) => l && !l.startsWith(';'))
    .map((l) => l.replace(/\s+/g, ' ').trim());
  return { status, flags, answer, raw: stdout };
}


export interface Upstream {
  readonly port: number;
  readonly address: string;
  /** The server process, for the bench's CPU accounting. */
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

async function waitUdp(address: string, port: number, probe: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      const { stdout } = await execFileP('dig', [`@${address}`, '-p', String(port), '+time=1', '+tries=1', '+short', probe, 'A']);
      if (stdout.trim()) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`upstream on ${address}:${port} did not come up`);
}

function stopProc(p: ChildProcess, dir: string): () => Promise<void> {
  return async () => {
    if (p.exitCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 2000))]);
      if (p.exitCode === null) p.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
}

/** unbound serving `records` ("name A ip" zone lines) under a static local zone; first record is the readiness probe. */
export async function startUnbound(records: readonly string[], o: { address?: string; ttl?: number; zone?: string; threads?: number } = {}): Promise<Upstream> {
  const address = o.address ?? '127.0.0.1';
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'skiffdns-unbound-'));
  const zone = o.zone ?? 'example.test';
  const conf = [
    'server:',
    `  interface: ${address}@${port}`,
    '  do-daemonize: no',
    '  username: ""',
    '  chroot: ""',
    `  directory: "${dir}"`,
    '  pidfile: ""',
    '  use-syslog: no',
    '  logfile: ""',
    '  verbosity: 0',
    `  num-threads: ${o.threads ?? 1}`,
    '  access-control: 127.0.0.0/8 allow',
    '  do-ip6: no',
    '  module-config: "iterator"',
    '  minimal-responses: yes',
    `  local-zone: "${zone}." static`,
    ...records.map((r) => `  local-data: "${r.split(' ')[0]} ${o.ttl ?? 300} IN ${r.split(' ').slice(1).join(' ')}"`),
    'remote-control:',
    '  control-enable: no',
    '',
  ].join('\n');
  writeFileSync(join(dir, 'unbound.conf'), conf);
  const p = spawn('unbound', ['-d', '-c', join(dir, 'unbound.conf')], { stdio: 'ignore' });
  await waitUdp(address, port, records[0]!.split(' ')[0]!);
  return { port, address, pid: p.pid, stop: stopProc(p, dir) };
}

/** dnsmasq answering `records` ("name A ip") from a hosts file, no upstream. */
export async function startDnsmasq(records: readonly string[], o: { address?: string; ttl?: number } = {}): Promise<Upstream> {
  const address = o.address ?? '127.0.0.1';
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'skiffdns-dnsmasq-'));
  writeFileSync(join(dir, 'hosts'), records.map((r) => `${r.split(' ')[2]} ${r.split(' ')[0]}`).join('\n') + '\n');
  const p = spawn(
    'dnsmasq',
    ['-k', '--no-resolv', '--no-hosts', `--addn-hosts=${join(dir, 'hosts')}`, `--listen-address=${address}`, '--bind-interfaces', `--port=${port}`, '--user=root', '--pid-file', `--local-ttl=${o.ttl ?? 300}`, '--cache-size=10000', '--log-facility=-', '--quiet-dhcp'],
    { stdio: 'ignore' },
  );
  await waitUdp(address, port, records[0]!.split(' ')[0]!);
  return { port, address, pid: p.pid, stop: stopProc(p, dir) };
}

/**
 * Knot DNS (authoritative) serving `records` ("name A ip") as one zone file, one UDP worker: the
 * fastest authoritative server in Debian, the anchor for what skiff does for its own zone.
 */
export async function startKnot(records: readonly string[], o: { address?: string; ttl?: number; zone?: string } = {}): Promise<Upstream> {
  const address = o.address ?? '127.0.0.1';
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'skiffdns-knot-'));
  const zone = o.zone ?? 'cluster.local';
  const ttl = o.ttl ?? 300;
  const zoneText = [
    `$ORIGIN ${zone}.`,
    `$TTL ${ttl}`,
    `@ SOA ns.${zone}. hostmaster.${zone}. 1 3600 600 86400 ${ttl}`,
    '@ NS ns',
    `ns A ${address}`,
    ...records.map((r) => {
      const [name, type, ...data] = r.split(' ');
      return `${name}. ${type} ${data.join(' ')}`;
    }),
    '',
  ].join('\n');
  writeFileSync(join(dir, `${zone}.zone`), zoneText);
  const conf = [
    'server:',
    `  rundir: "${dir}"`,
    `  listen: ${address}@${port}`,
    '  udp-workers: 1',
    '  tcp-workers: 1',
    '  background-workers: 1',
    'log:',
    '  - target: stderr',
    '    any: error',
    'database:',
    `  storage: "${dir}"`,
    'template:',
    '  - id: default',
    `    storage: "${dir}"`,
    '    file: "%s.zone"',
    '    journal-content: none',
    '    zonefile-sync: -1',
    'zone:',
    `  - domain: ${zone}`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'knot.conf'), conf);
  const p = spawn('knotd', ['-c', join(dir, 'knot.conf')], { stdio: 'ignore' });
  await waitUdp(address, port, records[0]!.split(' ')[0]!);
  return { port, address, pid: p.pid, stop: stopProc(p, dir) };
}

/** One UDP query from a chosen loopback source address; resolves with the decoded reply. */
export async function udpQuery(src: string, port: number, name: string, type: number): Promise<import('../wire/types.js').Message> {
  const { encode } = await import('../wire/encode.js');
  const { decode } = await import('../wire/decode.js');
  const { newMessage } = await import('../wire/types.js');
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, src, () => r()));
  try {
    const id = Math.floor(Math.random() * 65536);
    const q = encode(newMessage({ id, rd: true, question: [{ name, type, class: 1 }] }));
    return await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer for ${name}`)), 3000);
      sock.on('message', (m) => {
        const r = decode(m);
        if (r.id !== id) return;
        clearTimeout(t);
        resolve(r);
      });
      sock.send(q, port, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
}

/**
 * A glibc-like stub with `search <ns>.svc.<zone> svc.<zone> <zone>` and ndots:5 resolving A and
 * AAAA for `name`; returns the number of queries it had to send and whether it got an address.
 */
export async function stubLookup(src: string, port: number, name: string, ns = 'default', zone = 'cluster.local'): Promise<{ queries: number; found: boolean }> {
  const search = [`${ns}.svc.${zone}`, `svc.${zone}`, zone];
  const dots = name.split('.').length - 1;
  const candidates = dots >= 5 ? [name, ...search.map((s) => `${name}.${s}`)] : [...search.map((s) => `${name}.${s}`), name];
  let queries = 0;
  let found = false;
  for (const type of [1, 28]) {
    for (const c of candidates) {
      queries++;
      const r = await udpQuery(src, port, c, type);
      if (r.rcode === 0 && r.answer.length > 0) {
        found = true;
        break;
      }
    }
  }
  return { queries, found };
}
