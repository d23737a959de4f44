// Scenario 6, scale: 5000 Nodes, 10k Services with 100k endpoints and 150k Pods in the fake API
// server; one real agent in one node namespace. Measured: time from agent start until the VXLAN
// device holds a route for every peer (routes are applied after FDB and neighbours, so the last
// route is the end of the sync), time for one added node to reach the kernel, the agent's RSS, and
// the watches it opens (per kind, counted at the server; pods must carry the node field selector).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startFakeApiServer, FakeStore, type FakeApiServer, type StoreSnapshot } from '../../sandbox/apiserver/index.js';
import { cleanupPrefix } from '../../test/support/netns.js';
import { agentConfig, nodeNamespace, PREFIX, progress, rssMb, round, sleep, startAgent, stopAgent, tempDir, until, type AgentProcess } from './support.js';
import { readFileSync, rmSync } from 'node:fs';

const P = `${PREFIX}-sc`;
const NS = `${P}-n0`;
const HOST_IP = '192.168.251.1';
const NODE_IP = '192.168.251.2';
const SELF = 'node-0';

export interface ScaleOptions {
  nodes: number;
  services: number;
  endpointsPerService: number;
  pods: number;
  /** Features to switch off in the agent (e.g. "proxy,dns" to time the overlay alone). */
  disable?: string;
}

export interface ScaleResult {
  overlay_5000_nodes_cold_ms: number | null;
  overlay_one_node_change_ms: number | null;
  rss_mb_at_scale: number | null;
  watches_per_agent: number | null;
}

const podCIDR = (i: number): string => `10.${128 + (i >> 8)}.${i & 255}.0/24`;
const mac = (i: number): string => `0a:5a:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
const uid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

function nodeObject(i: number, rv: number): Record<string, unknown> {
  const self = i === 0;
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: `node-${i}`,
      uid: uid(rv),
      resourceVersion: String(rv),
      creationTimestamp: '2024-01-01T00:00:00Z',
      labels: { 'kubernetes.io/hostname': `node-${i}` },
      // Peers have published their VTEP (as their own agents would); this node publishes its own.
      annotations: self ? {} : { 'skiff.io/vtep-mac': mac(i), 'skiff.io/public-ip': `100.64.${i >> 8}.${i & 255}` },
    },
    spec: { podCIDR: podCIDR(i), podCIDRs: [podCIDR(i)] },
    status: {
      addresses: [{ type: 'InternalIP', address: self ? NODE_IP : `100.64.${i >> 8}.${i & 255}` }],
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };
}

/** Builds the store directly from a snapshot: 165k creates through validation would take minutes. */
function seedStore(o: ScaleOptions): FakeStore {
  let rv = 1;
  const ts = '2024-01-01T00:00:00Z';
  const nodes = Array.from({ length: o.nodes }, (_, i) => nodeObject(i, ++rv));
  const ns = (i: number): string => `bench-${i % 100}`;
  const services: object[] = [];
  const slices: object[] = [];
  const epIP = (n: number): string => `10.${128 + (n >> 16)}.${(n >> 8) & 255}.${(n & 255) || 1}`;
  for (let i = 0; i < o.services; i++) {
    const ip = `10.96.${(i >> 8) + 1}.${i & 255}`;
    services.push({
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: `svc-${i}`, namespace: ns(i), uid: uid(++rv), resourceVersion: String(rv), creationTimestamp: ts },
      spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ipFamilies: ['IPv4'], ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }], selector: { app: `svc-${i}` } },
    });
    slices.push({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: `svc-${i}-abcde`, namespace: ns(i), uid: uid(++rv), resourceVersion: String(rv), creationTimestamp: ts, labels: { 'kubernetes.io/service-name': `svc-${i}` } },
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: Array.from({ length: o.endpointsPerService }, (_, e) => {
        const n = i * o.endpointsPerService + e;
        return { addresses: [epIP(n)], conditions: { ready: true, serving: true, terminating: false }, nodeName: `node-${n % o.nodes}` };
      }),
    });
  }
  const pods: object[] = [];
  for (let i = 0; i < o.pods; i++) {
    const node = i % o.nodes;
    pods.push({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: `pod-${i}`, namespace: ns(i), uid: uid(++rv), resourceVersion: String(rv), creationTimestamp: ts },
      spec: { nodeName: `node-${node}`, containers: [{ name: 'c', image: 'x' }] },
      status: { phase: 'Running', podIP: epIP(i), podIPs: [{ ip: epIP(i) }] },
    });
  }
  const snapshot = { objects: { nodes, services, endpointslices: slices, pods }, resourceVersion: rv } as unknown as StoreSnapshot;
  return new FakeStore({ snapshot, compactionWindow: 20_000 });
}

/** Streams `ip monitor route` in the node: the time each VXLAN route is first seen. */
function watchRoutes(): { seen: Map<string, number>; stop: () => void; ready: Promise<void> } {
  const seen = new Map<string, number>();
  const p = spawn('ip', ['-n', NS, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
  createInterface({ input: p.stdout }).on('line', (line) => {
    if (line.startsWith('Deleted') || !line.includes('dev skiff-vx')) return;
    const dst = line.split(' ')[0]!;
    if (dst.includes('/') && !seen.has(dst)) seen.set(dst, performance.now());
  });
  // `ip monitor` prints nothing on start; give it a moment to subscribe before anything changes.
  return { seen, stop: () => p.kill('SIGKILL'), ready: sleep(300) };
}

function agentStartedAt(logPath: string): number | undefined {
  for (const line of readFileSync(logPath, 'utf8').split('\n')) {
    try {
      const j = JSON.parse(line) as { msg?: string; time?: string | number };
      if (j.msg === 'agent starting' && j.time !== undefined) return new Date(j.time).getTime();
    } catch {
      /* not a log line */
    }
  }
  return undefined;
}

export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const log = (m: string): void => progress('scale', m);
  cleanupPrefix(P);
  const dir = tempDir('scale');
  let api: FakeApiServer | undefined;
  let agent: AgentProcess | undefined;
  let mon: ReturnType<typeof watchRoutes> | undefined;
  try {
    const t0 = performance.now();
    const store = seedStore(o);
    log(`store seeded in ${Math.round(performance.now() - t0)} ms: ${o.nodes} nodes, ${o.services} services x ${o.endpointsPerService} endpoints, ${o.pods} pods`);
    await nodeNamespace(NS, `${P}-h0`, HOST_IP, NODE_IP);
    api = await startFakeApiServer({ host: HOST_IP, port: 0, store, bookmarkIntervalMs: 5000 });
    const kubeconfig = join(dir, 'kubeconfig');
    api.writeKubeconfig(kubeconfig);
    const cfg = agentConfig(dir, SELF, kubeconfig, { clusterCIDRs: ['10.128.0.0/9'], serviceCIDRs: ['10.96.0.0/12'] });
    mon = watchRoutes();
    await mon.ready;
    const start = performance.now();
    agent = startAgent(NS, dir, cfg, o.disable ? ['--disable', o.disable] : []);
    const peers = o.nodes - 1;
    const routes = mon;
    const exited = agent.exited.then((c) => c);
    await until(
      `${peers} VXLAN routes`,
      async () => {
        if (agent!.proc.exitCode !== null) throw new Error(`agent exited ${await exited}; see ${agent!.logPath}`);
        return routes.seen.size >= peers ? true : undefined;
      },
      180_000,
    );
    const times = [...routes.seen.values()];
    const last = Math.max(...times);
    const first = Math.min(...times);
    // Measured from the agent's "agent starting" line (config loaded, before its first list), so
    // the figure is list + overlay programming, not Node.js/tsx boot (reported beside it).
    const startedAt = agentStartedAt(agent.logPath);
    const lastEpoch = performance.timeOrigin + last;
    const coldMs = startedAt ? lastEpoch - startedAt : last - start;
    log(
      `overlay cold: ${Math.round(coldMs)} ms from "agent starting" (process spawn to last route ${Math.round(last - start)} ms; first route at ${Math.round(first - start)} ms; ${Math.round(last - first)} ms between first and last of ${peers} routes)`,
    );

    // Let the other components settle so a node change competes only with steady state.
    await sleep(3000);
    const changes: number[] = [];
    for (let k = 0; k < 5; k++) {
      const i = o.nodes + k;
      const n = nodeObject(i, 0) as { metadata: Record<string, unknown> };
      delete n.metadata.uid;
      delete n.metadata.resourceVersion;
      const t = performance.now();
      api.store.create('nodes', n);
      const cidr = podCIDR(i);
      await until(`route ${cidr}`, () => (routes.seen.has(cidr) ? true : undefined), 30_000, 2);
      changes.push(routes.seen.get(cidr)! - t);
      await sleep(500);
    }
    const inOrder = changes.map((c) => c.toFixed(1)).join(', ');
    changes.sort((a, b) => a - b);
    const oneChange = changes[Math.floor(changes.length / 2)]!;
    log(`one node added -> route programmed: median ${oneChange.toFixed(1)} ms (in order: ${inOrder})`);

    await sleep(2000);
    const rss = rssMb(agent.proc.pid!);
    const watches = api.requests.filter((r) => /[?&]watch=(1|true)/.test(r.url));
    const byKind = new Map<string, string[]>();
    for (const w of watches) {
      const path = w.url.split('?')[0]!;
      const kind = path.split('/').at(-1)!;
      byKind.set(kind, [...(byKind.get(kind) ?? []), w.url]);
    }
    const podWatch = byKind.get('pods') ?? [];
    const perNode = podWatch.length > 0 && podWatch.every((u) => decodeURIComponent(u).includes(`spec.nodeName=${SELF}`));
    log(`agent rss ${rss.toFixed(1)} MiB; watch requests by kind: ${[...byKind].map(([k, v]) => `${k}=${v.length}`).join(' ')}; pod watch per node: ${perNode}`);
    if (!perNode) log(`BUG: pod watch without the node field selector: ${podWatch.join(' ')}`);
    return {
      overlay_5000_nodes_cold_ms: Math.round(coldMs),
      overlay_one_node_change_ms: round(oneChange, 1),
      rss_mb_at_scale: round(rss, 1),
      // Streams open at the server now (re-watches after a timeout replace, not add); -1 flags a
      // pod watch that is not per node.
      watches_per_agent: perNode ? api.watchCount() : -1,
    };
  } finally {
    mon?.stop();
    if (agent) await stopAgent(agent, 'SIGKILL');
    await api?.close();
    cleanupPrefix(P);
    rmSync(dir, { recursive: true, force: true });
  }
}
