// Watch cache at scale over real HTTP: 10,000 Services and 10,000 EndpointSlices (100,000
// endpoints) served by the fake API server in its own process, so this process's RSS is the
// cache's. Measures the initial sync, the RSS after it, and the latency from an API write to the
// subscriber batch that carries it. Progress on stderr; the last stdout line is the JSON result.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { KINDS } from '../common/types.js';
import { createWatchCache } from '../common/watch/informer.js';
import { percentile } from './stats.js';

const progress = (msg: string): void => void process.stderr.write(`[bench watch] ${msg}\n`);

/** Writes a fake-apiserver snapshot object by object, so this process never holds the data set. */
function writeSeed(path: string, services: number, endpointsPerSlice: number): number {
  const fd = openSync(path, 'w');
  let rv = 1;
  const ts = '2024-01-01T00:00:00Z';
  const uid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
  const ns = (i: number): string => `bench-${i % 100}`;
  const ip = (i: number, e: number): string => { const n = i * endpointsPerSlice + e; return `10.${64 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`; };
  // The namespaces the objects live in exist, as on a real cluster (and the system ones).
  const namespaces = ['default', 'kube-system', 'kube-public', 'kube-node-lease', ...Array.from({ length: Math.min(services, 100) }, (_, i) => ns(i))].map((name) => ({
    apiVersion: 'v1', kind: 'Namespace', metadata: { name, uid: uid(rv), resourceVersion: String(++rv), creationTimestamp: ts }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' },
  }));
  writeSync(fd, `{"objects":{"namespaces":${JSON.stringify(namespaces)},"services":[`);
  for (let i = 0; i < services; i++) {
    const o = {
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: `svc-${i}`, namespace: ns(i), uid: uid(rv), resourceVersion: String(++rv), creationTimestamp: ts, labels: { app: `svc-${i}` } },
      spec: { type: 'ClusterIP', clusterIP: `10.96.${i >> 8}.${i & 255}`, clusterIPs: [`10.96.${i >> 8}.${i & 255}`], ipFamilies: ['IPv4'], ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }], selector: { app: `svc-${i}` } },
    };
    writeSync(fd, (i ? ',' : '') + JSON.stringify(o));
  }
  writeSync(fd, '],"endpointslices":[');
  for (let i = 0; i < services; i++) {
    const o = {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: `svc-${i}-abcde`, namespace: ns(i), uid: uid(rv), resourceVersion: String(++rv), creationTimestamp: ts, labels: { 'kubernetes.io/service-name': `svc-${i}`, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: Array.from({ length: endpointsPerSlice }, (_, e) => ({
        addresses: [ip(i, e)], conditions: { ready: true, serving: true, terminating: false }, nodeName: `node-${e}`, targetRef: { kind: 'Pod', namespace: ns(i), name: `svc-${i}-pod-${e}` },
      })),
    };
    writeSync(fd, (i ? ',' : '') + JSON.stringify(o));
  }
  writeSync(fd, `]},"resourceVersion":${rv}}`);
  closeSync(fd);
  return rv;
}

async function startServer(seed: string): Promise<{ child: ChildProcess; url: string }> {
  const ts = import.meta.url.endsWith('.ts');
  const entry = fileURLToPath(new URL(`../sandbox/apiserver/index.${ts ? 'ts' : 'js'}`, import.meta.url));
  const child = spawn(process.execPath, [...(ts ? ['--import', 'tsx'] : []), entry, '--port', '0', '--seed', seed, '--bookmark-interval-ms', '5000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`fake API server exited with ${code}`)));
  });
  return { child, url: (JSON.parse(line) as { url: string }).url };
}


export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, strict: true, options: { services: { type: 'string', default: '10000' }, 'endpoints-per-slice': { type: 'string', default: '10' }, updates: { type: 'string', default: '500' } } });
  const services = Number(values.services);
  const perSlice = Number(values['endpoints-per-slice']);
  const updates = Number(values.updates);
  const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-watch-'));
  let child: ChildProcess | undefined;
  const stop = new AbortController();
  let running: Promise<void> | undefined;
  try {
    progress(`writing ${services} services and ${services} slices x ${perSlice} endpoints`);
    writeSeed(join(dir, 'seed.json'), services, perSlice);
    const server = await startServer(join(dir, 'seed.json'));
    child = server.child;
    progress(`fake API server at ${server.url}`);
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'bench', server: server.url, skipTLSVerify: true }],
      users: [{ name: 'bench', token: 'bench' }],
      contexts: [{ name: 'bench', cluster: 'bench', user: 'bench' }],
      currentContext: 'bench',
    });
    const rssBefore = process.memoryUsage().rss;
    const t0 = performance.now();
    const watch = createWatchCache({ kubeConfig, nodeName: 'node-0', log: pino({ level: 'warn' }, pino.destination(2)) });
    running = watch.start(stop.signal);
    await watch.cache.waitForSync(KINDS);
    const initialSyncMs = performance.now() - t0;
    let eps = 0;
    for (const s of watch.cache.store('endpointslices').values()) for (const e of s.endpoints) eps += e.addresses.length;
    if (watch.cache.store('services').size !== services || eps !== services * perSlice) throw new Error(`cache holds ${watch.cache.store('services').size} services and ${eps} endpoints`);
    globalThis.gc?.();
    const rssMb = process.memoryUsage().rss / 2 ** 20;
    progress(`synced in ${initialSyncMs.toFixed(0)} ms; rss ${rssMb.toFixed(1)} MiB (was ${(rssBefore / 2 ** 20).toFixed(1)})`);

    // Write, then time until the subscriber's batch carries the marker; one write at a time.
    const waiting = new Map<string, () => void>();
    watch.cache.subscribe(['services', 'endpointslices'], (b) => {
      for (const c of b.changes) {
        const seq = (c.current as { labels?: Record<string, string> } | undefined)?.labels?.['bench/seq'];
        if (seq !== undefined) waiting.get(seq)?.();
      }
    });
    const latencies: number[] = [];
    for (let u = 0; u < updates; u++) {
      const i = (u * 7919) % services;
      const path = u % 2 === 0 ? `/api/v1/namespaces/bench-${i % 100}/services/svc-${i}` : `/apis/discovery.k8s.io/v1/namespaces/bench-${i % 100}/endpointslices/svc-${i}-abcde`;
      const seen = new Promise<void>((resolve) => waiting.set(String(u), resolve));
      const start = performance.now();
      const r = await fetch(server.url + path, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: JSON.stringify({ metadata: { labels: { 'bench/seq': String(u) } } }) });
      if (!r.ok) throw new Error(`PATCH ${path}: ${r.status}`);
      await r.arrayBuffer();
      await seen;
      latencies.push(performance.now() - start);
      waiting.delete(String(u));
    }
    latencies.sort((a, b) => a - b);
    const p99 = percentile(latencies, 99);
    progress(`${updates} updates: p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${latencies.at(-1)!.toFixed(2)} ms`);
    const round = (n: number, d: number): number => Math.round(n * 10 ** d) / 10 ** d;
    process.stdout.write(
      `${JSON.stringify({ bench: 'watch', services, endpointslices: services, endpoints: services * perSlice, initial_sync_ms: Math.round(initialSyncMs), rss_mb: round(rssMb, 1), event_to_notify_p99_ms: round(p99, 2) })}\n`,
    );
  } finally {
    stop.abort();
    await running;
    child?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
