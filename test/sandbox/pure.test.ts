import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../sandbox/apiserver/resources.js';
import { schedule } from '../../sandbox/scheduler.js';
import { podResolvConf } from '../../sandbox/resolv.js';
import { parseManifests, resourceFor } from '../../sandbox/manifest.js';
import { allocatePodCIDRs } from '../../sandbox/ipam.js';
import { layout, nodeLayout, podNetns, validateName } from '../../sandbox/names.js';

const readyNode = (name: string, ready = true): KubeObject => ({ metadata: { name }, status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } });
const pod = (name: string, nodeName?: string, extra: Record<string, unknown> = {}): KubeObject => ({ metadata: { name, namespace: 'default' }, spec: { ...(nodeName ? { nodeName } : {}), ...extra } });

describe('schedule', () => {
  it('spreads unscheduled pods over ready nodes, least loaded first', () => {
    const nodes = [readyNode('n1'), readyNode('n2'), readyNode('n3'), readyNode('down', false)];
    const out = schedule([pod('x', 'n1'), pod('a'), pod('b'), pod('c'), pod('d')], nodes);
    expect(out.has('default/x')).toBe(false);
    const counts = new Map<string, number>([['n1', 1]]);
    for (const n of out.values()) counts.set(n, (counts.get(n) ?? 0) + 1);
    expect([...counts.values()].sort()).toEqual([1, 2, 2]);
    expect([...out.values()]).not.toContain('down');
  });
  it('binds nothing when no node is ready', () => {
    expect(schedule([pod('a')], [readyNode('n1', false)]).size).toBe(0);
  });
});

describe('podResolvConf', () => {
  const dns = { clusterDNS: ['10.96.0.10'], clusterDomain: 'cluster.local', hostResolvConf: 'nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n' };
  const p = (spec: Record<string, unknown>, ns = 'shop'): KubeObject => ({ metadata: { name: 'p', namespace: ns }, spec });
  it('ClusterFirst points at cluster DNS with the namespace search path', () => {
    expect(podResolvConf(p({}), dns)).toBe('nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n');
  });
  it('Default copies the node resolver; hostNetwork ClusterFirst does too', () => {
    const want = 'nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n';
    expect(podResolvConf(p({ dnsPolicy: 'Default' }), dns)).toBe(want);
    expect(podResolvConf(p({ hostNetwork: true }), dns)).toBe(want);
  });
  it('None uses dnsConfig only, and dnsConfig options override by name', () => {
    const cfg = { nameservers: ['1.1.1.1'], searches: ['a.example'], options: [{ name: 'ndots', value: '2' }, { name: 'rotate' }] };
    expect(podResolvConf(p({ dnsPolicy: 'None', dnsConfig: cfg }), dns)).toBe('nameserver 1.1.1.1\nsearch a.example\noptions ndots:2 rotate\n');
    expect(podResolvConf(p({ dnsConfig: { options: [{ name: 'ndots', value: '1' }] } }), dns)).toContain('options ndots:1\n');
  });
});

describe('parseManifests', () => {
  it('reads multi-document YAML, JSON and Lists', () => {
    const text = `apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}},{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"s"}}]}\n---\n`;
    expect(parseManifests(text).map((m) => `${m.resource}/${m.object.metadata.name}`)).toEqual(['namespaces/shop', 'pods/a', 'endpointslices/s']);
  });
  it('rejects unknown kinds, wrong apiVersions, nameless objects and bad YAML with a one-line reason', () => {
    expect(() => parseManifests('kind: StatefulSet\nmetadata: {name: x}\n')).toThrowError(/unsupported kind "StatefulSet"/);
    expect(() => parseManifests('apiVersion: v2\nkind: Pod\nmetadata: {name: x}\n')).toThrowError(/apiVersion v1/);
    expect(() => parseManifests('kind: Pod\nmetadata: {}\n')).toThrowError(/no metadata.name/);
    expect(() => parseManifests('kind: [\n')).toThrowError(/document 1/);
  });
  it('maps kubectl-style resource names', () => {
    expect(['po', 'Service', 'endpointslices.discovery.k8s.io', 'no'].map(resourceFor)).toEqual(['pods', 'services', 'endpointslices', 'nodes']);
    expect(() => resourceFor('sts')).toThrowError(/unknown resource type/);
    expect(resourceFor('deploy')).toBe('deployments');
  });
});

describe('names and node IPAM', () => {
  it('derives every name from the sandbox name and keeps links within 15 bytes', () => {
    const l = layout({ name: validateName('skiffsbt'), nodes: 3, subnet: '172.31.231.0/24', stateDir: '/tmp/x' });
    expect([l.underlayNs, l.bridge, l.hostLink, l.extNs]).toEqual(['skiffsbt-underlay', 'skiffsbt-ul0', 'skiffsbt-host', 'skiffsbt-ext']);
    expect(l.hostLink.length).toBeLessThanOrEqual(15);
    expect(nodeLayout(l, 2)).toMatchObject({ name: 'skiffsbt-node-2', ip: '172.31.231.12', zone: 'zone-b' });
    expect(podNetns('skiffsbt', 'uid-1')).toMatch(/^skiffsbt-pod-[0-9a-f]{10}$/);
    expect(() => validateName('other')).toThrowError(/must be "skiff"/);
  });
  it('carves the lowest free /24s from the cluster CIDR', () => {
    expect(allocatePodCIDRs('10.244.0.0/16', 24, ['10.244.0.0/24', '10.244.2.0/24'], 3)).toEqual(['10.244.1.0/24', '10.244.3.0/24', '10.244.4.0/24']);
    expect(() => allocatePodCIDRs('10.244.0.0/23', 24, [], 3)).toThrowError(/out of \/24/);
  });
});
