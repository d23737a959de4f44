import { Gauge, Histogram } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';
import { Health } from './health.js';
import { registry } from './metrics.js';
import { buildStatus, renderStatus } from './status.js';
import type { NodeInfo } from './types.js';
import { MemoryCache } from './watch/store.js';

const node = (name: string, cidr: string, ip: string, mac?: string): NodeInfo => ({
  name, uid: name, podCIDRs: [cidr], addresses: [{ type: 'InternalIP', address: ip }], labels: {},
  annotations: mac ? { 'skiff.io/vtep-mac': mac, 'skiff.io/public-ip': ip } : {}, ready: true,
});

describe('skiff status', () => {
  const names = ['kubeproxy_sync_proxy_rules_duration_seconds', 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', 'skiff_proxy_services'];
  afterAll(() => names.forEach((n) => registry.removeSingleMetric(n)));

  it('reports peers, counts and sync figures from the cache and the metrics', async () => {
    for (const n of names) registry.removeSingleMetric(n);
    const h = new Histogram({ name: names[0]!, help: 'h', registers: [registry] });
    h.observe(0.02);
    h.observe(0.04);
    new Gauge({ name: names[1]!, help: 'g', registers: [registry] }).set(1_700_000_000);
    new Gauge({ name: names[2]!, help: 'g', registers: [registry] }).set(7);
    const cache = new MemoryCache();
    cache.upsert('nodes', 'n1', node('n1', '10.244.0.0/24', '172.31.0.11'));
    cache.upsert('nodes', 'n2', node('n2', '10.244.1.0/24', '172.31.0.12', 'aa:bb:cc:dd:ee:ff'));
    const s = await buildStatus(parseConfig({ nodeName: 'n1' }), cache, new Health());
    expect(s.podCIDRs).toEqual(['10.244.0.0/24']);
    expect(s.peers).toEqual([{ name: 'n2', ip: '172.31.0.12', podCIDRs: ['10.244.1.0/24'], vtepMAC: 'aa:bb:cc:dd:ee:ff' }]);
    expect(s.proxy).toMatchObject({ servicePorts: 7, syncs: 2, meanSyncMs: 30, lastSync: '2023-11-14T22:13:20.000Z' });
    const text = renderStatus(s);
    expect(text).toContain('n2');
    expect(text).toContain('2 syncs, mean 30 ms');
  });
});
