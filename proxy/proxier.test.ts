import { pino } from 'pino';
import type { Histogram } from 'prom-client';
import { freePort } from '../test/support/ports.js';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../common/config.js';
import { Health } from '../common/health.js';
import { registry } from '../common/metrics.js';
import { MemoryCache } from '../common/watch/store.js';
import { endpoint, service, slice } from './fixtures.js';
import { FakeNft } from './nft/backend.js';
import { NftDataplane } from './nft/dataplane.js';
import { Proxier } from './proxier.js';

const tick = () => new Promise((r) => setImmediate(r));

function setup(now = () => Date.now(), afterFullSync?: () => void) {
  const cache = new MemoryCache();
  const fake = new FakeNft();
  const health = new Health();
  const config = parseConfig({ nodeName: 'node-a', proxy: { minSyncPeriod: 0, syncPeriod: 30_000 } });
  const proxier = new Proxier({ cache, config, log: pino({ level: 'silent' }), health, dataplane: new NftDataplane(fake, [4], { staging: false }), now, ...(afterFullSync ? { afterFullSync } : {}) });
  return { cache, fake, health, proxier };
}

describe('Proxier', () => {
  it('serves healthCheckNodePort for externalTrafficPolicy Local Services', async () => {
    const cache = new MemoryCache();
    const config = parseConfig({ nodeName: 'node-a' });
    const proxier = new Proxier({ cache, config, log: pino({ level: 'silent' }), health: new Health(), dataplane: new NftDataplane(new FakeNft(), [4]), healthCheckHost: '127.0.0.1' });
    const port = await freePort();
    const lb = service('ns', 'lb', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: port, ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }] });
    cache.upsert('services', 'ns/lb', lb);
    cache.replace('endpointslices', new Map([['ns/lb-abc', slice('ns', 'lb', [endpoint('10.244.1.5'), endpoint('10.244.1.6', { nodeName: 'node-b' })])]]));
    try {
      await proxier.sync();
      let res = await fetch(`http://127.0.0.1:${port}/`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { localEndpoints: number }).localEndpoints).toBe(1);
      cache.upsert('endpointslices', 'ns/lb-abc', slice('ns', 'lb', [endpoint('10.244.1.6', { nodeName: 'node-b' })]));
      proxier.onBatch({ changes: [{ kind: 'endpointslices', key: 'ns/lb-abc', current: slice('ns', 'lb', []) }], synced: [] });
      await proxier.sync();
      res = await fetch(`http://127.0.0.1:${port}/`);
      expect(res.status).toBe(503);
    } finally {
      await proxier.healthChecks!.close();
    }
  });

  it('keeps existing rules until services and slices are synced, then syncs fully', async () => {
    const { cache, fake, proxier } = setup();
    const ac = new AbortController();
    const done = proxier.run(ac.signal);
    cache.upsert('services', 'ns/web', service('ns', 'web'));
    cache.markSynced('services');
    await tick();
    await tick();
    expect(fake.transactions).toEqual([]);
    cache.upsert('endpointslices', 'ns/web-abc', slice('ns', 'web', [endpoint('10.244.1.5')]));
    cache.markSynced('endpointslices');
    await vi_waitFor(() => fake.transactions.length === 1);
    expect(fake.last).toMatch(/^add table ip skiff\ndelete table ip skiff\n/);
    expect(fake.last).toContain('32768 : 10.244.1.5');

    // A change is a partial sync; a change reverted within one batch is no sync at all.
    cache.upsert('endpointslices', 'ns/web-abc', slice('ns', 'web', [endpoint('10.244.1.6')]));
    await vi_waitFor(() => fake.transactions.length === 2);
    expect(fake.last).toBe('delete element ip skiff hairpin-g1 { 10.244.1.5 . 10.244.1.5 }\ndelete element ip skiff endpoint-addrs-g1 { 32768 }\nadd element ip skiff hairpin-g1 { 10.244.1.6 . 10.244.1.6 }\nadd element ip skiff endpoint-addrs-g1 { 32768 : 10.244.1.6 }\n');
    cache.upsert('services', 'ns/web', service('ns', 'web', { labels: { a: 'b' } }));
    await tick();
    await tick();
    await proxier.sync();
    expect(fake.transactions).toHaveLength(2);
    ac.abort();
    await done;
  });

  it('starts with one full sync that covers the initial list: no partial sync recomputes it after', async () => {
    const partials = async (): Promise<number> =>
      (await (registry.getSingleMetric('kubeproxy_sync_partial_proxy_rules_duration_seconds') as Histogram).get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
    const { cache, fake, proxier } = setup();
    const before = await partials();
    const ac = new AbortController();
    const done = proxier.run(ac.signal);
    for (const name of ['web', 'api', 'db']) {
      cache.upsert('services', `ns/${name}`, service('ns', name));
      cache.upsert('endpointslices', `ns/${name}-abc`, slice('ns', name, [endpoint('10.244.1.5')]));
    }
    cache.markSynced('services');
    cache.markSynced('endpointslices');
    await vi_waitFor(() => fake.transactions.length === 1);
    for (let i = 0; i < 5; i++) await tick();
    await new Promise((r) => setTimeout(r, 20));
    expect(await partials()).toBe(before);
    expect(fake.transactions).toHaveLength(1);
    ac.abort();
    await done;
  });

  it('warms up while the caches fill, and syncs even when the warm-up fails', async () => {
    for (const fails of [false, true]) {
      const cache = new MemoryCache();
      const fake = new FakeNft();
      const config = parseConfig({ nodeName: 'node-a', proxy: { minSyncPeriod: 0 } });
      const calls: { nodeName: string; transactionsBefore: number }[] = [];
      const warmUp = async (ctx: { nodeName: string }): Promise<void> => {
        calls.push({ nodeName: ctx.nodeName, transactionsBefore: fake.transactions.length });
        if (fails) throw new Error('boom');
      };
      const proxier = new Proxier({ cache, config, log: pino({ level: 'silent' }), health: new Health(), dataplane: new NftDataplane(fake, [4]), warmUp });
      const ac = new AbortController();
      const done = proxier.run(ac.signal);
      cache.upsert('services', 'ns/web', service('ns', 'web'));
      cache.replace('endpointslices', new Map([['ns/web-abc', slice('ns', 'web', [endpoint('10.244.1.5')])]]));
      for (const k of ['services', 'endpointslices'] as const) cache.markSynced(k);
      await vi_waitFor(() => fake.transactions.some((t) => t.includes('10.244.1.5')));
      expect(calls).toEqual([{ nodeName: 'node-a', transactionsBefore: 0 }]);
      ac.abort();
      await done;
    }
    // Caches already complete: nothing to overlap, so no warm-up delays the first sync.
    const cache = new MemoryCache();
    let warmed = false;
    const eager = new Proxier({ cache, config: parseConfig({ nodeName: 'node-a' }), log: pino({ level: 'silent' }), health: new Health(), dataplane: new NftDataplane(new FakeNft(), [4]), warmUp: async () => void (warmed = true) });
    for (const k of ['services', 'endpointslices'] as const) cache.markSynced(k);
    const ac = new AbortController();
    const done = eager.run(ac.signal);
    await tick();
    ac.abort();
    await done;
    expect(warmed).toBe(false);
  });

  it('returns when the abort lands during the startup warm-up and first full sync', async () => {
    const cache = new MemoryCache();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const proxier = new Proxier({ cache, config: parseConfig({ nodeName: 'node-a' }), log: pino({ level: 'silent' }), health: new Health(), dataplane: new NftDataplane(new FakeNft(), [4]), warmUp: () => gate });
    const ac = new AbortController();
    const done = proxier.run(ac.signal);
    for (const k of ['services', 'endpointslices'] as const) cache.markSynced(k);
    await tick();
    // Another component failed while this one was still warming up for a large cluster.
    ac.abort();
    release();
    const outcome = await Promise.race([done.then(() => 'returned'), new Promise((r) => setTimeout(() => r('hung'), 10_000))]);
    expect(outcome).toBe('returned');
  });

  it('runs afterFullSync after each successful full sync only (the agent compacts its heap there)', async () => {
    let calls = 0;
    const { cache, fake, proxier } = setup(undefined, () => calls++);
    cache.upsert('services', 'ns/web', service('ns', 'web'));
    cache.replace('endpointslices', new Map([['ns/web-abc', slice('ns', 'web', [endpoint('10.244.1.5')])]]));
    await proxier.sync();
    expect(calls).toBe(1);
    cache.upsert('endpointslices', 'ns/web-abc', slice('ns', 'web', [endpoint('10.244.1.6')]));
    proxier.onBatch({ changes: [{ kind: 'endpointslices', key: 'ns/web-abc', current: slice('ns', 'web', [endpoint('10.244.1.6')]) }], synced: [] });
    await proxier.sync();
    expect(fake.transactions).toHaveLength(2);
    expect(calls).toBe(1);
    cache.upsert('endpointslices', 'ns/web-abc', slice('ns', 'web', [endpoint('10.244.1.7')]));
    proxier.onBatch({ changes: [{ kind: 'endpointslices', key: 'ns/web-abc', current: slice('ns', 'web', [endpoint('10.244.1.7')]) }], synced: [] });
    fake.fail = new Error('boom');
    await proxier.sync();
    expect(calls).toBe(1);
    fake.fail = undefined;
    await proxier.sync();
    expect(fake.last).toMatch(/^add table ip skiff\ndelete table ip skiff\n/);
    expect(calls).toBe(2);
  });

  it('a failed apply makes the next sync full and retries the Services', async () => {
    const { cache, fake, proxier } = setup();
    cache.upsert('services', 'ns/web', service('ns', 'web'));
    cache.replace('endpointslices', new Map([['ns/web-abc', slice('ns', 'web', [endpoint('10.244.1.5')])]]));
    await proxier.sync();
    cache.upsert('endpointslices', 'ns/web-abc', slice('ns', 'web', [endpoint('10.244.1.6')]));
    proxier.onBatch({ changes: [{ kind: 'endpointslices', key: 'ns/web-abc', current: slice('ns', 'web', [endpoint('10.244.1.6')]) }], synced: [] });
    fake.fail = new Error('boom');
    await proxier.sync();
    expect(fake.transactions).toHaveLength(1);
    await proxier.sync();
    expect(fake.transactions).toHaveLength(2);
    expect(fake.last).toMatch(/^add table ip skiff\ndelete table ip skiff\n/);
    expect(fake.last).toContain('32768 : 10.244.1.6');
    const m = await registry.getSingleMetric('skiff_proxy_sync_failures_total')!.get();
    expect(m.values[0]!.value).toBeGreaterThanOrEqual(1);
  });

  it('the periodic check repairs drift with a full sync, and leaves a matching table alone', async () => {
    const { cache, fake, proxier } = setup();
    cache.upsert('services', 'ns/web', service('ns', 'web'));
    cache.replace('endpointslices', new Map());
    await proxier.sync();
    expect(fake.transactions).toHaveLength(1);
    expect(await proxier.check()).toEqual(['ip skiff: table missing']);
    // (Not started, so the repair waits for the next sync; it must be full.)
    await proxier.sync();
    expect(fake.transactions).toHaveLength(2);
    expect(fake.last).toMatch(/^add table ip skiff\n/);
  });

  it('liveness fails when queued changes wait longer than twice the sync period', async () => {
    let now = 1_000_000;
    const { health, proxier } = setup(() => now);
    expect(health.liveness().ok).toBe(true);
    proxier.onBatch({ changes: [{ kind: 'services', key: 'ns/x', current: service('ns', 'x') }], synced: [] });
    now += 61_000;
    expect(health.liveness().ok).toBe(false);
    await proxier.sync();
    expect(health.liveness().ok).toBe(true);
  });

  it('liveness fails when syncs keep failing, even with no change queued', async () => {
    let now = 1_000_000;
    const { cache, fake, health, proxier } = setup(() => now);
    cache.upsert('services', 'ns/web', service('ns', 'web'));
    cache.replace('endpointslices', new Map([['ns/web-abc', slice('ns', 'web', [endpoint('10.244.1.5')])]]));
    fake.fail = new Error('nft is broken');
    await proxier.sync();
    now += 61_000;
    expect(health.liveness().ok).toBe(false);
    await proxier.sync();
    expect(health.liveness().ok).toBe(true);
  });

  it('exports kube-proxy metrics', async () => {
    const { cache, proxier } = setup();
    cache.upsert('services', 'ns/web', service('ns', 'web', { internalTrafficPolicy: 'Local' }));
    cache.replace('endpointslices', new Map([['ns/web-abc', slice('ns', 'web', [endpoint('10.244.1.5', { nodeName: 'node-b' }), endpoint('10.244.1.6', { nodeName: 'node-b' })], { triggerTimeMs: Date.now() - 50 })]]));
    await proxier.sync();
    const text = await registry.metrics();
    for (const name of ['kubeproxy_sync_proxy_rules_duration_seconds', 'kubeproxy_sync_full_proxy_rules_duration_seconds', 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', 'kubeproxy_network_programming_duration_seconds', 'kubeproxy_sync_proxy_rules_endpoint_changes_total', 'kubeproxy_sync_proxy_rules_service_changes_total', 'skiff_proxy_services', 'skiff_proxy_endpoints']) {
      expect(text).toContain(name);
    }
    expect(text).toContain('kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="internal"} 1');
  });

  it('observes network programming latency from slice trigger times, but not for changes from before it started', async () => {
    let now = 1_000_000;
    const { cache, proxier } = setup(() => now);
    const count = async (): Promise<number> => (await registry.getSingleMetric('kubeproxy_network_programming_duration_seconds')!.get()).values.find((v) => (v as { metricName?: string }).metricName?.endsWith('_count'))?.value ?? 0;
    const before = await count();
    cache.upsert('services', 'ns/web', service('ns', 'web'));
    const change = (trigger: number) => {
      const s = slice('ns', 'web', [endpoint('10.244.1.5')], { triggerTimeMs: trigger });
      cache.upsert('endpointslices', 'ns/web-abc', s);
      proxier.onBatch({ changes: [{ kind: 'endpointslices', key: 'ns/web-abc', current: s }], synced: [] });
    };
    change(now - 3_600_000); // an hour before the proxy existed
    await proxier.sync();
    expect(await count()).toBe(before);
    now += 500;
    change(now - 200);
    await proxier.sync();
    expect(await count()).toBe(before + 1);
  });
});

// Generous: CI runs this beside kernel suites on two loaded cores; a passing wait returns at once.
async function vi_waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 5));
  }
}
