import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FakeStore } from '../../sandbox/apiserver/store.js';
import type { KubeObject } from '../../sandbox/apiserver/resources.js';
import { admitWorkloads, WorkloadControllers } from '../../sandbox/apps/controllers.js';
import { templateHash } from '../../sandbox/apps/common.js';
import { ensureNodes } from '../../sandbox/bootstrap.js';
import { EventRecorder } from '../../sandbox/events.js';
import { layout } from '../../sandbox/names.js';

const log = pino({ level: 'silent' });

function cluster(): { store: FakeStore; ctl: WorkloadControllers } {
  const store = new FakeStore();
  admitWorkloads(store);
  ensureNodes(store, layout({ name: 'skiffapp', nodes: 3, subnet: '172.31.240.0/24', stateDir: '/nonexistent' }));
  const events = new EventRecorder(store, log);
  return { store, ctl: new WorkloadControllers(store, log, (c) => events.for(c)) };
}

/** What the scheduler and kubelets would do: bind and start every pod, ready at once. */
function runPods(store: FakeStore, ready = true): void {
  for (const p of store.select('pods')) {
    if (!(p.spec as { nodeName?: string }).nodeName) store.patch('pods', p.metadata.name!, { spec: { nodeName: 'skiffapp-node-1' } }, { namespace: p.metadata.namespace });
    if (ready && (p.status as { phase?: string } | undefined)?.phase !== 'Running') {
      store.patch('pods', p.metadata.name!, { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } }, { namespace: p.metadata.namespace, subresource: 'status' });
    }
  }
}

const deployment = (replicas: number, image: string, strategy?: unknown): KubeObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'default' },
  spec: { replicas, selector: { matchLabels: { app: 'web' } }, ...(strategy ? { strategy } : {}), template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image }] } } },
});
const status = (store: FakeStore, r: 'deployments' | 'daemonsets', name: string): Record<string, unknown> => store.get(r, name, 'default').status as Record<string, unknown>;

describe('apps/v1 admission', () => {
  it('defaults the strategy, counts spec changes in generation and rejects a selector that misses the template', () => {
    const { store } = cluster();
    const d = store.create('deployments', deployment(2, 'a'));
    expect(d.metadata.generation).toBe(1);
    expect((d.spec as { strategy: unknown }).strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } });
    expect(store.patch('deployments', 'web', { metadata: { labels: { x: 'y' } } }).metadata.generation).toBe(1);
    expect(store.patch('deployments', 'web', { spec: { replicas: 3 } }).metadata.generation).toBe(2);
    expect(store.patch('deployments', 'web', { status: { replicas: 1 } }, { subresource: 'status' }).metadata.generation).toBe(2);
    const bad: KubeObject = { ...deployment(1, 'a'), metadata: { name: 'bad', namespace: 'default' } };
    (bad.spec as { selector: unknown }).selector = { matchLabels: { app: 'other' } };
    expect(() => store.create('deployments', bad)).toThrow(/selector. does not match template/);
  });
});

describe('Deployment and ReplicaSet controllers', () => {
  it('creates a ReplicaSet with the pod-template-hash, its pods, and a complete status', () => {
    const { store, ctl } = cluster();
    store.create('deployments', deployment(3, 'a'));
    for (let i = 0; i < 5; i++) {
      ctl.sync();
      runPods(store);
    }
    ctl.sync();
    const [rs, ...more] = store.select('replicasets');
    expect(more).toEqual([]);
    const hash = templateHash((store.get('deployments', 'web').spec as { template: unknown }).template);
    expect(rs!.metadata.name).toBe(`web-${hash}`);
    expect(rs!.metadata.labels?.['pod-template-hash']).toBe(hash);
    const pods = store.select('pods');
    expect(pods).toHaveLength(3);
    for (const p of pods) expect(p.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'ReplicaSet', name: rs!.metadata.name, controller: true })]);
    const s = status(store, 'deployments', 'web');
    expect(s).toMatchObject({ observedGeneration: 1, replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3 });
    expect(s.conditions).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' }), expect.objectContaining({ type: 'Available', status: 'True' })]));
    expect(store.select('events', { fieldSelector: 'involvedObject.kind=Deployment,reason=ScalingReplicaSet' })).toHaveLength(1);
  });

  it('rolls a new template out within maxSurge 1 and maxUnavailable 0, then scales', () => {
    const { store, ctl } = cluster();
    store.create('deployments', deployment(4, 'a', { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } }));
    for (let i = 0; i < 6; i++) {
      ctl.sync();
      runPods(store);
    }
    store.patch('deployments', 'web', { spec: { template: { spec: { containers: [{ name: 'c', image: 'b' }] } } } });
    let steps = 0;
    for (; steps < 40; steps++) {
      ctl.sync();
      const active = store.select('pods');
      const ready = active.filter((p) => (p.status as { phase?: string } | undefined)?.phase === 'Running');
      expect(active.length).toBeLessThanOrEqual(5);
      expect(ready.length).toBeGreaterThanOrEqual(4);
      runPods(store);
      const s = status(store, 'deployments', 'web');
      if (s.updatedReplicas === 4 && s.replicas === 4 && s.observedGeneration === 2 && s.availableReplicas === 4) break;
    }
    expect(steps).toBeGreaterThan(2); // one at a time, not all at once
    const rss = store.select('replicasets');
    expect(rss.map((r) => [r.metadata.annotations?.['deployment.kubernetes.io/revision'], (r.spec as { replicas: number }).replicas]).sort()).toEqual([['1', 0], ['2', 4]]);
    for (const p of store.select('pods')) expect((p.spec as { containers: { image: string }[] }).containers[0]!.image).toBe('b');

    store.patch('deployments', 'web', { spec: { replicas: 1 } });
    for (let i = 0; i < 4; i++) ctl.sync();
    expect(store.select('pods')).toHaveLength(1);

    // rollout undo: the first template again; its ReplicaSet is reused and becomes revision 3.
    store.patch('deployments', 'web', { spec: { template: { spec: { containers: [{ name: 'c', image: 'a' }] } } } });
    for (let i = 0; i < 8; i++) {
      ctl.sync();
      runPods(store);
    }
    expect(store.select('replicasets').map((r) => [r.metadata.annotations?.['deployment.kubernetes.io/revision'], (r.spec as { replicas: number }).replicas]).sort()).toEqual([['2', 0], ['3', 1]]);
    expect(store.get('deployments', 'web').metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('3');
  });

  it('Recreate stops every old pod before starting new ones', () => {
    const { store, ctl } = cluster();
    store.create('deployments', deployment(2, 'a', { type: 'Recreate' }));
    for (let i = 0; i < 4; i++) {
      ctl.sync();
      runPods(store);
    }
    store.patch('deployments', 'web', { spec: { template: { spec: { containers: [{ name: 'c', image: 'b' }] } } } });
    const images = (): string[] => store.select('pods').map((p) => (p.spec as { containers: { image: string }[] }).containers[0]!.image);
    ctl.sync();
    expect(images()).toEqual([]); // old ones gone, new ones not yet made
    for (let i = 0; i < 4; i++) {
      ctl.sync();
      expect(new Set(images()).size).toBeLessThanOrEqual(1);
      runPods(store);
    }
    expect(images()).toEqual(['b', 'b']);
  });

  it('garbage-collects ReplicaSets and pods whose owner is deleted, and leaves foreign owners alone', () => {
    const { store, ctl } = cluster();
    store.create('deployments', deployment(2, 'a'));
    ctl.sync();
    ctl.sync();
    store.create('pods', { metadata: { name: 'job-pod', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'j', uid: 'x', controller: true }] }, spec: { containers: [{ name: 'c' }] } });
    expect(store.select('pods')).toHaveLength(3);
    store.delete('deployments', 'web', 'default');
    ctl.sync();
    ctl.sync();
    expect(store.select('replicasets')).toEqual([]);
    expect(store.select('pods').map((p) => p.metadata.name)).toEqual(['job-pod']);
  });

  it('deletes a scheduled orphan pod gracefully, leaving it to its kubelet', () => {
    const { store, ctl } = cluster();
    store.create('deployments', deployment(2, 'a'));
    ctl.sync();
    ctl.sync();
    const [bound, unbound] = store.select('pods').map((p) => p.metadata.name!);
    store.patch('pods', bound!, { spec: { nodeName: 'skiffapp-node-1' } }, { namespace: 'default' });
    store.delete('deployments', 'web', 'default');
    ctl.sync();
    ctl.sync();
    expect(store.select('pods').map((p) => p.metadata.name)).toEqual([bound]);
    expect(store.get('pods', bound!, 'default').metadata).toMatchObject({ deletionTimestamp: expect.any(String), deletionGracePeriodSeconds: 30 });
    expect(unbound).toBeDefined();
  });
});

describe('DaemonSet controller', () => {
  it('runs one pod on each node matching the nodeSelector and replaces them one at a time on a new template', () => {
    const { store, ctl } = cluster();
    store.patch('nodes', 'skiffapp-node-2', { metadata: { labels: { role: 'x' } } });
    const ds = (image: string): KubeObject => ({ metadata: { name: 'echo', namespace: 'default' }, spec: { selector: { matchLabels: { app: 'echo' } }, template: { metadata: { labels: { app: 'echo' } }, spec: { containers: [{ name: 'c', image }] } } } });
    store.create('daemonsets', ds('a'));
    ctl.sync();
    expect(store.select('pods').map((p) => (p.spec as { nodeName: string }).nodeName).sort()).toEqual(['skiffapp-node-1', 'skiffapp-node-2', 'skiffapp-node-3']);
    runPods(store);
    ctl.sync();
    expect(status(store, 'daemonsets', 'echo')).toMatchObject({ desiredNumberScheduled: 3, numberReady: 3, updatedNumberScheduled: 3, numberAvailable: 3, observedGeneration: 1 });
    store.update('daemonsets', { ...store.get('daemonsets', 'echo'), spec: { ...(ds('b').spec as object), template: { metadata: { labels: { app: 'echo' } }, spec: { nodeSelector: { role: 'x' }, containers: [{ name: 'c', image: 'b' }] } } } });
    for (let i = 0; i < 6; i++) {
      ctl.sync();
      runPods(store);
    }
    const pods = store.select('pods');
    expect(pods.map((p) => (p.spec as { nodeName: string }).nodeName)).toEqual(['skiffapp-node-2']);
    expect(status(store, 'daemonsets', 'echo')).toMatchObject({ desiredNumberScheduled: 1, updatedNumberScheduled: 1, observedGeneration: 2 });
  });
});
