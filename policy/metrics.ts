// Policy metrics on the agent's registry. Denied connections come from the table's named counters,
// read when /metrics is scraped, so the datapath keeps no per-packet state of ours (a counter
// counts a denied flow's first packet: render.ts's deny chains drop its retransmits before it).
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../common/metrics.js';
import type { DeniedCount } from './dataplane.js';

const buckets = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

function once<T>(name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export interface PolicyMetrics {
  readonly syncDuration: Histogram<'kind'>;
  readonly syncFailures: Counter;
  readonly lastSync: Gauge;
  readonly pods: Gauge<'direction'>;
  readonly flowsCut: Counter;
  /** Where the denied-connection counter reads from; set by the running component. */
  source: (() => Promise<DeniedCount[]>) | undefined;
}

let current: PolicyMetrics | undefined;

export function policyMetrics(): PolicyMetrics {
  if (current) return current;
  const reg = [registry];
  const m: PolicyMetrics = {
    syncDuration: new Histogram({ name: 'skiff_policy_sync_duration_seconds', help: 'Time to compute and apply NetworkPolicy rules, by kind of sync (full or partial)', labelNames: ['kind'] as const, buckets, registers: reg }),
    syncFailures: new Counter({ name: 'skiff_policy_sync_failures_total', help: 'Policy syncs whose kernel update failed (the next one is full)', registers: reg }),
    lastSync: new Gauge({ name: 'skiff_policy_sync_last_timestamp_seconds', help: 'The last time policy rules were successfully synced', registers: reg }),
    pods: new Gauge({ name: 'skiff_policy_isolated_pods', help: 'Pods on this node isolated by NetworkPolicy, per direction', labelNames: ['direction'] as const, registers: reg }),
    flowsCut: new Counter({ name: 'skiff_policy_conntrack_deleted_total', help: 'Established connections cut because a policy change denies them (policy.strictEstablished)', registers: reg }),
    source: undefined,
  };
  once('skiff_policy_denied_connections_total', () =>
    new Counter({
      name: 'skiff_policy_denied_connections_total',
      help: 'Connections denied by NetworkPolicy or admin policy, per policied pod on this node and direction (a flow\'s first packet; its retransmits within 2 minutes are not counted again)',
      labelNames: ['namespace', 'pod', 'direction'] as const,
      registers: reg,
      async collect() {
        this.reset();
        if (!m.source) return;
        for (const c of await m.source().catch(() => [])) {
          const [namespace, pod] = c.pod.split('/') as [string, string];
          this.inc({ namespace, pod, direction: c.direction }, c.connections);
        }
      },
    }),
  );
  current = m;
  return m;
}
