// `npm run bench -- dns-udp [--seconds N] [--rounds N] [--configs native:1,dgram:1,native:2,dgram:2]`:
// skiff alone under dnsperf, per UDP backend and worker count, interleaved so each pair sees the same
// machine. Reports qps and the server's CPU (user + system, all its processes) per answered query;
// the last stdout line is the JSON summary (best round per configuration).
import cluster from 'node:cluster';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { cacheWith, service } from '../dns/testing/fixtures.js';
import { startDns } from '../dns/testing/harness.js';
import { cpuTicks } from './dns.js';

const execFileP = promisify(execFile);
const ADDRESS = '127.0.0.8';

function ticks(): number {
  return cpuTicks([process.pid, ...Object.values(cluster.workers ?? {}).flatMap((w) => (w?.process.pid ? [w.process.pid] : []))]);
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      seconds: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '2' },
      configs: { type: 'string', default: 'native:1,dgram:1,native:2,dgram:2' },
    },
  });
  const configs = values.configs.split(',').map((c) => {
    const [udp, w] = c.split(':');
    if ((udp !== 'native' && udp !== 'dgram') || !(Number(w) >= 1)) throw new Error(`--configs: bad entry ${c} (want native|dgram:workers)`);
    return { name: c, udp: udp as 'native' | 'dgram', workers: Number(w) };
  });
  const clk = Number((await execFileP('getconf', ['CLK_TCK'])).stdout.trim()) || 100;
  const dir = mkdtempSync(join(tmpdir(), 'skiffdns-bench-udp-'));
  const queries = join(dir, 'queries');
  const services = Array.from({ length: 10_000 }, (_, i) => service(`ns-${i % 100}`, `svc-${i}`, { clusterIPs: [`10.96.${Math.floor(i / 250)}.${(i % 250) + 1}`] }));
  writeFileSync(queries, services.map((s) => `${s.name}.${s.namespace}.svc.cluster.local A`).join('\n') + '\n');
  const cache = cacheWith({ services, namespaces: [...new Set(services.map((s) => s.namespace))] });
  const best: Record<string, { qps: number; cpuUs: number }> = {};
  try {
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const c of configs) {
        const dns = await startDns(cache, { dnsServiceIPs: [ADDRESS], dns: { workers: c.workers, udpBackend: c.udp } });
        try {
          const perf = async (s: number): Promise<string> =>
            (await execFileP('dnsperf', ['-s', ADDRESS, '-p', String(dns.port), '-d', queries, '-l', String(s), '-q', '200', '-c', '4', '-T', '1'], { maxBuffer: 16 << 20 })).stdout;
          await perf(2); // warm-up (JIT)
          const t0 = ticks();
          const out = await perf(Number(values.seconds));
          const used = ticks() - t0;
          const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
          const done = Number(/Queries completed:\s+(\d+)/.exec(out)?.[1] ?? 0);
          const cpuUs = done > 0 ? (used * 1e6) / clk / done : Infinity;
          const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
          process.stderr.write(`round ${round + 1} ${c.name}: ${qps.toFixed(0)} qps, ${cpuUs.toFixed(2)} µs/q, lost ${/Queries lost:\s+(\d+)/.exec(out)?.[1]}, load ${load}\n`);
          const b = (best[c.name] ??= { qps: 0, cpuUs: Infinity });
          b.qps = Math.max(b.qps, qps);
          b.cpuUs = Math.min(b.cpuUs, cpuUs);
        } finally {
          await dns.stop();
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const out: Record<string, unknown> = { bench: 'dns-udp' };
  for (const [k, v] of Object.entries(best)) {
    const key = k.replace(':', '_w');
    out[`${key}_qps`] = Math.round(v.qps);
    out[`${key}_cpu_us_per_q`] = Number(v.cpuUs.toFixed(2));
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
