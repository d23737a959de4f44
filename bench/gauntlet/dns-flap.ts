// Scenario 5: upstream DNS flapping. Two real dnsmasq upstreams on the host end of the node's veth
// serve a zone with a short TTL; a client asks the agent for its names at a steady rate while the
// upstreams are stopped and started: first one at a time (failover must hide it), then both at
// once (only the cache / serve-stale can answer). Counted: unanswered or wrong queries per phase,
// and the agent's RSS before and after (a pile-up of pending queries would show as growth).
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { query, startCluster, type Cluster } from './cluster.js';
import { PREFIX, progress, round, rssMb, sleep, until } from './support.js';

const P = `${PREFIX}-df`;
const log = (m: string): void => progress('dns-flap', m);
const NAMES = Array.from({ length: 20 }, (_, i) => `h${i}.flap.test`);
const PORTS = [5391, 5392];

export interface FlapResult {
  dns_flap_failed_one_down: number;
  dns_flap_failed_both_down: number;
  dns_flap_queries: number;
  dns_flap_rss_growth_mb: number;
}

function dnsmasq(c: Cluster, port: number): ChildProcess {
  const hosts = join(c.dir, 'flap-hosts');
  writeFileSync(hosts, NAMES.map((n, i) => `10.77.0.${i + 1} ${n}`).join('\n') + '\n');
  return spawn('dnsmasq', ['-k', '--no-resolv', '--no-hosts', `--addn-hosts=${hosts}`, `--listen-address=${c.hostIP}`, '--bind-interfaces', `--port=${port}`, '--user=root', '--pid-file', '--local-ttl=3', '--log-facility=-'], { stdio: 'ignore' });
}

export async function runDnsFlap(): Promise<FlapResult> {
  // Both upstreams are on the host end of the veth; dns.upstreams replaces resolv.conf.
  // serveStale as an operator who wants answers through an upstream outage sets it (CoreDNS serve_stale).
  const c = await startCluster(P, 245, { upstreams: PORTS.map((p) => `192.168.245.1:${p}`), serveStale: true });
  const ups: (ChildProcess | undefined)[] = PORTS.map((p) => dnsmasq(c, p));
  const stopUp = async (i: number): Promise<void> => {
    const p = ups[i];
    ups[i] = undefined;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  };
  let phase = 'warm';
  const failed = new Map<string, number>();
  let sent = 0;
  let running = true;
  try {
    await until('flap.test answers through the agent', async () => ((await query(c.nodeIP, NAMES[0]!))?.addresses[0] === '10.77.0.1' ? true : undefined), 20_000, 200);
    const rss0 = rssMb(c.agent.proc.pid!);
    const client = (async () => {
      let i = 0;
      while (running) {
        const k = i++ % NAMES.length;
        sent++;
        const a = await query(c.nodeIP, NAMES[k]!, 'A', 2000);
        if (a?.addresses[0] !== `10.77.0.${k + 1}`) failed.set(phase, (failed.get(phase) ?? 0) + 1);
        await sleep(20);
      }
    })();
    for (let round = 0; round < 3; round++) {
      for (const i of [0, 1]) {
        phase = 'one-down';
        await stopUp(i);
        await sleep(5000);
        ups[i] = dnsmasq(c, PORTS[i]!);
        phase = 'recover';
        await sleep(2000);
      }
    }
    phase = 'both-down';
    await stopUp(0);
    await stopUp(1);
    await sleep(8000);
    phase = 'recover';
    ups[0] = dnsmasq(c, PORTS[0]!);
    ups[1] = dnsmasq(c, PORTS[1]!);
    await sleep(3000);
    running = false;
    await client;
    const rss1 = rssMb(c.agent.proc.pid!);
    log(`${sent} queries; failed by phase ${JSON.stringify(Object.fromEntries(failed))}; agent rss ${rss0.toFixed(1)} -> ${rss1.toFixed(1)} MiB; agent ${c.agent.proc.exitCode === null ? 'alive' : 'DIED'}`);
    return {
      dns_flap_failed_one_down: (failed.get('one-down') ?? 0) + (failed.get('recover') ?? 0),
      dns_flap_failed_both_down: failed.get('both-down') ?? 0,
      dns_flap_queries: sent,
      dns_flap_rss_growth_mb: round(rss1 - rss0, 1),
    };
  } finally {
    running = false;
    await stopUp(0);
    await stopUp(1);
    await c.close();
  }
}
