// CNI request and overlay sync metrics on skiff's registry. Metrics are looked up before creation
// so a second component instance (tests, restart in-process) reuses them instead of throwing.
import { Counter, Gauge, Histogram, type Metric } from 'prom-client';
import { registry } from '../common/metrics.js';

function once<T extends Metric>(name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export const cniRequests = once(
  'skiff_cni_requests_total',
  () => new Counter({ name: 'skiff_cni_requests_total', help: 'CNI requests served by the agent, by command and exit code.', labelNames: ['command', 'code'], registers: [registry] }),
);

export const cniRequestSeconds = once(
  'skiff_cni_request_duration_seconds',
  () =>
    new Histogram({
      name: 'skiff_cni_request_duration_seconds',
      help: 'Time the agent spent on one CNI request.',
      labelNames: ['command'],
      buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
);

export const overlayPeers = once('skiff_cni_overlay_peers', () => new Gauge({ name: 'skiff_cni_overlay_peers', help: 'Peer nodes this node routes pod traffic to (over VXLAN or, with cni.directRouting, directly).', registers: [registry] }));

export const overlaySyncErrors = once(
  'skiff_cni_sync_errors_total',
  () => new Counter({ name: 'skiff_cni_sync_errors_total', help: 'Failed overlay syncs (each is retried with backoff).', registers: [registry] }),
);

export const ipamReleased = once(
  'skiff_cni_ipam_leaked_released_total',
  () => new Counter({ name: 'skiff_cni_ipam_leaked_released_total', help: 'Pod addresses released by reconcile or GC because nothing owned them.', registers: [registry] }),
);
