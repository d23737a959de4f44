import { afterEach, describe, expect, it } from 'vitest';
import { Counter } from 'prom-client';
import { Health } from './health.js';
import { healthRoutes, metricsRoutes, startHttp, type HttpEndpoints } from './http.js';
import { registry } from './metrics.js';

let http: HttpEndpoints | undefined;
afterEach(async () => {
  await http?.close();
  http = undefined;
});

describe('agent HTTP endpoints', () => {
  it('serves metrics from the shared registry and health by check results', async () => {
    const c = new Counter({ name: 'skiff_test_http_total', help: 'test', registers: [registry] });
    c.inc(3);
    let synced = false;
    const health = new Health();
    health.addLiveness('sync', () => ({ ok: synced, detail: { lastSync: synced ? 'now' : 'never' } }));
    health.addReadiness('cache', () => ({ ok: synced }));
    // Both on one address: the one listener serves both sets of paths.
    http = await startHttp([
      { bind: '127.0.0.1:0', routes: metricsRoutes({ '/status': () => Promise.resolve({ hello: 'world' }) }) },
      { bind: '127.0.0.1:0', routes: healthRoutes(health) },
    ]);
    expect(http.servers).toHaveLength(1);
    const base = `http://127.0.0.1:${http.addresses()[0]!.port}`;

    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(await metrics.text()).toMatch(/^skiff_test_http_total 3$/m);
    expect((await fetch(`${base}/healthz`)).status).toBe(503);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    synced = true;
    const healthz = await fetch(`${base}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.json()).toEqual({ ok: true, checks: { sync: { ok: true, detail: { lastSync: 'now' } } } });
    expect((await fetch(`${base}/livez`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    health.draining = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${base}/status`)).json()).toEqual({ hello: 'world' });
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    registry.removeSingleMetric('skiff_test_http_total');
  });

  it('keeps metrics and status off the health listener, and health off the metrics listener', async () => {
    const health = new Health();
    http = await startHttp([
      { bind: '127.0.0.1:0', routes: metricsRoutes({ '/status': () => ({ node: 'a' }) }) },
      { bind: '127.0.0.2:0', routes: healthRoutes(health) },
    ]);
    const [m, h] = http.addresses();
    const metrics = `http://127.0.0.1:${m!.port}`;
    const healthz = `http://127.0.0.2:${h!.port}`;
    for (const p of ['/healthz', '/livez', '/readyz']) {
      expect((await fetch(`${healthz}${p}`)).status, p).toBe(200);
      expect((await fetch(`${metrics}${p}`)).status, p).toBe(404);
    }
    for (const p of ['/metrics', '/status', '/metrics/', '/debug/pprof']) expect((await fetch(`${healthz}${p}`)).status, p).toBe(404);
    expect((await fetch(`${metrics}/metrics`)).status).toBe(200);
    expect(await (await fetch(`${metrics}/status?x=1`)).json()).toEqual({ node: 'a' });
  });

  it('reports a check that throws as failing instead of crashing, and a failing document as 500', async () => {
    const health = new Health();
    health.addLiveness('boom', () => {
      throw new Error('kaput');
    });
    http = await startHttp([
      { bind: '127.0.0.1:0', routes: { ...healthRoutes(health), ...metricsRoutes({ '/status': () => Promise.reject(new Error('no cache')) }) } },
    ]);
    const base = `http://127.0.0.1:${http.addresses()[0]!.port}`;
    const r = await fetch(`${base}/healthz`);
    expect(r.status).toBe(503);
    expect(JSON.stringify(await r.json())).toContain('kaput');
    const s = await fetch(`${base}/status`);
    expect(s.status).toBe(500);
    expect(await s.text()).toContain('no cache');
  });

  it('fails to start when an address is taken', async () => {
    const first = await startHttp([{ bind: '127.0.0.1:0', routes: {} }]);
    const taken = `127.0.0.1:${first.addresses()[0]!.port}`;
    await expect(startHttp([{ bind: '127.0.0.3:0', routes: {} }, { bind: taken, routes: {} }])).rejects.toThrow(/EADDRINUSE/);
    await first.close();
  });
});
