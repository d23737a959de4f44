// Debian's Prometheus scrapes a two-node sandbox the way the manifests tell a Prometheus to: the
// DaemonSet pod's prometheus.io annotations (port, path) on each node address, job named as the
// PodMonitor names it. Then every agent is up, the kube-proxy and CoreDNS series the standard
// dashboards draw have samples, and every query of the shipped Grafana dashboard returns data.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { find, manifestsDir, objects, type Obj } from './manifests/load.js';
import { sandboxCli } from './sandbox/cli.js';
import { missing } from './support/env.js';
import { sh } from './support/netns.js';
import { freePort } from './support/ports.js';
import { until } from './support/until.js';
import { SandboxClient } from '../sandbox/client.js';
import { podReady } from '../sandbox/endpointslices.js';
import { INTERNET_IP, layout, nodeLayouts, podNetns } from '../sandbox/names.js';
import { lockSandbox } from './support/lock.js';

const NAME = 'skiffp';
const SUBNET = '172.31.234.0/24';
const STATE = `/tmp/${NAME}-state`;
const env = { ...process.env, SKIFF_SANDBOX_DIR: STATE, SKIFF_SANDBOX_NAME: NAME };
const L = layout({ name: NAME, nodes: 2, subnet: SUBNET, stateDir: STATE });
const NODES = nodeLayouts(L);
const cli = sandboxCli(env);
// Grafana's $__rate_interval depends on the panel's width and range; five minutes covers this run.
const RATE_INTERVAL = '5m';
const UPSTREAM_NAME = 'upstream.skiff-prometheus.test';

/** The scrape job a Prometheus builds from what the manifests ship, on the sandbox's node addresses. */
function scrapeConfigFromManifests(nodes: readonly { name: string; ip: string }[], interval: string): Obj {
  const ann = find('DaemonSet', 'skiff').spec.template.metadata.annotations as Record<string, string>;
  if (ann['prometheus.io/scrape'] !== 'true') throw new Error('the DaemonSet does not ask to be scraped');
  const pm = objects(join(manifestsDir, 'monitoring/podmonitor.yaml'))[0]!;
  const ep = (pm.spec.podMetricsEndpoints as Obj[])[0]!;
  const job = (ep.relabelings as Obj[]).find((r) => r.targetLabel === 'job')!.replacement as string;
  return {
    global: { scrape_interval: interval, evaluation_interval: interval },
    scrape_configs: [
      {
        job_name: job,
        metrics_path: ann['prometheus.io/path'] ?? ep.path,
        scrape_timeout: '1s',
        // hostNetwork pods: the pod address is the node address (what the PodMonitor's "metrics" port resolves to).
        static_configs: nodes.map((n) => ({ targets: [`${n.ip}:${ann['prometheus.io/port']}`], labels: { node: n.name } })),
      },
    ],
  };
}

type Sample = { metric: Record<string, string>; value: [number, string] };

describe.skipIf(missing('prometheus scrape', { root: true, tools: ['prometheus', 'dnsmasq', 'ip', 'nft', 'curl', 'dig', 'flock'] }))('Prometheus scrapes the sandbox as the manifests say (2 nodes, root)', () => {
  let lock: ChildProcess | undefined;
  let prom: ChildProcess | undefined;
  let upstream: ChildProcess | undefined;
  let promLog = '';
  let dir: string;
  let base: string;
  let client: SandboxClient;

  const query = async (q: string): Promise<Sample[]> => {
    const r = (await (await fetch(`${base}/api/v1/query?${new URLSearchParams({ query: q })}`)).json()) as { status: string; error?: string; data: { result: Sample[] } };
    if (r.status !== 'success') throw new Error(`${q}: ${r.error}`);
    return r.data.result;
  };
  const podNamespaces: string[] = [];
  let ticks = 0;
  /**
   * New work between two scrapes: a Service (a rule sync and, through its EndpointSlice, network
   * programming) and a query from each pod. A rate over the window is zero, and its quantile NaN,
   * when everything the setup did landed before Prometheus's first scrape, as on a loaded machine.
   */
  const poke = async (): Promise<void> => {
    const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: `tick-${ticks++}`, namespace: 'prom' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } };
    await cli(['apply', '-f', '-'], JSON.stringify(svc));
    for (const ns of podNamespaces) await dig(ns, 'web.prom.svc.cluster.local');
  };
  const dig = (ns: string, name: string) => sh('ip', ['netns', 'exec', ns, 'dig', '+short', '+time=1', '+tries=1', name]).catch(() => undefined);

  beforeAll(async () => {
    lock = await lockSandbox(NAME);
    await cli(['down']);
    // The agents forward names outside the cluster to the node's resolver: make it a dnsmasq in
    // the sandbox's outside namespace, so forwarded answers (and so cache hits) stay in the sandbox.
    // `ip netns exec` mounts /etc/netns/<node>/resolv.conf over the agent's /etc/resolv.conf.
    for (const n of NODES) {
      mkdirSync(`/etc/netns/${n.name}`, { recursive: true });
      writeFileSync(`/etc/netns/${n.name}/resolv.conf`, `nameserver ${INTERNET_IP}\n`);
    }
    const up = await cli(['up', '--nodes', '2', '--subnet', SUBNET, '--timeout', '90', '--agent-timeout', '90']);
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
    client = SandboxClient.load(L.kubeconfig);
    upstream = spawn('ip', ['netns', 'exec', L.extNs, 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--pid-file=', `--listen-address=${INTERNET_IP}`, '--bind-interfaces', '--local-ttl=300', `--address=/${UPSTREAM_NAME}/192.0.2.7`], { stdio: 'ignore' });

    dir = mkdtempSync(join(tmpdir(), 'skiffp-prom-'));
    writeFileSync(join(dir, 'prometheus.yml'), stringify(scrapeConfigFromManifests(NODES, '2s')));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    prom = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    prom.stderr!.on('data', (d) => (promLog = (promLog + String(d)).slice(-4000)));
    await until('prometheus ready', async () => (await fetch(`${base}/-/ready`)).ok, 30_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${promLog}`);
    });

    // Something for each panel to show: a Service with endpoints on both nodes (rule syncs and
    // network programming), CNI ADDs, cluster names, and an outside name asked repeatedly (a cache
    // miss, then hits: only forwarded answers are cached, cluster answers come from memory).
    const pod = (name: string, node: string) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'prom', labels: { app: 'web' } }, spec: { nodeName: node, containers: [{ name: 'c', command: ['sleep', 'infinity'] }] } });
    const manifest = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'prom' } },
      pod('web-1', NODES[0]!.name),
      pod('web-2', NODES[1]!.name),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'prom' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } },
    ];
    const applied = await cli(['apply', '-f', '-'], manifest.map((o) => JSON.stringify(o)).join('\n---\n'));
    expect(applied.code, applied.stderr).toBe(0);
    const pods = await until('pods ready', async () => {
      const items = (await client.list('pods', 'prom')).items;
      return items.length === 2 && items.every(podReady) ? items : undefined;
    }, 90_000);
    for (const p of pods) {
      const ns = podNetns(NAME, p.metadata.uid!);
      podNamespaces.push(ns);
      await until(`web.prom resolves from ${p.metadata.name}`, async () => ((await dig(ns, 'web.prom.svc.cluster.local'))?.stdout.trim() ?? '') !== '', 60_000);
      for (let i = 0; i < 5; i++) await dig(ns, 'web.prom.svc.cluster.local');
      await until(`${UPSTREAM_NAME} resolves from ${p.metadata.name}`, async () => (await dig(ns, UPSTREAM_NAME))?.stdout.trim() === '192.0.2.7', 60_000);
      for (let i = 0; i < 5; i++) await dig(ns, UPSTREAM_NAME);
    }
  }, 300_000);

  afterAll(async () => {
    prom?.kill('SIGTERM');
    upstream?.kill('SIGTERM');
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (!process.env.SKIFF_KEEP_SANDBOX) await cli(['down']);
    lock?.stdin?.end();
  }, 60_000);

  it('health port answers only health from another node; metrics answer on their own port', async () => {
    const [a, b] = NODES as [(typeof NODES)[number], (typeof NODES)[number]];
    const curl = async (url: string) => (await sh('ip', ['netns', 'exec', b.name, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '3', url])).stdout;
    expect(await curl(`http://${a.ip}:10256/healthz`)).toBe('200');
    expect(await curl(`http://${a.ip}:10256/metrics`)).toBe('404');
    expect(await curl(`http://${a.ip}:10256/status`)).toBe('404');
    expect(await curl(`http://${a.ip}:10249/metrics`)).toBe('200');
    expect(await curl(`http://${a.ip}:10249/healthz`)).toBe('404');
  });

  it('every agent is up', async () => {
    const up = await until('every target scraped', async () => {
      const r = await query('up{job="skiff"}');
      return r.length === NODES.length && r.every((s) => s.value[1] === '1') ? r : undefined;
    }, 30_000);
    expect(up.map((s) => s.metric.node).sort()).toEqual(NODES.map((n) => n.name).sort());
  });

  it('the kube-proxy and CoreDNS series of the standard dashboards have samples from every node', async () => {
    const series = [
      'kubeproxy_sync_proxy_rules_duration_seconds_bucket',
      'kubeproxy_sync_full_proxy_rules_duration_seconds_bucket',
      'kubeproxy_network_programming_duration_seconds_bucket',
      'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      'coredns_dns_requests_total',
      'coredns_dns_responses_total',
      'coredns_dns_request_duration_seconds_bucket',
      'coredns_cache_hits_total',
      'coredns_cache_misses_total',
    ];
    for (const s of series) {
      const r = await until(`${s} from both nodes`, async () => {
        const got = await query(`count by (node) (${s}{job="skiff"})`);
        return got.length === NODES.length ? got : undefined;
      }, 30_000);
      expect(r.length, s).toBe(NODES.length);
    }
    // Not only present: the syncs and the DNS requests were counted.
    expect(Number((await query('sum(kubeproxy_sync_proxy_rules_duration_seconds_count{job="skiff"})'))[0]!.value[1])).toBeGreaterThan(0);
    expect(Number((await query('sum(coredns_dns_requests_total{job="skiff"})'))[0]!.value[1])).toBeGreaterThanOrEqual(14);
    expect(Number((await query('sum(coredns_cache_hits_total{job="skiff"})'))[0]!.value[1])).toBeGreaterThan(0);
  });

  it('every query of the shipped Grafana dashboard returns data', async () => {
    const dash = JSON.parse(readFileSync(join(manifestsDir, 'monitoring/skiff-dashboard.json'), 'utf8')) as Obj;
    const vars = dash.templating.list as Obj[];
    const job = vars.find((v) => v.name === 'job')!;
    const instance = vars.find((v) => v.name === 'instance')!;
    // The variables' own queries: label_values(metric{...}, label) through the label values API.
    for (const v of [job, instance]) {
      const m = /^label_values\((.+), (\w+)\)$/.exec(v.definition as string)!;
      const sel = m[1]!.replaceAll('$job', job.current.value as string);
      const r = (await (await fetch(`${base}/api/v1/label/${m[2]}/values?${new URLSearchParams({ 'match[]': sel })}`)).json()) as { data: string[] };
      expect(r.data.length, v.definition).toBeGreaterThan(0);
    }
    const empty: string[] = [];
    for (const panel of dash.panels as Obj[]) {
      for (const t of panel.targets as Obj[]) {
        const q = (t.expr as string).replaceAll('$job', job.current.value as string).replaceAll('$instance', instance.allValue as string).replaceAll('$__rate_interval', RATE_INTERVAL);
        const r = await until(`${panel.title}: ${q}`, async () => {
          await poke();
          const got = await query(q);
          return got.some((s) => Number.isFinite(Number(s.value[1]))) ? got : undefined;
        }, 20_000).catch(() => undefined);
        if (!r) empty.push(`${panel.title}: ${q}`);
      }
    }
    expect(empty).toEqual([]);
  }, 120_000);
});
