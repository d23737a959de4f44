import { pino } from 'pino';
import { freePort } from '../test/support/ports.js';
import { afterEach, describe, expect, it } from 'vitest';
import { HealthCheckServers } from './healthcheck.js';

describe('healthCheckNodePort servers', () => {
  const hc = new HealthCheckServers('127.0.0.1', pino({ level: 'silent' }));
  afterEach(() => hc.close());

  it('answers 200 with local endpoints, 503 without, and closes removed ports', async () => {
    const port = await freePort();
    await hc.sync(new Map([[port, { namespace: 'ns', name: 'lb', localEndpoints: 2 }]]));
    let res = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ service: { namespace: 'ns', name: 'lb' }, localEndpoints: 2, serviceProxyHealthy: true });
    await hc.sync(new Map([[port, { namespace: 'ns', name: 'lb', localEndpoints: 0 }]]));
    res = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { localEndpoints: number }).localEndpoints).toBe(0);
    await hc.sync(new Map());
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
  });
});
