// `skiff status`: one screen about this node, fetched from the agent's /status endpoint. The agent
// builds it from the watch cache and from its own metrics, so status never disagrees with /metrics.
import { request } from 'node:http';
import { helpText, parseFlags } from './cli.js';
import type { Config } from './config.js';
import type { Health } from './health.js';
import { splitHostPort } from './http.js';
import { registry } from './metrics.js';
import type { WatchCache } from './watch/store.js';

export interface NodeStatus {
  node: string;
  podCIDRs: readonly string[];
  ready: boolean;
  peers: { name: string; ip: string; podCIDRs: readonly string[]; vtepMAC?: string }[];
  services: number;
  endpoints: number;
  proxy: { servicePorts?: number; endpoints?: number; syncs?: number; lastSync?: string; meanSyncMs?: number };
  dns: { queries?: number; cacheHitRate?: number; forwardHealthcheckFailures?: number };
}

async function metricSum(name: string, filter: (labels: Record<string, string | number>) => boolean = () => true): Promise<number | undefined> {
  const m = registry.getSingleMetric(name);
  if (!m) return undefined;
  const data = await m.get();
  let sum = 0;
  for (const v of data.values) if (filter(v.labels as Record<string, string | number>)) sum += v.value;
  return sum;
}

/** Sum and count of a histogram, across its label sets. */
async function metricCount(name: string): Promise<{ sum: number; count: number } | undefined> {
  const m = registry.getSingleMetric(name);
  if (!m) return undefined;
  let sum = 0;
  let count = 0;
  for (const v of (await m.get()).values) {
    const metricName = (v as { metricName?: string }).metricName;
    if (metricName === `${name}_sum`) sum += v.value;
    else if (metricName === `${name}_count`) count += v.value;
  }
  return { sum, count };
}

export async function buildStatus(config: Config, cache: WatchCache, health: Health): Promise<NodeStatus> {
  const nodes = cache.store('nodes');
  const me = nodes.get(config.nodeName);
  const peers: NodeStatus['peers'] = [];
  for (const n of nodes.values()) {
    if (n.name === config.nodeName) continue;
    const ip = n.annotations['skiff.io/public-ip'] ?? n.addresses.find((a) => a.type === 'InternalIP')?.address ?? '';
    peers.push({ name: n.name, ip, podCIDRs: n.podCIDRs, vtepMAC: n.annotations['skiff.io/vtep-mac'] });
  }
  let endpoints = 0;
  for (const s of cache.store('endpointslices').values()) for (const e of s.endpoints) endpoints += e.addresses.length;
  const last = await metricSum('kubeproxy_sync_proxy_rules_last_timestamp_seconds');
  const syncs = await metricCount('kubeproxy_sync_proxy_rules_duration_seconds');
  const hits = await metricSum('coredns_cache_hits_total');
  const misses = await metricSum('coredns_cache_misses_total');
  return {
    node: config.nodeName,
    podCIDRs: me?.podCIDRs ?? [],
    ready: health.readiness().ok,
    peers: peers.sort((a, b) => a.name.localeCompare(b.name)),
    services: cache.store('services').size,
    endpoints,
    proxy: {
      servicePorts: await metricSum('skiff_proxy_services'),
      endpoints: await metricSum('skiff_proxy_endpoints'),
      syncs: syncs?.count,
      lastSync: last ? new Date(last * 1000).toISOString() : undefined,
      meanSyncMs: syncs && syncs.count > 0 ? Math.round((syncs.sum / syncs.count) * 1000) : undefined,
    },
    dns: {
      queries: await metricSum('coredns_dns_requests_total'),
      cacheHitRate: hits !== undefined && misses !== undefined && hits + misses > 0 ? hits / (hits + misses) : undefined,
      forwardHealthcheckFailures: await metricSum('coredns_forward_healthcheck_failures_total'),
    },
  };
}

export function renderStatus(s: NodeStatus): string {
  const pct = (x?: number): string => (x === undefined ? '-' : `${(x * 100).toFixed(1)}%`);
  const lines = [
    `node        ${s.node}  (${s.ready ? 'ready' : 'not ready'})`,
    `podCIDRs    ${s.podCIDRs.join(', ') || '-'}`,
    `peers       ${s.peers.length}`,
    ...s.peers.map((p) => `  ${p.name.padEnd(24)} ${p.ip.padEnd(16)} ${p.podCIDRs.join(',').padEnd(20)} ${p.vtepMAC ?? '(no VTEP yet)'}`),
    `services    ${s.services} in the API, ${s.proxy.servicePorts ?? '-'} service ports programmed`,
    `endpoints   ${s.endpoints} in the API, ${s.proxy.endpoints ?? '-'} programmed`,
    `last sync   ${s.proxy.lastSync ?? 'never'}${s.proxy.syncs ? ` (${s.proxy.syncs} syncs, mean ${s.proxy.meanSyncMs} ms)` : ''}`,
    `dns         queries ${s.dns.queries ?? '-'}    cache hit rate ${pct(s.dns.cacheHitRate)}    forward health-check failures ${s.dns.forwardHealthcheckFailures ?? '-'}`,
  ];
  return lines.join('\n') + '\n';
}

const OPTIONS = {
  address: { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
} as const;

function fetchJson(address: string): Promise<NodeStatus> {
  const { host, port } = splitHostPort(address);
  return new Promise((resolve, reject) => {
    const req = request({ host: host === '0.0.0.0' ? '127.0.0.1' : host, port, path: '/status', timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`agent answered ${res.statusCode}`));
        try {
          resolve(JSON.parse(body) as NodeStatus);
        } catch (e) {
          reject(e as Error);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseFlags('status', argv, OPTIONS);
  if (values.help) {
    process.stdout.write(
      helpText('status', "Shows this node's overlay peers, Service proxy and DNS state, from the local agent.", OPTIONS, {
        address: "the agent's metrics address (default 127.0.0.1:10249, env SKIFF_METRICS_BIND_ADDRESS)",
        output: 'text (default) or json',
        help: 'show this help',
      }),
    );
    return 0;
  }
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') {
    process.stderr.write(`skiff status: -o must be text or json, not "${output}"\n`);
    return 2;
  }
  const address = values.address ?? process.env.SKIFF_METRICS_BIND_ADDRESS ?? '127.0.0.1:10249';
  let s: NodeStatus;
  try {
    s = await fetchJson(address);
  } catch (e) {
    process.stderr.write(`skiff status: cannot reach the agent at ${address}: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(output === 'json' ? JSON.stringify(s, null, 2) + '\n' : renderStatus(s));
  return 0;
}
