// One prom-client registry for the whole agent. Metric names follow kube-proxy (kubeproxy_*) and
// CoreDNS (coredns_*) where the meaning is the same, so existing dashboards keep working.
import { Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
let defaultsCollected = false;

export function collectProcessMetrics(): void {
  if (defaultsCollected) return;
  defaultsCollected = true;
  collectDefaultMetrics({ register: registry });
}
