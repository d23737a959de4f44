// CoreDNS-named metrics on the shared registry. The hot path only bumps numbers in Maps (cheaper
// than prom-client's label handling), and the families merge deltas from worker processes, so the
// agent exposes one set of series whatever the number of workers.
import { registry } from '../common/metrics.js';

type Kind = 'counter' | 'gauge' | 'histogram';

interface HistValue {
  buckets: number[];
  sum: number;
  count: number;
}

export interface FamilyDelta {
  readonly name: string;
  /** Counters: increments; histograms: increments per bucket; gauges: absolute values of the source. */
  readonly values: [string, number | HistValue][];
}

const SEP = '\u0001';

/**
 * Hooks that flush counts kept elsewhere (the fast path counts hits on its entries) into the
 * families; every read runs them first, so what is read is exact.
 */
const collectHooks = new Set<() => void>();
let collecting = false;
export function onCollect(fn: () => void): () => void {
  collectHooks.add(fn);
  return () => collectHooks.delete(fn);
}
function runCollectHooks(): void {
  if (collecting) return;
  collecting = true;
  try {
    for (const fn of collectHooks) fn();
  } finally {
    collecting = false;
  }
}

export class Family {
  private values = new Map<string, number | HistValue>();
  private drained = new Map<string, number | HistValue>();
  /** Gauge values reported by other processes, by source id. */
  private readonly remote = new Map<string, Map<string, number>>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: Kind,
    readonly labelNames: readonly string[],
    private readonly bounds: readonly number[] = [],
  ) {}

  /** The series key for a label set, for callers that precompute it off the hot path. */
  key(labels: readonly string[]): string {
    return labels.join(SEP);
  }

  inc(labels: readonly string[], n = 1): void {
    this.incKey(labels.join(SEP), n);
  }

  incKey(k: string, n = 1): void {
    this.values.set(k, ((this.values.get(k) as number | undefined) ?? 0) + n);
  }

  set(labels: readonly string[], v: number): void {
    this.values.set(labels.join(SEP), v);
  }

  observe(labels: readonly string[], v: number): void {
    this.observeKey(labels.join(SEP), v);
  }

  /** n observations of the same value. */
  observeKey(k: string, v: number, n = 1): void {
    let h = this.values.get(k) as HistValue | undefined;
    if (!h) this.values.set(k, (h = { buckets: new Array<number>(this.bounds.length).fill(0), sum: 0, count: 0 }));
    for (let i = 0; i < this.bounds.length; i++) {
      if (v <= this.bounds[i]!) {
        h.buckets[i]! += n;
        break;
      }
    }
    h.sum += v * n;
    h.count += n;
  }

  /** What changed since the last drain (worker side); the family keeps its totals for local reads. */
  drain(): FamilyDelta {
    const out: [string, number | HistValue][] = [];
    for (const [k, v] of this.values) {
      const prev = this.drained.get(k);
      if (this.type === 'gauge') out.push([k, v as number]);
      else if (typeof v === 'number') {
        const d = v - ((prev as number | undefined) ?? 0);
        if (d !== 0) out.push([k, d]);
      } else {
        const p = prev as HistValue | undefined;
        if (p && p.count === v.count) continue;
        out.push([k, { buckets: v.buckets.map((b, i) => b - (p?.buckets[i] ?? 0)), sum: v.sum - (p?.sum ?? 0), count: v.count - (p?.count ?? 0) }]);
      }
      this.drained.set(k, typeof v === 'number' ? v : { buckets: [...v.buckets], sum: v.sum, count: v.count });
    }
    return { name: this.name, values: out };
  }

  merge(d: FamilyDelta, source: string): void {
    if (this.type === 'gauge') {
      this.remote.set(source, new Map(d.values as [string, number][]));
      return;
    }
    for (const [k, v] of d.values) {
      if (typeof v === 'number') this.inc(k.split(SEP), v);
      else {
        let h = this.values.get(k) as HistValue | undefined;
        if (!h) this.values.set(k, (h = { buckets: new Array<number>(this.bounds.length).fill(0), sum: 0, count: 0 }));
        for (let i = 0; i < h.buckets.length; i++) h.buckets[i]! += v.buckets[i] ?? 0;
        h.sum += v.sum;
        h.count += v.count;
      }
    }
  }

  /** Reads one series (tests and the bench). */
  value(labels: readonly string[]): number {
    runCollectHooks();
    const k = labels.join(SEP);
    let v = this.values.get(k);
    if (this.type === 'gauge') {
      let total = (v as number | undefined) ?? 0;
      for (const m of this.remote.values()) total += m.get(k) ?? 0;
      return total;
    }
    if (v === undefined) return 0;
    if (typeof v !== 'number') v = v.count;
    return v;
  }

  total(): number {
    runCollectHooks();
    let t = 0;
    for (const v of this.values.values()) t += typeof v === 'number' ? v : v.count;
    return t;
  }

  private labelsOf(k: string): Record<string, string> {
    const parts = k.split(SEP);
    const l: Record<string, string> = {};
    this.labelNames.forEach((n, i) => (l[n] = parts[i] ?? ''));
    return l;
  }

  /** prom-client's Metric contract: what Registry.metrics() renders. */
  get(): { name: string; help: string; type: Kind; aggregator: 'sum'; values: { labels: Record<string, string>; value: number; metricName?: string }[] } {
    runCollectHooks();
    const values: { labels: Record<string, string>; value: number; metricName?: string }[] = [];
    const all = new Map<string, number | HistValue>(this.values);
    if (this.type === 'gauge') for (const k of all.keys()) all.set(k, this.value(k.split(SEP)));
    if (this.type === 'gauge') for (const m of this.remote.values()) for (const k of m.keys()) if (!all.has(k)) all.set(k, this.value(k.split(SEP)));
    for (const [k, v] of all) {
      const labels = this.labelsOf(k);
      if (typeof v === 'number') {
        values.push({ labels, value: v });
        continue;
      }
      let acc = 0;
      this.bounds.forEach((b, i) => {
        acc += v.buckets[i]!;
        values.push({ labels: { ...labels, le: String(b) }, value: acc, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { ...labels, le: '+Inf' }, value: v.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: v.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: v.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values };
  }

  reset(): void {
    this.values.clear();
    this.drained.clear();
    this.remote.clear();
  }
}

function family(name: string, help: string, type: Kind, labels: readonly string[], bounds?: readonly number[]): Family {
  const existing = registry.getSingleMetric(name) as unknown as Family | undefined;
  if (existing instanceof Family) return existing;
  const f = new Family(name, help, type, labels, bounds);
  registry.registerMetric(f as never);
  return f;
}

const DURATION_BUCKETS = Array.from({ length: 16 }, (_, i) => 0.00025 * 2 ** i);
const SIZE_BUCKETS = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000];

export const dnsMetrics = {
  requests: family('coredns_dns_requests_total', 'Counter of DNS requests made per zone, protocol and family.', 'counter', ['server', 'zone', 'view', 'proto', 'family', 'type']),
  responses: family('coredns_dns_responses_total', 'Counter of response status codes.', 'counter', ['server', 'zone', 'view', 'rcode', 'plugin']),
  duration: family('coredns_dns_request_duration_seconds', 'Histogram of the time (in seconds) each request took.', 'histogram', ['server', 'zone', 'view', 'type'], DURATION_BUCKETS),
  requestSize: family('coredns_dns_request_size_bytes', 'Size of the EDNS0 UDP buffer in bytes (64K for TCP).', 'histogram', ['server', 'zone', 'view', 'proto'], SIZE_BUCKETS),
  responseSize: family('coredns_dns_response_size_bytes', 'Size of the returned response in bytes.', 'histogram', ['server', 'zone', 'view', 'proto'], SIZE_BUCKETS),
  cacheEntries: family('coredns_cache_entries', 'The number of elements in the cache.', 'gauge', ['server', 'type', 'zones', 'view']),
  cacheHits: family('coredns_cache_hits_total', 'The count of cache hits.', 'counter', ['server', 'type', 'zones', 'view']),
  cacheMisses: family('coredns_cache_misses_total', 'The count of cache misses.', 'counter', ['server', 'zones', 'view']),
  cachePrefetch: family('coredns_cache_prefetch_total', 'The number of times the cache has prefetched a cached item.', 'counter', ['server', 'zones', 'view']),
  cacheStale: family('coredns_cache_served_stale_total', 'The number of requests served from stale cache entries.', 'counter', ['server', 'zones', 'view']),
  cacheEvictions: family('coredns_cache_evictions_total', 'The count of cache evictions.', 'counter', ['server', 'type', 'zones', 'view']),
  forwardRequests: family('coredns_forward_requests_total', 'Counter of requests made per upstream.', 'counter', ['to']),
  forwardResponses: family('coredns_forward_responses_total', 'Counter of responses received per upstream.', 'counter', ['to', 'rcode']),
  forwardHealthFailures: family('coredns_forward_healthcheck_failures_total', 'Counter of the number of failed healthchecks.', 'counter', ['to']),
  forwardHealthyDown: family('coredns_forward_healthcheck_broken_total', 'Counter of the number of complete failures of the healthchecks.', 'counter', []),
  autopath: family('coredns_autopath_success_total', 'Counter of requests that did autopath.', 'counter', ['server']),
  feedDuration: family('skiff_dns_answer_feed_duration_seconds', 'Time a reply waited for its addresses to be put in force (FQDN egress policy).', 'histogram', ['server'], DURATION_BUCKETS),
  feedErrors: family('skiff_dns_answer_feed_failures_total', 'Replies sent before their addresses were in force (FQDN egress policy), by reason.', 'counter', ['server', 'reason']),
};

export type DnsMetrics = typeof dnsMetrics;

export function drainAll(): FamilyDelta[] {
  runCollectHooks();
  return Object.values(dnsMetrics)
    .map((f) => f.drain())
    .filter((d) => d.values.length > 0);
}

export function mergeAll(deltas: readonly FamilyDelta[], source: string): void {
  const byName = new Map(Object.values(dnsMetrics).map((f) => [f.name, f]));
  for (const d of deltas) byName.get(d.name)?.merge(d, source);
}

const COMMON_TYPES = new Set(['A', 'AAAA', 'MX', 'SOA', 'CNAME', 'PTR', 'TXT', 'NS', 'SRV', 'DS', 'DNSKEY', 'RRSIG', 'NSEC', 'NSEC3', 'HTTPS', 'IXFR', 'AXFR', 'ANY']);
export function typeLabel(name: string): string {
  return COMMON_TYPES.has(name) ? name : 'other';
}
