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

  it('sets a Node condition through the status subresource, merged by type: the kubelet\'s Ready stays', async () => {
    const ready = { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' };
    fx.api.store.create('nodes', { metadata: { name: 'n2', annotations: { a: 'b' } }, status: { conditions: [ready] } });
    const api = createApiClient(fx.kubeConfig);
    const cond = { type: 'NetworkUnavailable', status: 'False', reason: 'SkiffIsUp', message: 'up' } as const;
    await api.patchNodeCondition('n2', cond);
    await api.patchNodeCondition('n2', { ...cond, message: 'up again' });
    const node = fx.api.store.get('nodes', 'n2');
    const conditions = (node.status as { conditions: Record<string, string>[] }).conditions;
    expect(conditions.map((c) => c.type)).toEqual(['Ready', 'NetworkUnavailable']);
    expect(conditions[0]).toEqual(ready);
    expect(conditions[1]).toMatchObject({ ...cond, message: 'up again' });
    expect(conditions[1]!.lastTransitionTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(node.metadata.annotations).toEqual({ a: 'b' });
    const patch = fx.api.requests.filter((r) => r.method === 'PATCH').at(-1);
    expect(patch?.url).toBe('/api/v1/nodes/n2/status');
  });

  it('rejects with the API error for a missing node', async () => {
    const api = createApiClient(fx.kubeConfig);
    await expect(api.patchNodeAnnotations('nope', { a: 'b' })).rejects.toMatchObject({ status: 404 });
  });
});
