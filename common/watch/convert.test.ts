// The informer boundary: raw JSON to the read-only types, and exact reasons for malformed objects.
import { describe, expect, it } from 'vitest';
import { convert, ConvertError, rawKey } from './convert.js';

const meta = (name: string, extra: Record<string, unknown> = {}) => ({ name, namespace: 'ns', uid: 'u1', ...extra });

describe('convert', () => {
  it('fills Service defaults the way the API server would', () => {
    const { key, value } = convert('services', { metadata: meta('web'), spec: { clusterIP: '10.96.0.5', ports: [{ port: 80 }] } });
    expect(key).toBe('ns/web');
    expect(value).toEqual({
      namespace: 'ns', name: 'web', uid: 'u1', type: 'ClusterIP', clusterIPs: ['10.96.0.5'], headless: false, ipFamilies: ['IPv4'],
      ports: [{ name: '', protocol: 'TCP', port: 80, targetPort: 80 }], externalIPs: [], loadBalancerIPs: [], loadBalancerSourceRanges: [],
      externalTrafficPolicy: 'Cluster', internalTrafficPolicy: 'Cluster', sessionAffinity: 'None', sessionAffinityTimeoutSeconds: 10800,
      publishNotReadyAddresses: false, labels: {},
    });
  });

  it.each([
    ['headless', { clusterIP: 'None', clusterIPs: ['None'] }, { headless: true, clusterIPs: [], ipFamilies: [] }],
    ['dual stack', { clusterIPs: ['10.96.0.5', 'fd00::5'], ipFamilies: ['IPv4', 'IPv6'] }, { clusterIPs: ['10.96.0.5', 'fd00::5'], ipFamilies: ['IPv4', 'IPv6'] }],
    ['ExternalName', { type: 'ExternalName', externalName: 'example.org', clusterIP: '' }, { type: 'ExternalName', clusterIPs: [], headless: false, externalName: 'example.org' }],
    ['LoadBalancer Local', { type: 'LoadBalancer', clusterIP: '10.96.0.9', externalTrafficPolicy: 'Local', healthCheckNodePort: 30100, ports: [{ port: 443, nodePort: 30443, targetPort: 'https', protocol: 'TCP' }] },
      { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 30100, ports: [{ name: '', protocol: 'TCP', port: 443, nodePort: 30443, targetPort: 'https' }], loadBalancerIPs: ['192.0.2.7'] }],
    ['affinity', { clusterIP: '10.96.0.9', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }, { sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 60 }],
  ])('converts a %s Service', (_name, spec, expected) => {
    const status = { loadBalancer: { ingress: [{ ip: '192.0.2.7' }, { hostname: 'lb.example' }] } };
    expect(convert('services', { metadata: meta('s'), spec, status: (spec as { type?: string }).type === 'LoadBalancer' ? status : {} }).value).toMatchObject(expected);
  });

  it('treats unset endpoint conditions as ready and serving, and reads the trigger time', () => {
    const { value } = convert('endpointslices', {
      metadata: meta('web-x', { labels: { 'kubernetes.io/service-name': 'web' }, annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': '2024-05-01T10:00:00Z' } }),
      addressType: 'IPv4',
      ports: [{ port: 8080, protocol: 'UDP', name: 'dns' }],
      endpoints: [
        { addresses: ['10.244.0.1'] },
        { addresses: ['10.244.0.2'], conditions: { ready: false, serving: true, terminating: true }, nodeName: 'n1', zone: 'z1', hints: { forZones: [{ name: 'z1' }] }, targetRef: { kind: 'Pod', name: 'p', namespace: 'ns' } },
      ],
    });
    expect(value.serviceName).toBe('web');
    expect(value.triggerTimeMs).toBe(Date.parse('2024-05-01T10:00:00Z'));
    expect(value.ports).toEqual([{ name: 'dns', port: 8080, protocol: 'UDP' }]);
    expect([...value.endpoints]).toEqual([
      { addresses: ['10.244.0.1'], ready: true, serving: true, terminating: false },
      { addresses: ['10.244.0.2'], ready: false, serving: true, terminating: true, nodeName: 'n1', zone: 'z1', hintsForZones: ['z1'] },
    ]);
  });

  it('converts pods and nodes', () => {
    const pod = convert('pods', { metadata: meta('p', { deletionTimestamp: '2024-01-01T00:00:00Z' }), spec: { nodeName: 'n1', hostname: 'h', subdomain: 'sd' }, status: { phase: 'Running', podIP: '10.244.0.3', podIPs: [{ ip: '10.244.0.3' }, { ip: 'fd00::3' }], conditions: [{ type: 'Ready', status: 'True' }] } }).value;
    expect(pod).toEqual({ namespace: 'ns', name: 'p', uid: 'u1', nodeName: 'n1', hostNetwork: false, podIPs: ['10.244.0.3', 'fd00::3'], phase: 'Running', ready: true, deleting: true, labels: {}, hostname: 'h', subdomain: 'sd' });
    const node = convert('nodes', { metadata: { name: 'n1', labels: { 'topology.kubernetes.io/zone': 'z' }, annotations: { 'flannel.alpha.coreos.com/public-ip': '1.2.3.4', 'vtep.skiff.io/mac': 'm', 'x/y': 'z' } }, spec: { podCIDR: '10.244.1.0/24' }, status: { addresses: [{ type: 'InternalIP', address: '192.168.0.2' }], conditions: [{ type: 'Ready', status: 'False' }] } });
    expect(node.key).toBe('n1');
    expect(node.value).toEqual({ name: 'n1', uid: '', podCIDRs: ['10.244.1.0/24'], addresses: [{ type: 'InternalIP', address: '192.168.0.2' }], labels: { 'topology.kubernetes.io/zone': 'z' }, annotations: { 'flannel.alpha.coreos.com/public-ip': '1.2.3.4', 'vtep.skiff.io/mac': 'm' }, zone: 'z', ready: false });
  });

  it.each([
    ['services', 'not an object', '(object)'],
    ['services', { metadata: { namespace: 'ns' } }, 'metadata.name'],
    ['services', { metadata: { name: 'x' } }, 'metadata.namespace'],
    ['nodes', { metadata: { name: 7 } }, 'metadata.name'],
    ['services', { metadata: meta('x'), spec: { ports: [{ port: 80 }, { port: '81' }] } }, 'spec.ports[1].port'],
    ['services', { metadata: meta('x'), spec: { clusterIP: 'not-an-ip' } }, 'spec.clusterIPs'],
    ['services', { metadata: meta('x'), spec: { ports: [{ port: 80, protocol: 'ICMP' }] } }, 'spec.ports[0].protocol'],
    ['endpointslices', { metadata: meta('x'), addressType: 'IPv5' }, 'addressType'],
    ['endpointslices', { metadata: meta('x'), addressType: 'IPv4', endpoints: [{ addresses: '10.0.0.1' }] }, 'endpoints[0].addresses'],
    ['pods', { metadata: meta('x', { labels: { a: true } }) }, 'metadata.labels.a'],
    ['namespaces', { metadata: { name: 'x' }, spec: [] }, undefined],
  ] as const)('%s %j is reported at %s', (kind, raw, field) => {
    if (field === undefined) return void expect(() => convert(kind, raw)).not.toThrow();
    try {
      convert(kind, raw);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConvertError);
      expect((e as ConvertError).field).toBe(field);
    }
  });

  it('shares one port list between slices with equal ports, and keeps every endpoint key set', () => {
    const raw = (name: string, endpoints: unknown[]) => ({ metadata: meta(name), addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints });
    const a = convert('endpointslices', raw('a', [{ addresses: ['10.0.0.1'], nodeName: 'n1' }, { addresses: ['10.0.0.2'] }])).value;
    const b = convert('endpointslices', raw('b', [{ addresses: ['10.0.0.3'], nodeName: 'n1', zone: 'z' }, { addresses: ['10.0.0.4'], zone: 'z' }, { addresses: ['10.0.0.5'], hostname: 'h', nodeName: 'n2' }])).value;
    expect(a.ports).toBe(b.ports);
    const base = { ready: true, serving: true, terminating: false };
    expect([...a.endpoints]).toEqual([{ addresses: ['10.0.0.1'], ...base, nodeName: 'n1' }, { addresses: ['10.0.0.2'], ...base }]);
    expect([...b.endpoints]).toEqual([{ addresses: ['10.0.0.3'], ...base, nodeName: 'n1', zone: 'z' }, { addresses: ['10.0.0.4'], ...base, zone: 'z' }, { addresses: ['10.0.0.5'], ...base, hostname: 'h', nodeName: 'n2' }]);
    for (const e of [...a.endpoints, ...b.endpoints]) for (const v of Object.values(e)) expect(v).not.toBeUndefined();
  });

  it('shares equal Service port lists and one copy of the empty lists and maps', () => {
    const spec = (ip: string) => ({ clusterIP: ip, ipFamilies: ['IPv4'], ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    const a = convert('services', { metadata: meta('a'), spec: spec('10.96.0.1') }).value;
    const b = convert('services', { metadata: meta('b'), spec: spec('10.96.0.2') }).value;
    const c = convert('services', { metadata: meta('c'), spec: { ...spec('10.96.0.3'), ports: [{ name: 'http', port: 80, targetPort: '8080' }] } }).value;
    expect(a.ports).toBe(b.ports);
    expect(c.ports).not.toBe(a.ports);
    expect(c.ports[0]!.targetPort).toBe('8080');
    expect(a.ipFamilies).toBe(b.ipFamilies);
    expect(a.externalIPs).toBe(b.loadBalancerIPs);
    expect(a.labels).toBe(b.labels);
    expect(Object.isFrozen(a.externalIPs) && Object.isFrozen(a.labels)).toBe(true);
    expect(a.clusterIPs).toEqual(['10.96.0.1']);
  });

  it('keys raw objects for deletes even when they would not convert', () => {
    expect(rawKey('services', { metadata: { name: 'a', namespace: 'b' }, spec: 'junk' })).toBe('b/a');
    expect(rawKey('nodes', { metadata: { name: 'a' } })).toBe('a');
    expect(rawKey('services', { metadata: { name: 'a' } })).toBeUndefined();
  });
});
