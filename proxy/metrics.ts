// kube-proxy's metric names on skiff's registry, so existing dashboards and alerts keep working.
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../common/metrics.js';

const buckets = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384];

function once<T>(name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export interface ProxyMetrics {
  readonly syncDuration: Histogram;
  readonly fullSyncDuration: Histogram;
  readonly partialSyncDuration: Histogram;
  readonly lastSync: Gauge;
  readonly programming: Histogram;
  readonly noLocalEndpoints: Gauge<'traffic_policy'>;
  readonly endpointChanges: Counter;
  readonly serviceChanges: Counter;
  readonly services: Gauge;
  readonly endpoints: Gauge;
  readonly syncFailures: Counter;
  readonly drift: Counter;
}

export function proxyMetrics(): ProxyMetrics {
  const reg = [registry];
  return {
    syncDuration: once('kubeproxy_sync_proxy_rules_duration_seconds', () => new Histogram({ name: 'kubeproxy_sync_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds', buckets, registers: reg })),
    fullSyncDuration: once('kubeproxy_sync_full_proxy_rules_duration_seconds', () => new Histogram({ name: 'kubeproxy_sync_full_proxy_rules_duration_seconds', help: 'Latency of full syncs in seconds', buckets, registers: reg })),
    partialSyncDuration: once('kubeproxy_sync_partial_proxy_rules_duration_seconds', () => new Histogram({ name: 'kubeproxy_sync_partial_proxy_rules_duration_seconds', help: 'Latency of partial syncs in seconds', buckets, registers: reg })),
    lastSync: once('kubeproxy_sync_proxy_rules_last_timestamp_seconds', () => new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', help: 'The last time proxy rules were successfully synced', registers: reg })),
    programming: once('kubeproxy_network_programming_duration_seconds', () => new Histogram({ name: 'kubeproxy_network_programming_duration_seconds', help: 'In-cluster network programming latency in seconds', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300], registers: reg })),
    noLocalEndpoints: once('kubeproxy_sync_proxy_rules_no_local_endpoints_total', () => new Gauge({ name: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total', help: 'Service ports with a Local traffic policy and no local endpoints', labelNames: ['traffic_policy'] as const, registers: reg })),
    endpointChanges: once('kubeproxy_sync_proxy_rules_endpoint_changes_total', () => new Counter({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total', help: 'Cumulative proxy rules EndpointSlice changes', registers: reg })),
    serviceChanges: once('kubeproxy_sync_proxy_rules_service_changes_total', () => new Counter({ name: 'kubeproxy_sync_proxy_rules_service_changes_total', help: 'Cumulative proxy rules Service changes', registers: reg })),
    services: once('skiff_proxy_services', () => new Gauge({ name: 'skiff_proxy_services', help: 'Service ports programmed', registers: reg })),
    endpoints: once('skiff_proxy_endpoints', () => new Gauge({ name: 'skiff_proxy_endpoints', help: 'Endpoints programmed across all Service ports', registers: reg })),
    syncFailures: once('skiff_proxy_sync_failures_total', () => new Counter({ name: 'skiff_proxy_sync_failures_total', help: 'Syncs whose kernel update failed (the next one is full)', registers: reg })),
    drift: once('skiff_proxy_drift_repairs_total', () => new Counter({ name: 'skiff_proxy_drift_repairs_total', help: 'Periodic checks that found the kernel differing from what was written', registers: reg })),
  };
}
