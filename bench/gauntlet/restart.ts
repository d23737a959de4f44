// Scenario 1: steady HTTP through a ClusterIP and DNS queries from a pod while the node's agent is
// SIGKILLed and restarted 5 times, then rolled with SIGTERM 5 times. The datapath lives in the
// kernel (nft rules, routes, veths), so traffic must not notice an agent restart. DNS is served by
// the agent itself; while it is down the node's skiff-dns table hands pods' queries to the other
// node's agent (dns/README.md). The client retries like a resolver (3 tries, 2 s apart) and a query
// counts as failed only when every try went unanswered. Pods, Service and the restarted agent
// share node-0; node-1 is the DNS fallback peer.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { projectRoot } from '../../common/self.js';
import { addNetns } from '../../test/support/netns.js';
import { NODE, sliceObject, startCluster, type Cluster } from './cluster.js';
import { getInNs, PREFIX, progress, sleep } from './support.js';

const P = `${PREFIX}-rs`;
const log = (m: string): void => progress('restart', m);

export interface RestartResult {
  restart_failed_requests: number;
  restart_failed_queries: number;
  restart_requests: number;
  restart_queries: number;
  restart_queries_by_peer: number;
}

export function addPod(c: Cluster, ns: string, id: string, conf: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const pod = c.api.store.create('pods', { metadata: { name: id, namespace: 'default' }, spec: { nodeName: NODE, containers: [{ name: 'c', image: 'x' }] } });
    const uid = (pod.metadata as { uid: string }).uid;
    const p = spawn('ip', ['netns', 'exec', c.ns, join(projectRoot, 'dist', 'bin', 'skiff-cni')], {
      env: {
        PATH: process.env.PATH!, SKIFF_CNI_SOCKET: join(c.dir, 'run', 'cni.sock'), CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: `/var/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni',
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${id};K8S_POD_UID=${uid}`,
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('close', (code) => (code === 0 ? resolve((JSON.parse(out) as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!) : reject(new Error(`ADD ${id}: ${out}`))));
    p.stdin.on('error', () => undefined); // a child that exits unread reports through its exit code
    p.stdin.end(conf);
  });
}

/** A shell loop in the pod printing one result per line; counted as it streams. */
export function loop(ns: string, script: string, onLine: (l: string) => void): ChildProcess {
  const p = spawn('ip', ['netns', 'exec', ns, 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  createInterface({ input: p.stdout! }).on('line', onLine);
  return p;
}

/** Debug aid (SKIFFG_TRACE=1): nft changes in the node for 8 s, with times, on stderr. */
function monitor(c: Cluster, tag: string): void {
  const t0 = performance.now();
  const p = spawn('ip', ['netns', 'exec', c.ns, 'nft', 'monitor', 'tables', 'chains'], { stdio: ['ignore', 'pipe', 'ignore'] });
  createInterface({ input: p.stdout! }).on('line', (l) => process.stderr.write(`[trace ${tag} +${Math.round(performance.now() - t0)}ms] ${l.slice(0, 120)}\n`));
  setTimeout(() => p.kill('SIGKILL'), 8000);
}

/** DNS requests node-1's agent served: only node-0's fallback sends it any. */
async function peerRequests(c: Cluster): Promise<number> {
  const text = await getInNs(c.peer!.ns, 'http://127.0.0.1:10249/metrics');
  let n = 0;
  for (const line of text.split('\n')) if (line.startsWith('coredns_dns_requests_total{')) n += Number(line.split(' ').at(-1));
  return n;
}

export async function runRestart(kills: number, rolls: number): Promise<RestartResult> {
  const c = await startCluster(P, 246, {}, { peer: { hostSubnet: 244, linkSubnet: 243 } });
  const procs: ChildProcess[] = [];
  try {
    const list = JSON.parse(readFileSync(join(c.dir, 'net.d', '10-skiff.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
    const conf = JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] });
    const ips: string[] = [];
    for (const i of [0, 1]) {
      const ns = `${P}-s${i}`;
      await addNetns(ns);
      ips.push(await addPod(c, ns, `server${i}`, conf));
      // python's threading server: a socat fork-per-connection server answered some requests with
      // nothing at all under load (curl exit 52), which measured the test server, not skiff.
      procs.push(spawn('ip', ['netns', 'exec', ns, 'python3', '-m', 'http.server', '8080', '--bind', '0.0.0.0', '--directory', join(c.dir, 'net.d')], { stdio: 'ignore' }));
    }
    const client = `${P}-c0`;
    await addNetns(client);
    await addPod(c, client, 'client', conf);
    c.api.store.update('endpointslices', { ...sliceObject('web', ips), metadata: { name: 'web-x', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } } });
    const http = { ok: 0, failed: 0 };
    const dns = { ok: 0, failed: 0 };
    let counting = false;
    const samples = new Map<string, number>();
    const sample = (kind: string, l: string): void => void samples.set(`${kind}:${l.slice(0, 80)}`, (samples.get(`${kind}:${l.slice(0, 80)}`) ?? 0) + 1);
    procs.push(
      loop(client, 'while :; do curl -s -o /dev/null -w "%{http_code} %{exitcode} %{time_connect}\\n" --max-time 5 http://10.96.0.20/ || true; sleep 0.05; done', (l) => {
        if (!counting) return;
        if (l.startsWith('200 ')) http.ok++;
        else {
          http.failed++;
          if (process.env.SKIFFG_TRACE) process.stderr.write(`[trace http fail at ${Math.round(performance.now())}]\n`);
          sample('http', l);
        }
      }),
      loop(client, 'while :; do echo "r=$(dig @10.96.0.10 +time=2 +tries=3 +short web.default.svc.cluster.local A 2>&1 | xargs)"; sleep 0.1; done', (l) => {
        if (!counting) return;
        // A try that timed out before a later one answered is a success: that is what retries are for.
        if (/(^r=| )10\.96\.0\.20$/.test(l.trim())) dns.ok++;
        else {
          dns.failed++;
          sample('dns', l);
        }
      }),
    );
    // Warm-up: both loops must succeed before anything is counted.
    const warm = { ...http };
    for (let i = 0; i < 100 && (http.ok === warm.ok || dns.ok === 0); i++) {
      counting = true;
      await sleep(200);
      if (http.failed || dns.failed) {
        http.ok = http.failed = dns.ok = dns.failed = 0;
      }
    }
    if (http.ok === 0 || dns.ok === 0) throw new Error(`no steady traffic before the restarts: http ${JSON.stringify(http)} dns ${JSON.stringify(dns)}`);
    http.ok = http.failed = dns.ok = dns.failed = 0;
    log(`steady load running (servers ${ips.join(', ')}); restarting the agent`);
    for (let i = 0; i < kills + rolls; i++) {
      const sig = i < kills ? 'SIGKILL' : 'SIGTERM';
      const t = performance.now();
      if (process.env.SKIFFG_TRACE) process.stderr.write(`[trace restart at ${Math.round(t)}]\n`);
      if (process.env.SKIFFG_TRACE) monitor(c, `${sig}-${i}`);
      await c.restartAgent(sig);
      log(`${sig} #${i < kills ? i + 1 : i - kills + 1}: ready again in ${Math.round(performance.now() - t)} ms; http ${http.ok}/${http.failed} dns ${dns.ok}/${dns.failed} (ok/failed)`);
      await sleep(2000);
    }
    await sleep(3000);
    counting = false;
    log(`failure kinds: ${JSON.stringify(Object.fromEntries(samples))}`);
    const byPeer = await peerRequests(c);
    log(`done: http ${http.failed} failed of ${http.ok + http.failed}; dns ${dns.failed} failed of ${dns.ok + dns.failed}; ${byPeer} DNS requests answered by ${c.peer!.ns} (fallback)`);
    return {
      restart_failed_requests: http.failed,
      restart_failed_queries: dns.failed,
      restart_requests: http.ok + http.failed,
      restart_queries: dns.ok + dns.failed,
      restart_queries_by_peer: byPeer,
    };
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await c.close();
  }
}
