// `npm run bench -- dns [--seconds N] [--rounds N] [--workers N] [--names N] [--udp auto|native|dgram]`: dnsperf against skiff, unbound,
// dnsmasq and Knot DNS (when knotd is installed: `apt-get install knot`) serving the same Service
// names as local data, one after another in the same run, all on 127.0.0.x ports; then p99 latency
// at full load and at half of skiff's best rate (skiff and unbound at that same rate). The last
// stdout line is the JSON summary.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { MemoryCache } from '../common/watch/store.js';
import type { ServiceInfo } from '../common/types.js';
import { cacheWith, service } from '../dns/testing/fixtures.js';
import { startDns, startDnsmasq, startKnot, startUnbound } from '../dns/testing/harness.js';
import { resolveUdpBackend } from '../dns/server/native-udp.js';

const execFileP = promisify(execFile);

interface PerfResult {
  qps: number;
  avgMs: number;
  lost: number;
  /** Server CPU (user + system, all its processes) per answered query, in µs. */
  cpuUs: number;
}

let clockTicks = 100;

/** CPU time of the given processes so far, in clock ticks (utime + stime from /proc). */
export function cpuTicks(pids: readonly number[]): number {
  let t = 0;
  for (const pid of pids) {
    try {
      // Fields after the parenthesised command name; utime and stime are the 14th and 15th overall.
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      t += Number(f[11]) + Number(f[12]);
    } catch {
      /* exited */
    }
  }
  return t;
}

function say(s: string): void {
  process.stderr.write(`${s}\n`);
}

async function dnsperf(address: string, port: number, file: string, seconds: number, pids: () => readonly number[]): Promise<PerfResult> {
  const before = cpuTicks(pids());
  const { stdout } = await execFileP('dnsperf', ['-s', address, '-p', String(port), '-d', file, '-l', String(seconds), '-q', '200', '-c', '4', '-T', '1', '-t', '2'], { maxBuffer: 16 << 20 });
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0);
  const avg = Number(/Average Latency \(s\):\s+([\d.]+)/.exec(stdout)?.[1] ?? 0);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  const done = Number(/Queries completed:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  const cpuUs = done > 0 ? ((cpuTicks(pids()) - before) * 1e6) / clockTicks / done : 0;
  return { qps, avgMs: avg * 1000, lost, cpuUs };
}

/**
 * p50 and p99 latency (ms) from dnsperf's per-query verbose lines, at full load or at `rate` queries per second.
 * The lines go to a file and are read afterwards: parsing them while the run lasts would take CPU
 * from skiff, which may be this very process.
 */
async function latency(address: string, port: number, file: string, seconds: number, rate?: number): Promise<{ p50: number; p99: number }> {
  const out = `${file}.verbose`;
  const fd = openSync(out, 'w');
  try {
    await new Promise<void>((resolve, reject) => {
      const p = spawn('dnsperf', ['-s', address, '-p', String(port), '-d', file, '-l', String(seconds), '-q', '200', '-c', '4', '-T', '1', '-v', ...(rate ? ['-Q', String(rate)] : [])], { stdio: ['ignore', fd, 'ignore'] });
      p.on('error', reject);
      p.on('close', () => resolve());
    });
  } finally {
    closeSync(fd);
  }
  const lat: number[] = [];
  for (const l of readFileSync(out, 'utf8').split('\n')) {
    const m = /^> \S+ .* ([\d.]+)$/.exec(l);
    if (m) lat.push(Number(m[1]));
  }
  rmSync(out, { force: true });
  lat.sort((a, b) => a - b);
  const at = (q: number): number => (lat.length ? lat[Math.floor(lat.length * q)]! * 1000 : 0);
  return { p50: at(0.5), p99: at(0.99) };
}

function names(n: number): { services: ServiceInfo[]; records: string[] } {
  const services: ServiceInfo[] = [];
  const records: string[] = [];
  for (let i = 0; i < n; i++) {
    const ns = `ns-${i % 100}`;
    const ip = `10.96.${Math.floor(i / 250)}.${(i % 250) + 1}`;
    services.push(service(ns, `svc-${i}`, { clusterIPs: [ip] }));
    records.push(`svc-${i}.${ns}.svc.cluster.local A ${ip}`);
  }
  return { services, records };
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      seconds: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' },
      /** dns.workers: threads of this process (the agent's default, 1), or 0 for the main thread. */
      workers: { type: 'string', default: '1' },
      names: { type: 'string', default: '10000' },
      /** dns.udpBackend for skiff: the batched addon, Node's dgram, or the addon when built. */
      udp: { type: 'string', default: 'auto' },
    },
  });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const n = Number(values.names);
  const udp = values.udp as 'auto' | 'native' | 'dgram';
  if (!['auto', 'native', 'dgram'].includes(udp)) throw new Error(`--udp must be auto, native or dgram, not ${udp}`);
  const { services, records } = names(n);
  const dir = mkdtempSync(join(tmpdir(), 'skiffdns-bench-'));
  const queries = join(dir, 'queries');
  writeFileSync(queries, records.map((r) => `${r.split(' ')[0]} A`).join('\n') + '\n');
  const extQueries = join(dir, 'ext-queries');
  writeFileSync(extQueries, records.slice(0, 1000).map((r) => `${r.split(' ')[0]!.replace('.svc.cluster.local', '.example.test')} A`).join('\n') + '\n');
  const cleanups: (() => Promise<void>)[] = [];
  try {
    say(`bench dns: ${n} names, ${seconds}s per server and round, best of ${rounds} interleaved rounds`);
    const unbound = await startUnbound(records, { address: '127.0.0.2', zone: 'cluster.local', threads: 2 });
    cleanups.push(unbound.stop);
    const dnsmasq = await startDnsmasq(records, { address: '127.0.0.3' });
    cleanups.push(dnsmasq.stop);
    const knot = knotMissing() ? undefined : await startKnot(records, { address: '127.0.0.7', zone: 'cluster.local' });
    if (knot) cleanups.push(knot.stop);
    else say('bench dns: knotd not found, no Knot figures (apt-get install knot)');
    // An upstream for the cached-forward figure: the same names under example.test.
    const ext = await startUnbound(records.slice(0, 1000).map((r) => r.replace('.svc.cluster.local', '.example.test')), { address: '127.0.0.4' });
    cleanups.push(ext.stop);
    const cache: MemoryCache = cacheWith({ services, namespaces: [...new Set(services.map((s) => s.namespace))] });
    const dns = await startDns(cache, { dnsServiceIPs: ['127.0.0.5'], dns: { workers: Number(values.workers), udpBackend: udp, upstreams: [`127.0.0.4:${ext.port}`], cacheSize: 10_000 } });
    cleanups.push(dns.stop);
    clockTicks = Number((await execFileP('getconf', ['CLK_TCK'])).stdout.trim()) || 100;
    // DNS workers are threads, so skiff's CPU and memory are this process's.
    const skiffPids = (): number[] => [process.pid];
    const only = (pid: number | undefined) => (): number[] => (pid ? [pid] : []);
    await dnsperf('127.0.0.5', dns.port, queries, 1, skiffPids); // warm-up (JIT)
    await dnsperf('127.0.0.5', dns.port, extQueries, 1, skiffPids); // fills the forward cache
    // Other tenants of the machine add noise; interleaving and keeping each server's best round
    // compares the servers under the same conditions. CPU per query is the steadier figure: it
    // does not depend on how much of the machine a server got, only on what each answer cost.
    const echo = await startEcho('127.0.0.6');
    cleanups.push(echo.stop);
    const best = { unbound: 0, dnsmasq: 0, knot: 0, skiff: 0, fwd: 0, echo: 0 };
    const cpu = { unbound: Infinity, dnsmasq: Infinity, knot: Infinity, skiff: Infinity, echo: Infinity };
    for (let r = 0; r < rounds; r++) {
      const u = await dnsperf('127.0.0.2', unbound.port, queries, seconds, only(unbound.pid));
      const d = await dnsperf('127.0.0.3', dnsmasq.port, queries, seconds, only(dnsmasq.pid));
      const kn = knot ? await dnsperf('127.0.0.7', knot.port, queries, seconds, only(knot.pid)) : undefined;
      const k = await dnsperf('127.0.0.5', dns.port, queries, seconds, skiffPids);
      const f = await dnsperf('127.0.0.5', dns.port, extQueries, seconds, skiffPids);
      const e = await dnsperf('127.0.0.6', echo.port, queries, seconds, only(echo.pid));
      best.echo = Math.max(best.echo, e.qps);
      const us = (x: PerfResult): string => `${x.cpuUs.toFixed(1)} µs/q`;
      say(`round ${r + 1}: unbound ${u.qps.toFixed(0)} (${us(u)}, lost ${u.lost}), dnsmasq ${d.qps.toFixed(0)} (${us(d)}, lost ${d.lost}), ${kn ? `knot ${kn.qps.toFixed(0)} (${us(kn)}, lost ${kn.lost}), ` : ''}skiff ${k.qps.toFixed(0)} (${us(k)}, lost ${k.lost}, avg ${k.avgMs.toFixed(2)} ms), skiff cached forward ${f.qps.toFixed(0)} (lost ${f.lost}), bare node echo ${e.qps.toFixed(0)} (${us(e)})`);
      best.unbound = Math.max(best.unbound, u.qps);
      best.dnsmasq = Math.max(best.dnsmasq, d.qps);
      best.skiff = Math.max(best.skiff, k.qps);
      best.fwd = Math.max(best.fwd, f.qps);
      cpu.unbound = Math.min(cpu.unbound, u.cpuUs);
      cpu.dnsmasq = Math.min(cpu.dnsmasq, d.cpuUs);
      if (kn) {
        best.knot = Math.max(best.knot, kn.qps);
        cpu.knot = Math.min(cpu.knot, kn.cpuUs);
      }
      cpu.skiff = Math.min(cpu.skiff, k.cpuUs);
      cpu.echo = Math.min(cpu.echo, e.cpuUs);
    }
    const p = (await latency('127.0.0.5', dns.port, queries, 3)).p99;
    say(`skiff p99 under full load ${p.toFixed(3)} ms`);
    // A realistic load: half of skiff's best rate, the same rate offered to unbound.
    const half = Math.round(best.skiff / 2);
    const sHalf = await latency('127.0.0.5', dns.port, queries, seconds, half);
    const uHalf = await latency('127.0.0.2', unbound.port, queries, seconds, half);
    say(`p50 / p99 at ${half} qps (half of skiff's best): skiff ${sHalf.p50.toFixed(3)} / ${sHalf.p99.toFixed(3)} ms, unbound ${uHalf.p50.toFixed(3)} / ${uHalf.p99.toFixed(3)} ms`);
    const rss = rssMb();
    await dns.stop();
    const s = { qps: best.skiff };
    const u = { qps: best.unbound };
    const d = { qps: best.dnsmasq };
    const f = { qps: best.fwd };
    const out = {
      bench: 'dns',
      names: n,
      udp_backend: resolveUdpBackend(udp).backend,
      skiff_qps: Math.round(s.qps),
      unbound_qps: Math.round(u.qps),
      dnsmasq_qps: Math.round(d.qps),
      ...(knot ? { knot_qps: Math.round(best.knot) } : {}),
      qps_ratio_unbound: Number((s.qps / u.qps).toFixed(3)),
      skiff_p99_ms: Number(p.toFixed(3)),
      half_load_qps: half,
      skiff_p99_ms_half_load: Number(sHalf.p99.toFixed(3)),
      unbound_p99_ms_half_load: Number(uHalf.p99.toFixed(3)),
      skiff_p50_ms_half_load: Number(sHalf.p50.toFixed(3)),
      unbound_p50_ms_half_load: Number(uHalf.p50.toFixed(3)),
      cached_forward_qps: Math.round(f.qps),
      /** Reference: a Node UDP socket that only echoes the query back, the ceiling for one process. */
      node_echo_qps: Math.round(best.echo),
      /** Server CPU per answered query at full load (best round), µs: lower is cheaper. */
      skiff_cpu_us_per_q: Number(cpu.skiff.toFixed(2)),
      unbound_cpu_us_per_q: Number(cpu.unbound.toFixed(2)),
      dnsmasq_cpu_us_per_q: Number(cpu.dnsmasq.toFixed(2)),
      ...(knot ? { knot_cpu_us_per_q: Number(cpu.knot.toFixed(2)) } : {}),
      node_echo_cpu_us_per_q: Number(cpu.echo.toFixed(2)),
      rss_mb: rss,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

function knotMissing(): boolean {
  try {
    execFileSync('knotd', ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
}

/** A bare Node dgram server turning each query into a reply byte-for-byte: the per-packet floor. */
async function startEcho(address: string): Promise<{ port: number; pid: number | undefined; stop: () => Promise<void> }> {
  const src = `const d=require('node:dgram');const s=d.createSocket({type:'udp4',lookup:(a,o,cb)=>cb(null,a,4)});s.on('message',(m,r)=>{m[2]|=0x80;s.send(m,r.port,r.address)});s.bind(0,'${address}',()=>console.log(s.address().port));`;
  const p = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise<number>((resolve) => p.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  return {
    port,
    pid: p.pid,
    stop: async () => {
      p.kill('SIGKILL');
    },
  };
}

/** RSS of this process, DNS threads included. */
function rssMb(): number {
  return Math.round(process.memoryUsage().rss / (1 << 20));
}
