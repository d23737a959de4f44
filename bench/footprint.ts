// What one node's agent costs (issue 16): memory of the whole agent (its process, every child
// process such as the nft session, all their threads) and its CPU while idle, in a 2-node sandbox
// with the demo and at 10,000 and 50,000 Services; DNS latency while the proxy rewrites its whole
// table; memory at the peak of a relist; the proxy's full sync and update latency at 50,000.
// Always the compiled agent (dist/): run `npm run build` first. Root: network namespaces.
// Progress on stderr; the last stdout line is the JSON result.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { AGENT_NODE_FLAGS, projectRoot } from '../common/self.js';
import { releaseHeldSockets } from '../dns/server/handoff.js';
import { FakeStore, startFakeApiServer, type FakeApiServer, type StoreSnapshot } from '../sandbox/apiserver/index.js';
import { cleanupPrefix, inNs } from '../test/support/netns.js';
import { agentConfig, nodeNamespace, sleep, stopAgent, tempDir, until, type AgentProcess } from './gauntlet/support.js';
import { percentile } from './stats.js';

const progress = (msg: string): void => void process.stderr.write(`[bench footprint] ${msg}\n`);
const P = 'skiffg-fp';
const NS = `${P}-n0`;
const HOST_IP = '192.168.239.1';
const NODE_IP = '192.168.239.2';
const SELF = 'node-0';
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** The process and all its descendants (threads share their process's memory, so only processes count). */
function tree(pid: number): number[] {
  const out = [pid];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (kids) for (const k of kids.split(' ')) out.push(...tree(Number(k)));
    }
  } catch {
    /* exited meanwhile */
  }
  return out;
}

/** Resident memory of the whole agent in MiB. */
export function treeRssMb(pid: number): number {
  let kb = 0;
  for (const p of tree(pid)) {
    try {
      kb += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      /* exited meanwhile */
    }
  }
  return kb / 1024;
}

/**
 * The agent process's highest RSS since its start (VmHWM; `ip netns exec` execs node, so the pid
 * is the agent's): the full sync's peak, which sizes the manifest's memory limit. Without the
 * short-lived nft children, which the limit also has to cover (a few MiB each).
 */
function peakRssMb(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
}

/** CPU used by the agent, its live children and the children it has reaped (nft runs), in ms. */
export function treeCpuMs(pid: number): number {
  let ticks = 0;
  for (const p of tree(pid)) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
      // utime stime cutime cstime (fields 14-17; index 11-14 after the command)
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      /* exited meanwhile */
    }
  }
  return ticks * TICK_MS;
}

/** A steady figure: the median of a few samples a second apart (RSS moves with every GC). */
async function steadyRss(pid: number, samples = 5): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < samples; i++) {
    xs.push(treeRssMb(pid));
    await sleep(1000);
  }
  xs.sort((a, b) => a - b);
  return xs[xs.length >> 1]!;
}

async function idleCpuPct(pid: number, seconds: number): Promise<number> {
  const c0 = treeCpuMs(pid);
  const t0 = performance.now();
  await sleep(seconds * 1000);
  return (100 * (treeCpuMs(pid) - c0)) / (performance.now() - t0);
}

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

// ---------------------------------------------------------------------------------------------
// Idle in a 2-node sandbox with the demo, through the compiled CLI as a user would run it.

/**
 * RSS is taken twice: 15 s after the demo's checks (the nft sessions of the last partial syncs
 * still run: common/nft/session.ts keeps `nft -i` 30 s after its last work) and after the CPU
 * window, when the agent has had nothing to do for that long. The second is idle_rss_mb.
 */
async function idleSandbox(name: string, subnet: string, seconds: number): Promise<{ rss: number; settling: number; cpu: number }> {
  const cli = join(projectRoot, 'dist', 'bin', 'skiff.js');
  // The sandbox's agents inherit this environment, so with --heap-dir they write snapshots on SIGUSR2.
  const env = heapDir ? { ...process.env, SKIFF_HEAP_SNAPSHOT_DIR: heapDir } : process.env;
  const run = (args: string[]): string => execFileSync(process.execPath, [cli, 'sandbox', ...args, '--name', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000, env });
  try {
    progress(`sandbox ${name} (${subnet}): 2 nodes with the demo`);
    run(['up', '--subnet', subnet, '--nodes', '2', '--demo', '--wait']);
    const dir = process.env.SKIFF_SANDBOX_DIR ?? join('/var/lib/skiff-sandbox', name);
    const pids = ['node-1', 'node-2'].map((n) => Number(readFileSync(join(dir, n, 'agent.pid'), 'utf8').trim()));
    await sleep(15_000);
    const settling = Math.max(...(await Promise.all(pids.map((p) => steadyRss(p)))));
    progress(`RSS per node 15 s after the demo ${round(settling)} MiB; measuring idle CPU for ${seconds} s`);
    const cpu = Math.max(...(await Promise.all(pids.map((p) => idleCpuPct(p, seconds)))));
    const rss = Math.max(...(await Promise.all(pids.map((p) => steadyRss(p)))));
    progress(`idle RSS per node ${round(rss)} MiB (after ${seconds} s without work)`);
    await heapSnapshotsOf(pids[0]!, join(dir, 'node-1', 'agent.log'), 'idle');
    return { rss, settling, cpu };
  } finally {
    try {
      run(['down']);
    } catch (e) {
      progress(`sandbox down failed: ${(e as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One node namespace with the fake API server on the host end of its veth.

const uid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
const svcIP = (i: number): string => `10.${96 + (i >> 16)}.${((i >> 8) & 255) + 1}.${i & 255}`;
const epIP = (n: number): string => `10.${128 + (n >> 16)}.${(n >> 8) & 255}.${(n & 255) || 1}`;
const svcNs = (i: number): string => `bench-${i % 100}`;

/** Built from a snapshot: tens of thousands of creates through validation would take minutes. */
function seedStore(services: number, perService: number): FakeStore {
  let rv = 1;
  const ts = '2024-01-01T00:00:00Z';
  const nodes = ['node-0', 'node-1'].map((name, i) => ({
    apiVersion: 'v1', kind: 'Node',
    metadata: { name, uid: uid(++rv), resourceVersion: String(rv), creationTimestamp: ts, annotations: i ? { 'skiff.io/vtep-mac': '0a:5a:00:00:00:01', 'skiff.io/public-ip': '100.64.0.1' } : {} },
    spec: { podCIDR: `10.244.${i}.0/24`, podCIDRs: [`10.244.${i}.0/24`] },
    status: { addresses: [{ type: 'InternalIP', address: i ? '100.64.0.1' : NODE_IP }], conditions: [{ type: 'Ready', status: 'True' }] },
  }));
  const svcs: object[] = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system', uid: uid(++rv), resourceVersion: String(rv), creationTimestamp: ts }, spec: { type: 'ClusterIP', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ipFamilies: ['IPv4'], ports: [{ name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' }] } },
  ];
  const slices: object[] = [];
  for (let i = 0; i < services; i++) {
    const ip = svcIP(i);
    svcs.push({
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: `svc-${i}`, namespace: svcNs(i), uid: uid(++rv), resourceVersion: String(rv), creationTimestamp: ts },
      spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ipFamilies: ['IPv4'], ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }], selector: { app: `svc-${i}` } },
    });
    slices.push({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: `svc-${i}-abcde`, namespace: svcNs(i), uid: uid(++rv), resourceVersion: String(rv), creationTimestamp: ts, labels: { 'kubernetes.io/service-name': `svc-${i}` } },
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: Array.from({ length: perService }, (_, e) => {
        const n = i * perService + e;
        return { addresses: [epIP(n)], conditions: { ready: true, serving: true, terminating: false }, nodeName: `node-${n % 2}` };
      }),
    });
  }
  const namespaces = ['default', 'kube-system', ...Array.from({ length: 100 }, (_, i) => `bench-${i}`)].map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, uid: uid(++rv), resourceVersion: String(rv), creationTimestamp: ts } }));
  const snapshot = { objects: { nodes, namespaces, services: svcs, endpointslices: slices }, resourceVersion: rv } as unknown as StoreSnapshot;
  return new FakeStore({ snapshot, compactionWindow: 20_000 });
}

interface Node {
  api: FakeApiServer;
  agent: AgentProcess;
  dir: string;
  configPath: string;
}

/** With --heap-dir: where the agent writes heap snapshots when the bench sends it SIGUSR2. */
let heapDir: string | undefined;
let dnsThreadCount = 1;
/** node's flags for the agent: the image's (AGENT_NODE_FLAGS) unless --node-flags compares others. */
let nodeFlags: readonly string[] = AGENT_NODE_FLAGS;

/** Heap snapshots of the agent's threads (common/heap-dump.ts); bench/heap-summary.ts reads them. */
async function heapSnapshots(n: Node, tag: string): Promise<void> {
  await heapSnapshotsOf(n.agent.proc.pid!, n.agent.logPath, tag);
}

async function heapSnapshotsOf(pid: number, logPath: string, tag: string): Promise<void> {
  if (!heapDir) return;
  const before = new Set(readdirSync(heapDir));
  process.kill(pid, 'SIGUSR2');
  // The agent logs each file once it is complete: the main thread's and one per DNS thread.
  const want = 1 + dnsThreadCount;
  const logged = (): number => readFileSync(logPath, 'utf8').split('heap snapshot written').length - 1;
  const start = logged();
  await until('heap snapshots', () => (logged() - start >= want ? true : undefined), 300_000, 500);
  progress(`${tag}: heap snapshots in ${heapDir}: ${readdirSync(heapDir).filter((f) => !before.has(f)).join(', ')}`);
}

/** The compiled agent (the bench itself may run under tsx): `dist/bin/skiff.js` in the namespace. */
function startCompiledAgent(dir: string, configPath: string): AgentProcess {
  const logPath = join(dir, 'agent.log');
  const env = heapDir ? { ...process.env, SKIFF_HEAP_SNAPSHOT_DIR: heapDir } : process.env;
  const proc = spawn('ip', ['netns', 'exec', NS, process.execPath, ...nodeFlags, join(projectRoot, 'dist', 'bin', 'skiff.js'), 'agent', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const sink = (d: Buffer): void => void writeFileSync(logPath, d, { flag: 'a' });
  proc.stdout!.on('data', sink);
  proc.stderr!.on('data', sink);
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  return { proc, logPath, exited };
}

/**
 * The agent's endpoints listen on the node address, and the bench asks them from the host over its
 * veth: a `curl` forked into the namespace per poll took ~25 ms of CPU each, on the agent's CPUs,
 * 20 times a second while a full sync was timed.
 */
const METRICS_ADDRESS = `${NODE_IP}:10249`;
const HEALTHZ_ADDRESS = `${NODE_IP}:10256`;

async function httpGet(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return text;
}

async function metrics(): Promise<Map<string, number>> {
  const text = await httpGet(`http://${METRICS_ADDRESS}/metrics`);
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

/** metrics() that waits out an agent busy for seconds (the first periodic check at 50,000 Services). */
async function metricsPatient(): Promise<Map<string, number>> {
  return until('the agent metrics', () => metrics().catch(() => undefined), 120_000, 200);
}

async function startNode(store: FakeStore, tag: string, dnsExtra: Record<string, unknown> = {}): Promise<Node> {
  const dir = tempDir(`fp-${tag}`);
  const api = await startFakeApiServer({ host: HOST_IP, port: 0, store, bookmarkIntervalMs: 5000 });
  const kubeconfig = join(dir, 'kubeconfig');
  api.writeKubeconfig(kubeconfig);
  const configPath = agentConfig(dir, SELF, kubeconfig, {
    metricsBindAddress: METRICS_ADDRESS,
    healthzBindAddress: HEALTHZ_ADDRESS,
    clusterCIDRs: ['10.244.0.0/16'],
    serviceCIDRs: ['10.96.0.0/12'],
    dns: { listen: [NODE_IP], allowedSourceCIDRs: [`${HOST_IP}/32`], upstreams: ['127.0.0.1:5399'], ...dnsExtra },
  });
  const agent = startCompiledAgent(dir, configPath);
  const t = performance.now();
  await until(
    'agent ready and the proxy synced',
    async () => {
      if (agent.proc.exitCode !== null) throw new Error(`agent exited with ${agent.proc.exitCode}; log ${agent.logPath}`);
      try {
        const m = await metrics();
        if ((m.get('kubeproxy_sync_full_proxy_rules_duration_seconds_count') ?? 0) === 0) return undefined;
        await httpGet(`http://${HEALTHZ_ADDRESS}/readyz`);
        return true;
      } catch {
        return undefined;
      }
    },
    300_000,
    250,
  );
  progress(`${tag}: agent ready in ${Math.round(performance.now() - t)} ms`);
  return { api, agent, dir, configPath };
}

async function stopNode(n: Node | undefined): Promise<void> {
  if (!n) return;
  await stopAgent(n.agent, 'SIGTERM', 15_000);
  // The next phase starts a new agent with a new runDir in the same namespace: it cannot find
  // this agent's DNS holder to take port 53 over, so the holder must not outlive the phase.
  releaseHeldSockets(join(n.dir, 'run'));
  // A stopped agent leaves its tables for its successor (a restart). The next phase must start
  // on a clean node: a 10,000-Service table left behind made the 50,000 agent replace it in one
  // transaction instead of staging (proxy/README.md), ~170 MiB and ~3.5 s more than alone.
  const cli = join(projectRoot, 'dist', 'bin', 'skiff.js');
  await inNs(NS, process.execPath, [cli, 'agent', '--cleanup', '--config', n.configPath]).catch(async (e: unknown) => {
    progress(`agent --cleanup failed (${(e as Error).message}); flushing the namespace's ruleset`);
    await inNs(NS, 'nft', ['flush', 'ruleset']);
  });
  await n.api.close();
  if (!process.env.SKIFFG_KEEP) rmSync(n.dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// DNS latency while the proxy rewrites its whole table.

const PROBER = `
const dgram = require('dgram');
const [server, rate, names] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
function q(id, name) {
  const labels = name.split('.');
  const parts = [Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l));
  parts.push(Buffer.from([0, 0, 1, 0, 1]));
  return Buffer.concat(parts);
}
const s = dgram.createSocket('udp4');
const sent = new Map();
const out = [];
let id = 0;
s.on('message', (m) => {
  const k = m.readUInt16BE(0);
  const t = sent.get(k);
  if (t === undefined) return;
  sent.delete(k);
  out.push([t[1], performance.now() - t[0]]);
});
const timer = setInterval(() => {
  for (let i = 0; i < rate / 1000; i++) {
    id = (id + 1) & 0xffff;
    const n = Math.floor(Math.random() * names);
    sent.set(id, [performance.now(), Date.now()]);
    s.send(q(id, 'svc-' + n + '.bench-' + (n % 100) + '.svc.cluster.local'), 53, server);
  }
}, 1);
process.stdin.on('data', () => {
  clearInterval(timer);
  setTimeout(() => {
    for (const [, t] of sent) out.push([t[1], -1]);
    process.stdout.write(JSON.stringify(out) + '\\n', () => process.exit(0));
  }, 2000);
});
`;

/** Starts the prober; stop() resolves with [sent at (epoch ms), latency ms or -1 for lost]. */
function startProber(services: number, rate: number): { stop: () => Promise<[number, number][]> } {
  const p = spawn(process.execPath, ['-e', PROBER, NODE_IP, String(rate), String(services)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: p.stdout! });
  const result = new Promise<[number, number][]>((resolve) => lines.once('line', (l) => resolve(JSON.parse(l) as [number, number][])));
  return {
    stop: async () => {
      p.stdin!.write('x');
      return result;
    },
  };
}

/** Deletes the proxy's table; the periodic check finds it gone and rewrites everything. */
async function dnsDuringFullSync(services: number): Promise<{ p99: number; p50: number; lost: number; queries: number; syncMs: number }> {
  const before = await metrics();
  const repairs0 = before.get('skiff_proxy_drift_repairs_total') ?? 0;
  const full0 = before.get('kubeproxy_sync_full_proxy_rules_duration_seconds_count') ?? 0;
  const fullSum0 = before.get('kubeproxy_sync_full_proxy_rules_duration_seconds_sum') ?? 0;
  const prober = startProber(services, 1000);
  await sleep(2000);
  await inNs(NS, 'nft', ['delete', 'table', 'ip', 'skiff']);
  let t0 = 0;
  await until(
    'the drift repair',
    async () => {
      const m = await metrics();
      if (!t0 && (m.get('skiff_proxy_drift_repairs_total') ?? 0) > repairs0) t0 = Date.now() - 100;
      return (m.get('kubeproxy_sync_full_proxy_rules_duration_seconds_count') ?? 0) > full0 ? m : undefined;
    },
    120_000,
    50,
  );
  const t1 = Date.now();
  const after = await metrics();
  await sleep(500);
  const all = await prober.stop();
  const window = all.filter(([at]) => at >= t0 && at <= t1);
  const ok = window.filter(([, l]) => l >= 0).map(([, l]) => l).sort((a, b) => a - b);
  return {
    p99: round(percentile(ok, 99), 2),
    p50: round(percentile(ok, 50), 2),
    lost: window.length - ok.length,
    queries: window.length,
    syncMs: Math.round(((after.get('kubeproxy_sync_full_proxy_rules_duration_seconds_sum') ?? 0) - fullSum0) * 1000),
  };
}

// ---------------------------------------------------------------------------------------------

/** Restarts the API server with its history compacted: every watch gets 410 and relists. */
async function relistPeak(n: Node): Promise<{ peak: number; steady: number }> {
  const steady = await steadyRss(n.agent.proc.pid!);
  const series = async (prefix: string): Promise<Map<string, number>> => new Map([...(await metrics().catch(() => new Map<string, number>()))].filter(([k]) => k.startsWith(prefix)));
  // Every watched kind relists; the window closes 8 s after the last one, not the first.
  const kinds = (await series('skiff_watch_objects{')).size;
  const before = await series('skiff_watch_relists_total');
  const port = n.api.port;
  const store = n.api.store;
  await n.api.close();
  // One write while the server is down, then compaction: every watch's resourceVersion is now
  // older than the history, so each one gets 410 Gone and relists.
  store.create('namespaces', { metadata: { name: `relist-${Date.now()}` } });
  store.compact();
  n.api = await startFakeApiServer({ host: HOST_IP, port, store, bookmarkIntervalMs: 5000 });
  let peak = 0;
  let done = 0;
  let relisted = 0;
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    peak = Math.max(peak, treeRssMb(n.agent.proc.pid!));
    await sleep(20);
    if (!done) {
      relisted = [...(await series('skiff_watch_relists_total'))].filter(([k, v]) => v > (before.get(k) ?? 0)).length;
      if (relisted >= kinds) done = Date.now();
    } else if (Date.now() - done > 8000) break;
  }
  if (!done) progress(`relist: ${relisted} of ${kinds} watched kinds relisted within 60 s`);
  return { peak, steady };
}

const POLL_MS = 250;

/** One endpoint changed at a time; each partial sync's own duration from the proxy's histogram. */
async function updateLatencies(n: Node, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let k = 0; k < count; k++) {
    const m0 = await metricsPatient();
    const c0 = m0.get('kubeproxy_sync_partial_proxy_rules_duration_seconds_count') ?? 0;
    const s0 = m0.get('kubeproxy_sync_partial_proxy_rules_duration_seconds_sum') ?? 0;
    const i = k * 7;
    n.api.store.patch('endpointslices', `svc-${i}-abcde`, { endpoints: [{ addresses: [`10.250.${k >> 8}.${(k & 255) || 1}`], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-1' }] }, { namespace: svcNs(i) });
    const m1 = await until(
      'a partial sync',
      async () => {
        const m = await metrics();
        return (m.get('kubeproxy_sync_partial_proxy_rules_duration_seconds_count') ?? 0) > c0 ? m : undefined;
      },
      180_000,
      // Each scrape allocates in the agent (prom-client renders the text): polled every 20 ms, the
      // scrapes alone caused ~5 scavenges a second at 50,000 Services, each 1-14 ms on the agent's
      // thread, landing inside the syncs measured. Prometheus scrapes every 15-30 s.
      POLL_MS,
    );
    const syncs = (m1.get('kubeproxy_sync_partial_proxy_rules_duration_seconds_count') ?? 0) - c0;
    out.push((((m1.get('kubeproxy_sync_partial_proxy_rules_duration_seconds_sum') ?? 0) - s0) * 1000) / syncs);
  }
  return out;
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      'idle-seconds': { type: 'string', default: '180' },
      services: { type: 'string', default: '10000' },
      'large-services': { type: 'string', default: '50000' },
      'endpoints-per-service': { type: 'string', default: '10' },
      // A p99 over 30 samples is the slowest one; over 100 it is the second slowest, like netpol's.
      updates: { type: 'string', default: '100' },
      'sandbox-name': { type: 'string', default: 'skifffp' },
      'sandbox-subnet': { type: 'string', default: '172.31.232.0/24' },
      skip: { type: 'string', default: '' },
      /** node's flags for the agent, space separated ('' for none); default AGENT_NODE_FLAGS (common/self.ts). */
      'node-flags': { type: 'string' },
      /** Heap snapshots of the agent idle in the sandbox, at 10k and at 50k go here (bench/heap-summary.ts reads them). */
      'heap-dir': { type: 'string' },
      /** Overrides dns.workers in the agent's config (comparisons). */
      'dns-workers': { type: 'string' },
    },
  });
  if (process.getuid?.() !== 0) throw new Error('the footprint bench needs root (network namespaces)');
  if (!existsSync(join(projectRoot, 'dist', 'bin', 'skiff.js'))) throw new Error('run `npm run build` first: the bench measures the compiled agent');
  if (values['node-flags'] !== undefined) nodeFlags = values['node-flags'].split(' ').filter(Boolean);
  progress(`agent: node ${nodeFlags.join(' ')}`);
  heapDir = values['heap-dir'];
  if (values['dns-workers'] !== undefined) dnsThreadCount = Number(values['dns-workers']);
  if (heapDir) mkdirSync(heapDir, { recursive: true });
  const idleSeconds = Number(values['idle-seconds']);
  const services = Number(values.services);
  const large = Number(values['large-services']);
  const per = Number(values['endpoints-per-service']);
  const skip = new Set(values.skip.split(',').filter(Boolean));
  const dnsExtra = values['dns-workers'] === undefined ? {} : { workers: Number(values['dns-workers']) };
  const out: Record<string, unknown> = { bench: 'footprint' };
  const extra: Record<string, unknown> = { idle_seconds: idleSeconds };

  if (!skip.has('sandbox')) {
    const idle = await idleSandbox(values['sandbox-name'], values['sandbox-subnet'], idleSeconds);
    out.idle_rss_mb = round(idle.rss);
    out.idle_cpu_pct = round(idle.cpu, 2);
    extra.rss_mb_15s_after_demo = round(idle.settling);
  }

  cleanupPrefix(P);
  let node: Node | undefined;
  try {
    await nodeNamespace(NS, `${P}-h0`, HOST_IP, NODE_IP);
    if (!skip.has('10k')) {
      progress(`${services} Services x ${per} endpoints`);
      node = await startNode(seedStore(services, per), `${services}`, dnsExtra);
      await sleep(10_000);
      out.rss_mb_10k = round(await steadyRss(node.agent.proc.pid!));
      extra.rss_peak_mb_10k = round(peakRssMb(node.agent.proc.pid!));
      progress(`RSS ${String(out.rss_mb_10k)} MiB; idle CPU for ${idleSeconds} s`);
      await heapSnapshots(node, `${services}`);
      out.idle_cpu_pct_10k = round(await idleCpuPct(node.agent.proc.pid!, idleSeconds), 2);
      const d = await dnsDuringFullSync(services);
      progress(`DNS during a full sync of ${d.syncMs} ms: p50 ${d.p50} ms p99 ${d.p99} ms, ${d.lost} of ${d.queries} lost`);
      out.dns_p99_ms_during_full_sync = d.p99;
      Object.assign(extra, { dns_p50_ms_during_full_sync: d.p50, dns_lost_during_full_sync: d.lost, dns_queries_during_full_sync: d.queries, full_sync_ms_10k: d.syncMs });
      const r = await relistPeak(node);
      progress(`relist: peak ${round(r.peak)} MiB against ${round(r.steady)} MiB steady`);
      out.relist_peak_ratio = round(r.peak / r.steady, 2);
      await stopNode(node);
      node = undefined;
    }
    if (!skip.has('50k')) {
      progress(`${large} Services x ${per} endpoints`);
      const t = performance.now();
      node = await startNode(seedStore(large, per), `${large}`, dnsExtra);
      extra.ready_ms_50k = Math.round(performance.now() - t);
      const m = await metricsPatient();
      out.full_sync_ms_50k = Math.round((m.get('kubeproxy_sync_full_proxy_rules_duration_seconds_sum') ?? NaN) * 1000);
      await sleep(10_000);
      out.rss_mb_50k = round(await steadyRss(node.agent.proc.pid!));
      extra.rss_peak_mb_50k = round(peakRssMb(node.agent.proc.pid!));
      await heapSnapshots(node, `${large}`);
      const inOrder = await updateLatencies(node, Number(values.updates));
      // In order: whether the slow ones are the first after the start tells GC from steady cost.
      extra.update_ms_50k_in_order = inOrder.map((x) => round(x, 1));
      const ups = [...inOrder].sort((a, b) => a - b);
      out.update_p99_ms_50k = round(percentile(ups, 99), 1);
      extra.update_p50_ms_50k = round(percentile(ups, 50), 1);
      if (typeof out.rss_mb_10k === 'number') out.bytes_per_endpoint = Math.round((((out.rss_mb_50k as number) - out.rss_mb_10k) * 1024 * 1024) / ((large - services) * per));
    }
  } finally {
    await stopNode(node);
    cleanupPrefix(P);
  }
  const order = ['idle_rss_mb', 'idle_cpu_pct', 'rss_mb_10k', 'idle_cpu_pct_10k', 'dns_p99_ms_during_full_sync', 'full_sync_ms_50k', 'update_p99_ms_50k', 'rss_mb_50k', 'relist_peak_ratio', 'bytes_per_endpoint'];
  progress(`details: ${JSON.stringify(extra)}`);
  const result: Record<string, unknown> = { bench: 'footprint' };
  for (const k of order) result[k] = out[k] ?? null;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
