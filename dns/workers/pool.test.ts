// Two worker processes sharing one UDP socket: both fed from the agent's cache, answers follow
// watch events, and their metrics reach the agent's registry.
import cluster from 'node:cluster';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../../test/support/env.js';
import { dnsMetrics } from '../metrics.js';
import { cacheWith, service } from '../testing/fixtures.js';
import { dig, startDns, type RunningDns } from '../testing/harness.js';

describe.skipIf(missing('dns workers', { tools: ['dig'] }))('dns worker processes', () => {
  const cache = cacheWith({ namespaces: ['default'], services: [service('default', 'web', { clusterIPs: ['10.96.0.20'] })] });
  const dir = mkdtempSync(join(tmpdir(), 'skiffdns-workers-'));
  const file = join(dir, 'config.yaml');
  const dnsCfg = (ttl: number) => `dns:\n  ttl: ${ttl}\n  healthPort: 0\n  readyPort: 0\n  workers: 2\n  upstreams: ["127.0.0.1:9"]\n`;
  let dns: RunningDns;
  beforeAll(async () => {
    writeFileSync(file, dnsCfg(30));
    dns = await startDns(cache, { configFile: file, dns: { workers: 2 } });
  }, 60_000);
  afterAll(async () => {
    await dns?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers from the workers over UDP and TCP', async () => {
    for (let i = 0; i < 10; i++) expect((await dig(dns.port, ['web.default.svc.cluster.local', 'A'])).answer).toEqual(['web.default.svc.cluster.local. 30 IN A 10.96.0.20']);
    expect((await dig(dns.port, ['+tcp', 'web.default.svc.cluster.local', 'A'])).status).toBe('NOERROR');
  });

  it('follows watch events', async () => {
    cache.upsert('services', 'default/late', service('default', 'late', { clusterIPs: ['10.96.0.99'] }));
    await expect.poll(async () => (await dig(dns.port, ['late.default.svc.cluster.local', 'A'])).answer[0], { timeout: 5000, interval: 100 }).toBe('late.default.svc.cluster.local. 30 IN A 10.96.0.99');
  });

  it('merges worker metrics into the agent registry', async () => {
    const before = dnsMetrics.requests.total();
    await dig(dns.port, ['web.default.svc.cluster.local', 'A']);
    await expect.poll(() => dnsMetrics.requests.total(), { timeout: 5000, interval: 200 }).toBeGreaterThan(before);
  });

  it('replaces a worker that dies', async () => {
    const workers = Object.values(cluster.workers ?? {});
    expect(workers).toHaveLength(2);
    workers[0]!.process.kill('SIGKILL');
    await expect.poll(() => Object.values(cluster.workers ?? {}).filter((w) => w && !w.isDead() && !workers.includes(w)).length, { timeout: 20_000, interval: 200 }).toBe(1);
    for (let i = 0; i < 6; i++) expect((await dig(dns.port, ['web.default.svc.cluster.local', 'A'])).status).toBe('NOERROR');
  });

  it('passes reloaded settings to every worker', async () => {
    writeFileSync(file, dnsCfg(9));
    await expect
      .poll(
        async () => {
          const ttls = new Set<string>();
          for (let i = 0; i < 8; i++) ttls.add((await dig(dns.port, ['web.default.svc.cluster.local', 'A'])).answer[0]!.split(' ')[1]!);
          return [...ttls].join(',');
        },
        { timeout: 5000, interval: 100 },
      )
      .toBe('9');
  });
});
