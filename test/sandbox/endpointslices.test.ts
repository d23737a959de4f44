import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../sandbox/apiserver/resources.js';
import { ANNOTATION_TRIGGER_TIME, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, desiredSlices, planSlices } from '../../sandbox/endpointslices.js';

const T0 = '2026-01-01T00:00:00Z';
const T1 = '2026-01-01T00:00:05Z';

const service = (spec: Record<string, unknown>, name = 'web'): KubeObject => ({ metadata: { name, namespace: 'default', uid: `uid-${name}`, labels: { team: 'a' } }, spec });
const node = (name: string, zone: string): KubeObject => ({ metadata: { name, labels: { 'topology.kubernetes.io/zone': zone } } });
function pod(name: string, o: { ip?: string; ready?: boolean; node?: string; labels?: Record<string, string>; ports?: unknown[]; deleting?: boolean; phase?: string; hostname?: string; subdomain?: string; ns?: string } = {}): KubeObject {
  return {
    metadata: { name, namespace: o.ns ?? 'default', uid: `uid-${name}`, labels: o.labels ?? { app: 'web' }, ...(o.deleting ? { deletionTimestamp: T0 } : {}) },
    spec: { nodeName: o.node ?? 'n1', containers: [{ name: 'c', ports: o.ports ?? [] }], ...(o.hostname ? { hostname: o.hostname } : {}), ...(o.subdomain ? { subdomain: o.subdomain } : {}) },
    status: {
      phase: o.phase ?? 'Running',
      ...(o.ip === '' ? {} : { podIP: o.ip ?? '10.244.1.5', podIPs: [{ ip: o.ip ?? '10.244.1.5' }] }),
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
    },
  };
}

const nodes = [node('n1', 'zone-a'), node('n2', 'zone-b')];

describe('desiredSlices', () => {
  it('builds one slice with conditions, topology, targetRef, labels and the trigger time', () => {
    const svc = service({ selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] });
    const pods = [
      pod('b', { ip: '10.244.2.7', node: 'n2', ready: false }),
      pod('a', { ip: '10.244.1.5', node: 'n1' }),
      pod('c', { ip: '10.244.1.6', deleting: true }),
      pod('other', { labels: { app: 'db' } }),
      pod('done', { phase: 'Succeeded' }),
      pod('noip', { ip: '' }),
      pod('elsewhere', { ns: 'kube-system' }),
    ];
    const [slice, ...rest] = desiredSlices(svc, pods, nodes, T0);
    expect(rest).toEqual([]);
    expect(slice!.metadata.labels).toEqual({ team: 'a', [LABEL_SERVICE_NAME]: 'web', [LABEL_MANAGED_BY]: 'endpointslice-controller.k8s.io' });
    expect(slice!.metadata.annotations).toEqual({ [ANNOTATION_TRIGGER_TIME]: T0 });
    expect(slice!.ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
    expect(slice!.endpoints).toEqual([
      { addresses: ['10.244.1.5'], conditions: { ready: true, serving: true, terminating: false }, targetRef: { kind: 'Pod', namespace: 'default', name: 'a', uid: 'uid-a' }, nodeName: 'n1', zone: 'zone-a' },
      { addresses: ['10.244.2.7'], conditions: { ready: false, serving: false, terminating: false }, targetRef: { kind: 'Pod', namespace: 'default', name: 'b', uid: 'uid-b' }, nodeName: 'n2', zone: 'zone-b' },
      { addresses: ['10.244.1.6'], conditions: { ready: false, serving: true, terminating: true }, targetRef: { kind: 'Pod', namespace: 'default', name: 'c', uid: 'uid-c' }, nodeName: 'n1', zone: 'zone-a' },
    ]);
  });

  it('resolves named ports per pod and splits pods with different numbers into separate slices', () => {
    const svc = service({ selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'web' }] });
    const pods = [pod('a', { ports: [{ name: 'web', containerPort: 8080 }] }), pod('b', { ip: '10.244.1.9', ports: [{ name: 'web', containerPort: 9090 }] }), pod('c', { ip: '10.244.1.10' })];
    const slices = desiredSlices(svc, pods, nodes, T0);
    const byPort = Object.fromEntries(slices.map((s) => [JSON.stringify(s.ports), (s.endpoints as { targetRef: { name: string } }[]).map((e) => e.targetRef.name)]));
    // c has no port named "web": the real controller leaves it in a slice without that port.
    expect(byPort).toEqual({ '[{"name":"http","port":8080,"protocol":"TCP"}]': ['a'], '[{"name":"http","port":9090,"protocol":"TCP"}]': ['b'], '[]': ['c'] });
    expect(new Set(slices.map((s) => s.metadata.name)).size).toBe(3);
  });

  it('caps slices at 100 endpoints', () => {
    const svc = service({ selector: { app: 'web' }, ports: [{ port: 80 }] });
    const pods = Array.from({ length: 250 }, (_, i) => pod(`p${String(i).padStart(3, '0')}`, { ip: `10.244.${i >> 8}.${i & 255}` }));
    const slices = desiredSlices(svc, pods, nodes, T0);
    expect(slices.map((s) => (s.endpoints as unknown[]).length)).toEqual([100, 100, 50]);
  });

  it('sets hostname only when the subdomain names the service, and honours publishNotReadyAddresses', () => {
    const svc = service({ selector: { app: 'web' }, ports: [{ port: 80 }], publishNotReadyAddresses: true }, 'db');
    const pods = [pod('a', { hostname: 'db-0', subdomain: 'db', ready: false }), pod('b', { ip: '10.244.1.8', hostname: 'x', subdomain: 'other' })];
    const eps = desiredSlices(svc, pods, nodes, T0)[0]!.endpoints as { hostname?: string; conditions: { ready: boolean } }[];
    expect(eps.map((e) => e.hostname)).toEqual(['db-0', undefined]);
    expect(eps.every((e) => e.conditions.ready)).toBe(true);
  });

  it('leaves services without a selector alone and gives an empty service one empty slice', () => {
    expect(desiredSlices(service({ ports: [{ port: 80 }] }), [pod('a')], nodes, T0)).toEqual([]);
    const slices = desiredSlices(service({ selector: { app: 'none' }, ports: [{ port: 80 }] }), [pod('a')], nodes, T0);
    expect(slices).toHaveLength(1);
    expect(slices[0]!.endpoints).toEqual([]);
  });
});

describe('planSlices', () => {
  it('writes only slices whose content changed, keeping unchanged trigger times', () => {
    const svc = service({ selector: { app: 'web' }, ports: [{ port: 80 }] });
    const before = desiredSlices(svc, [pod('a')], nodes, T0).map((s) => ({ ...s, metadata: { ...s.metadata, resourceVersion: '7' } }));
    expect(planSlices(desiredSlices(svc, [pod('a')], nodes, T1), before)).toEqual({ create: [], update: [], delete: [] });
    const changed = planSlices(desiredSlices(svc, [pod('a', { ready: false })], nodes, T1), before);
    expect(changed.update).toHaveLength(1);
    expect(changed.update[0]!.metadata.resourceVersion).toBe('7');
    expect(changed.update[0]!.metadata.annotations).toEqual({ [ANNOTATION_TRIGGER_TIME]: T1 });
    const stale = { ...before[0]!, metadata: { ...before[0]!.metadata, name: 'web-stale' } };
    const plan = planSlices(desiredSlices(svc, [pod('a')], nodes, T1), [...before, stale]);
    expect(plan.delete.map((s) => s.metadata.name)).toEqual(['web-stale']);
  });
});
