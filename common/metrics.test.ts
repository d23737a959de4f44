import { describe, expect, it } from 'vitest';
import { collectProcessMetrics, registry } from './metrics.js';

describe('process metrics', () => {
  it('exposes the process and event loop metrics Prometheus dashboards for Node expect', async () => {
    collectProcessMetrics();
    collectProcessMetrics();
    // The loop-delay histogram needs a few of its samples before its quantiles mean anything.
    await new Promise((r) => setTimeout(r, 550));
    const text = await registry.metrics();
    for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(text).toMatch(new RegExp(`^${name} `, 'm'));
    }
    const p99 = Number(/^nodejs_eventloop_lag_p99_seconds (\S+)/m.exec(text)?.[1]);
    expect(p99).toBeGreaterThan(0);
  });
});
