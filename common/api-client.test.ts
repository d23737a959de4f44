// The agent's writes go over HTTP to the fake API server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiClient } from './api-client.js';
import { fixture, type Fixture } from './watch/test-helpers.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await fixture();
});
afterAll(async () => {
  await fx.dispose();
});

describe('api client', () => {
  it('merge-patches node annotations: sets, keeps others, and null removes', async () => {
    fx.api.store.create('nodes', { metadata: { name: 'n1', labels: { l: '1' }, annotations: { keep: 'me', drop: 'me' } } });
    const api = createApiClient(fx.kubeConfig);
    await api.patchNodeAnnotations('n1', { 'skiff.io/vtep-mac': '02:00:00:00:00:01', drop: null });
    const node = fx.api.store.get('nodes', 'n1');
    expect(node.metadata.annotations).toEqual({ keep: 'me', 'skiff.io/vtep-mac': '02:00:00:00:00:01' });
    expect(node.metadata.labels).toEqual({ l: '1' });
    const patch = fx.api.requests.find((r) => r.method === 'PATCH');
    expect(patch?.url).toBe('/api/v1/nodes/n1');
  });

  it('rejects with the API error for a missing node', async () => {
    const api = createApiClient(fx.kubeConfig);
    await expect(api.patchNodeAnnotations('nope', { a: 'b' })).rejects.toMatchObject({ status: 404 });
  });
});
