// Two DNS worker threads on one port: both fed from the agent's cache, answers follow watch
// events, their metrics reach the agent's registry, and a thread that dies is replaced.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../../test/support/env.js';
import { dnsMetrics } from '../metrics.js';
import { cacheWith, endpoint, service, slice } from '../testing/fixtures.js';
import { dig, startDns, type RunningDns } from '../testing/harness.js';
import { dnsThreads } from './pool.js';

describe.skipIf(missing('dns workers', { tools: ['dig'] }))('dns worker threads', () => {
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

  it('answers from the threads over UDP and TCP', async () => {
    expect(dnsThreads().length).toBeGreaterThanOrEqual(1);
    for (let i = 0; i < 10; i++) expect((await dig(dns.port, ['web.default.svc.cluster.local', 'A'])).answer).toEqual(['web.default.svc.cluster.local. 30 IN A 10.96.0.20']);
    expect((await dig(dns.port, ['+tcp', 'web.default.svc.cluster.local', 'A'])).status).toBe('NOERROR');
  });

  it.skipIf(missing('dns thread priority', { root: true }))('runs the threads at a higher priority than the rest of the process (root)', () => {
    // The 19th field of a thread's stat is its niceness; the threads of this process other than
    // the DNS ones stay at the process's own.
    const nice = readdirSync('/proc/self/task').map((t) => Number(readFileSync(`/proc/self/task/${t}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]));
    expect(nice.filter((n) => n === -5).length).toBe(dnsThreads().length);
  });

  it('follows watch events', async () => {
    cache.upsert('services', 'default/late', service('default', 'late', { clusterIPs: ['10.96.0.99'] }));
    await expect.poll(async () => (await dig(dns.port, ['late.default.svc.cluster.local', 'A'])).answer[0], { timeout: 5000, interval: 100 }).toBe('late.default.svc.cluster.local. 30 IN A 10.96.0.99');
  });

  it('serves a headless Service whose slice arrived before the Service (the slice is sent again)', async () => {
    const eps = [endpoint(['10.244.0.7'], { nodeName: 'n1' }), endpoint(['10.244.0.8'], { hostname: 'db-0' })];
    cache.upsert('endpointslices', 'default/db-1', slice('default', 'db', 'db-1', { endpoints: eps }));
    await new Promise((r) => setTimeout(r, 200));
    cache.upsert('services', 'default/db', service('default', 'db', { headless: true }));
    await expect.poll(async () => (await dig(dns.port, ['db.default.svc.cluster.local', 'A'])).answer.sort(), { timeout: 5000, interval: 100 }).toEqual(['db.default.svc.cluster.local. 30 IN A 10.244.0.7', 'db.default.svc.cluster.local. 30 IN A 10.244.0.8']);
    expect((await dig(dns.port, ['db-0.db.default.svc.cluster.local', 'A'])).answer).toEqual(['db-0.db.default.svc.cluster.local. 30 IN A 10.244.0.8']);
  });

  it('answers SRV from the ports a Service travels with, and follows a headless Service turning ClusterIP', async () => {
    const ports = [{ name: 'pg', protocol: 'TCP' as const, port: 5432, targetPort: 5432 }];
    cache.upsert('endpointslices', 'default/pg-1', slice('default', 'pg', 'pg-1', { endpoints: [endpoint(['10.244.0.9'])], ports: [{ name: 'pg', port: 5432, protocol: 'TCP' }] }));
    cache.upsert('services', 'default/pg', service('default', 'pg', { headless: true, ports }));
    const a = async (): Promise<string[]> => (await dig(dns.port, ['pg.default.svc.cluster.local', 'A'])).answer;
    await expect.poll(a, { timeout: 5000, interval: 100 }).toEqual(['pg.default.svc.cluster.local. 30 IN A 10.244.0.9']);
    cache.upsert('services', 'default/pg', service('default', 'pg', { clusterIPs: ['10.96.0.54'], ports }));
    await expect.poll(a, { timeout: 5000, interval: 100 }).toEqual(['pg.default.svc.cluster.local. 30 IN A 10.96.0.54']);
    // An endpoint change of a ClusterIP Service changes nothing DNS answers.
    cache.upsert('endpointslices', 'default/pg-1', slice('default', 'pg', 'pg-1', { endpoints: [endpoint(['10.244.0.10'])], ports: [{ name: 'pg', port: 5432, protocol: 'TCP' }] }));
    expect((await dig(dns.port, ['_pg._tcp.pg.default.svc.cluster.local', 'SRV'])).answer).toEqual(['_pg._tcp.pg.default.svc.cluster.local. 30 IN SRV 0 100 5432 pg.default.svc.cluster.local.']);
    expect(await a()).toEqual(['pg.default.svc.cluster.local. 30 IN A 10.96.0.54']);
  });

  it('merges worker metrics into the agent registry', async () => {
    const before = dnsMetrics.requests.total();
    await dig(dns.port, ['web.default.svc.cluster.local', 'A']);
    await expect.poll(() => dnsMetrics.requests.total(), { timeout: 5000, interval: 200 }).toBeGreaterThan(before);
  });

  it('replaces a thread that dies', async () => {
    const before = dnsThreads();
    await before[0]!.terminate();
    await expect.poll(() => dnsThreads().filter((w) => !before.includes(w)).length, { timeout: 20_000, interval: 200 }).toBe(1);
    expect(dnsThreads()).toHaveLength(before.length);
    // The replacement is listed as soon as it is spawned, before it has bound its sockets (with a
    // single thread, as with Node's dgram, nothing listens meanwhile): wait for it to answer.
    await expect.poll(async () => (await dig(dns.port, ['web.default.svc.cluster.local', 'A']).catch(() => undefined))?.status, { timeout: 20_000, interval: 200 }).toBe('NOERROR');
    for (let i = 0; i < 6; i++) expect((await dig(dns.port, ['web.default.svc.cluster.local', 'A'])).status).toBe('NOERROR');
    // The headless Service of an earlier test reached the replacement only in its first snapshot:
    // every answer (the threads share the port, each query lands on one) has its endpoint's record.
    for (let i = 0; i < 12; i++) expect((await dig(dns.port, ['db-0.db.default.svc.cluster.local', 'A'])).answer).toEqual(['db-0.db.default.svc.cluster.local. 30 IN A 10.244.0.8']);
  });

  it('passes reloaded settings to every thread', async () => {
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
