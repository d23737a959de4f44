import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FakeStore } from '../../sandbox/apiserver/store.js';
import type { KubeObject } from '../../sandbox/apiserver/resources.js';
import { EndpointSliceController, Scheduler } from '../../sandbox/controllers.js';
import { ensureNodes, ensureSystemServices } from '../../sandbox/bootstrap.js';
import { layout } from '../../sandbox/names.js';
import { serviceAdmission } from '../../sandbox/service-alloc.js';

const log = pino({ level: 'silent' });
const L = (nodes: number) => layout({ name: 'skiffsbu', nodes, subnet: '172.31.240.0/24', stateDir: '/nonexistent' });

function cluster(nodes = 3): FakeStore {
  const store = new FakeStore();
  store.admit('services', serviceAdmission(() => store.select('services'), { serviceCIDR: '10.96.0.0/12' }));
  ensureNodes(store, L(nodes));
  ensureSystemServices(store, L(nodes));
  return store;
}

const readyPod = (store: FakeStore, name: string, ip: string, labels = { app: 'web' }): void => {
  store.create('pods', { metadata: { name, namespace: 'default', labels }, spec: { containers: [{ name: 'c' }] } });
  store.patch('pods', name, { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] } }, { subresource: 'status' });
};
const managed = (store: FakeStore): KubeObject[] => store.select('endpointslices', { labelSelector: 'endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io' });

describe('bootstrap', () => {
  it('creates nodes with the lowest free /24s and keeps them across reruns and resizes', () => {
    const store = cluster(3);
    const cidrs = () => store.select('nodes').map((n) => `${n.metadata.name}=${(n.spec as { podCIDR: string }).podCIDR}`);
    expect(cidrs()).toEqual(['skiffsbu-node-1=10.244.0.0/24', 'skiffsbu-node-2=10.244.1.0/24', 'skiffsbu-node-3=10.244.2.0/24']);
    ensureNodes(store, L(2));
    expect(cidrs()).toEqual(['skiffsbu-node-1=10.244.0.0/24', 'skiffsbu-node-2=10.244.1.0/24']);
    ensureNodes(store, L(4));
    expect(cidrs()).toEqual(['skiffsbu-node-1=10.244.0.0/24', 'skiffsbu-node-2=10.244.1.0/24', 'skiffsbu-node-3=10.244.2.0/24', 'skiffsbu-node-4=10.244.3.0/24']);
    const rv = store.resourceVersion;
    ensureNodes(store, L(4));
    ensureSystemServices(store, L(4));
    expect(store.resourceVersion).toBe(rv); // nothing changed, nothing written
    // A condition the node's agent set survives a rerun; Ready stays the stand-in kubelet's.
    const agentCond = { type: 'NetworkUnavailable', status: 'False', reason: 'SkiffIsUp', message: 'up' };
    store.patch('nodes', 'skiffsbu-node-1', { status: { conditions: [agentCond] } }, { subresource: 'status' });
    ensureNodes(store, L(4));
    const conds = (store.get('nodes', 'skiffsbu-node-1').status as { conditions: { type: string }[] }).conditions;
    expect(conds.map((c) => c.type)).toEqual(['Ready', 'NetworkUnavailable']);
    expect(conds[1]).toEqual(agentCond);
    expect((store.get('services', 'kube-dns', 'kube-system').spec as { clusterIP: string }).clusterIP).toBe('10.96.0.10');
    expect((store.get('endpointslices', 'kubernetes', 'default').endpoints as { addresses: string[] }[])[0]!.addresses).toEqual(['172.31.240.1']);
  });

  it('makes the system namespaces when the store has none (a state file from before they were seeded)', () => {
    const store = new FakeStore({ seedNamespaces: false });
    store.admit('services', serviceAdmission(() => store.select('services'), { serviceCIDR: '10.96.0.0/12' }));
    ensureSystemServices(store, L(1));
    expect(store.select('namespaces').map((n) => n.metadata.name)).toEqual(['default', 'kube-node-lease', 'kube-public', 'kube-system']);
  });
});

describe('scheduler', () => {
  it('binds unscheduled pods across the nodes', () => {
    const store = cluster(3);
    for (const n of ['a', 'b', 'c', 'd']) store.create('pods', { metadata: { name: n, namespace: 'default' }, spec: { containers: [{ name: 'c' }] } });
    new Scheduler(store, log).sync();
    const nodes = store.select('pods').map((p) => (p.spec as { nodeName: string }).nodeName);
    expect(nodes.every(Boolean)).toBe(true);
    expect(new Set(nodes).size).toBe(3);
  });
});

describe('EndpointSlice controller', () => {
  it('creates, updates and deletes managed slices and never touches the others', () => {
    const store = cluster(1);
    const ctl = new EndpointSliceController(store, log);
    store.create('services', { metadata: { name: 'web', namespace: 'default' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } });
    store.create('endpointslices', { metadata: { name: 'mine', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [] });
    readyPod(store, 'p1', '10.244.0.5');
    ctl.sync();
    let slices = managed(store);
    expect(slices).toHaveLength(1);
    expect((slices[0]!.endpoints as { addresses: string[] }[]).map((e) => e.addresses[0])).toEqual(['10.244.0.5']);
    const rv = store.resourceVersion;
    ctl.sync();
    expect(store.resourceVersion).toBe(rv); // a resync with nothing new writes nothing

    readyPod(store, 'p2', '10.244.0.6');
    ctl.sync();
    slices = managed(store);
    expect((slices[0]!.endpoints as { addresses: string[] }[]).map((e) => e.addresses[0])).toEqual(['10.244.0.5', '10.244.0.6']);

    store.delete('services', 'web', 'default');
    ctl.sync();
    expect(managed(store)).toEqual([]);
    expect(store.select('endpointslices', { namespace: 'default' }).map((s) => s.metadata.name).sort()).toEqual(['kubernetes', 'mine']);
  });

  it('kicks a sync from store events and stamps the time of the first unsynced change', async () => {
    const store = cluster(1);
    const ctl = new EndpointSliceController(store, log);
    store.onEvent((e) => ctl.observe(e.resource, e.object));
    const before = Date.now() - 1000;
    store.create('services', { metadata: { name: 'web', namespace: 'default' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } });
    readyPod(store, 'p1', '10.244.0.5');
    await new Promise((r) => setTimeout(r, 50));
    const [slice] = managed(store);
    expect(slice).toBeDefined();
    const t = Date.parse(slice!.metadata.annotations!['endpoints.kubernetes.io/last-change-trigger-time']!);
    expect(t).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(t).toBeLessThanOrEqual(Date.now());
    ctl.loop.stop();
  });
});
