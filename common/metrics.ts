// One prom-client registry for the whole agent. Metric names follow kube-proxy (kubeproxy_*) and
// CoreDNS (coredns_*) where the meaning is the same, so existing dashboards keep working.
import { Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
let defaultsCollected = false;

/**
 * prom-client samples the event loop's delay with a libuv timer at this resolution. Its default,
 * 10 ms, wakes an idle agent 100 times a second: ~0.4% of a core on this machine, almost half of
 * the idle budget (issue 16). At 100 ms a stall long enough to matter to a sync still shows.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

export function collectProcessMetrics(): void {
  if (defaultsCollected) return;
  defaultsCollected = true;
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
}
