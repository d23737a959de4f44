import { afterEach, describe, expect, it } from 'vitest';
import { Counter } from 'prom-client';
import { Health } from './health.js';
import { startHttp, type HttpEndpoints } from './http.js';
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
    http = await startHttp(['127.0.0.1:0'], health, (p) => (p === '/status' ? Promise.resolve({ hello: 'world' }) : undefined));
    const base = `http://127.0.0.1:${http.addresses()[0]!.port}`;

    const metrics = await fetch(`${base}/metrics`);
    expect(await metrics.text()).toMatch(/^skiff_test_http_total 3$/m);
    expect((await fetch(`${base}/healthz`)).status).toBe(503);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    synced = true;
    const healthz = await fetch(`${base}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.json()).toEqual({ ok: true, checks: { sync: { ok: true, detail: { lastSync: 'now' } } } });
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    health.draining = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${base}/status`)).json()).toEqual({ hello: 'world' });
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    registry.removeSingleMetric('skiff_test_http_total');
  });

  it('reports a check that throws as failing instead of crashing', async () => {
    const health = new Health();
    health.addLiveness('boom', () => {
      throw new Error('kaput');
    });
    http = await startHttp(['127.0.0.1:0'], health);
    const r = await fetch(`http://127.0.0.1:${http.addresses()[0]!.port}/healthz`);
    expect(r.status).toBe(503);
    expect(JSON.stringify(await r.json())).toContain('kaput');
  });
});
