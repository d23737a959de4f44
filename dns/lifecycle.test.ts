// Upstream failure (fast SERVFAIL, serve-stale), /health and /ready with lameduck, and live reload
// of dns.* settings, against the real component on 127.0.0.1.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../common/config.js';
import { Health } from '../common/health.js';
import { missing } from '../test/support/env.js';
import { createDns } from './index.js';
import { cacheWith, service } from './testing/fixtures.js';
import { dig, freePort, startDns, startUnbound } from './testing/harness.js';

const objects = { namespaces: ['default'], services: [service('default', 'web', { clusterIPs: ['10.96.0.20'] })] };

describe.skipIf(missing('dns upstream failure', { tools: ['dig', 'unbound'] }))('upstream failure', () => {
  it('serves stale answers when enabled and SERVFAILs fast otherwise', async () => {
    const unbound = await startUnbound(['a.example.test A 192.0.2.1', 'b.example.test A 192.0.2.2'], { ttl: 1 });
    // Long upstream timeouts: "fast" (the refusal seen, not a timeout waited out) keeps a wide
    // margin over a dig started on a loaded machine.
    const dns = await startDns(cacheWith(objects), { dns: { upstreams: [`127.0.0.1:${unbound.port}`], serveStale: true } }, { forward: { timeoutMs: 6000, deadlineMs: 8000 } });
    try {
      expect((await dig(dns.port, ['a.example.test', 'A'])).answer).toEqual(['a.example.test. 1 IN A 192.0.2.1']);
      await unbound.stop();
      await new Promise((r) => setTimeout(r, 1100));
      let t0 = performance.now();
      const stale = await dig(dns.port, ['a.example.test', 'A']);
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(stale.status).toBe('NOERROR');
      expect(stale.answer).toEqual(['a.example.test. 30 IN A 192.0.2.1']);
      t0 = performance.now();
      const fresh = await dig(dns.port, ['b.example.test', 'A']);
      expect(fresh.status).toBe('SERVFAIL');
      expect(performance.now() - t0).toBeLessThan(3000);
    } finally {
      await dns.stop();
      await unbound.stop();
    }
  });
});

describe.skipIf(missing('dns probes', { tools: ['dig'] }))('health, ready and lameduck', () => {
  it('reports ready once synced, and lameduck on shutdown while still answering', async () => {
    const [healthPort, readyPort] = [await freePort(), await freePort()];
    // Lameduck long enough for the probes and a dig (a process) on a loaded machine.
    const dns = await startDns(cacheWith(objects), { dns: { healthPort, readyPort } }, { lameduckMs: 3000 });
    const get = async (port: number, path: string): Promise<number> => (await fetch(`http://127.0.0.1:${port}${path}`)).status;
    expect(await get(healthPort, '/health')).toBe(200);
    expect(await get(readyPort, '/ready')).toBe(200);
    expect(dns.health.readiness().ok).toBe(true);
    const stopping = dns.stop();
    await expect.poll(() => get(healthPort, '/health'), { timeout: 3000, interval: 20 }).toBe(503);
    expect(await get(readyPort, '/ready')).toBe(503);
    expect((await dig(dns.port, ['web.default.svc.cluster.local', 'A'])).status).toBe('NOERROR');
    await stopping;
    await expect(get(healthPort, '/health')).rejects.toThrow();
  });
});

describe.skipIf(missing('dns reload', { tools: ['dig'] }))('live reload', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiffdns-reload-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('applies a changed dns.ttl from the config file without a restart', async () => {
    const file = join(dir, 'config.yaml');
    const dnsCfg = (ttl: number) => `dns:\n  ttl: ${ttl}\n  healthPort: 0\n  readyPort: 0\n  workers: 0\n  upstreams: ["127.0.0.1:9"]\n`;
    writeFileSync(file, dnsCfg(5));
    const dns = await startDns(cacheWith(objects), { configFile: file, dns: { ttl: 5 } });
    try {
      expect((await dig(dns.port, ['web.default.svc.cluster.local', 'A'])).answer).toEqual(['web.default.svc.cluster.local. 5 IN A 10.96.0.20']);
      writeFileSync(file, dnsCfg(7));
      await expect.poll(async () => (await dig(dns.port, ['web.default.svc.cluster.local', 'A'])).answer[0], { timeout: 5000, interval: 100 }).toBe('web.default.svc.cluster.local. 7 IN A 10.96.0.20');
      // A broken file keeps the last good settings.
      writeFileSync(file, 'dns:\n  ttl: -3\n');
      await new Promise((r) => setTimeout(r, 400));
      expect((await dig(dns.port, ['web.default.svc.cluster.local', 'A'])).answer[0]).toBe('web.default.svc.cluster.local. 7 IN A 10.96.0.20');
    } finally {
      await dns.stop();
    }
  });
});

describe('disabled', () => {
  it('removes what an earlier run left behind and serves nothing', async () => {
    const calls: string[] = [];
    const runner = async (argv: readonly string[]): Promise<string> => {
      calls.push(argv.join(' '));
      if (argv.join(' ') === 'ip -j addr show') return JSON.stringify([{ ifname: 'lo', addr_info: [{ local: '127.0.0.1' }, { local: '10.96.0.10' }] }]);
      return '';
    };
    const config = parseConfig({ nodeName: 'node-a', dns: { enabled: false } });
    const comp = createDns({ config, cache: cacheWith(objects), log: pino({ level: 'silent' }), health: new Health(), api: { patchNodeAnnotations: async () => undefined, patchNodeCondition: async () => undefined } }, { runner, nodeLocal: true });
    await comp.run(new AbortController().signal);
    expect(calls).toEqual(['ip -j addr show', 'ip addr del 10.96.0.10/32 dev lo', 'nft delete table inet skiff-dns']);
  });
});
