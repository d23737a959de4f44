// NetworkPolicy and cluster-wide pods at the informer boundary: the API's empty-versus-absent
// rules survive, the API server's defaults are applied, and what it would reject is reported.
import { describe, expect, it } from 'vitest';
import { convert, ConvertError } from './convert.js';

const meta = { name: 'p', namespace: 'ns', uid: 'u', resourceVersion: '7', labels: { x: 'y' } };
const ALL = { matchLabels: {}, matchExpressions: [] };

function netpol(spec: unknown) {
  return convert('networkpolicies', { metadata: meta, spec }).value;
}

describe('NetworkPolicy conversion', () => {
  it('keeps a full policy: AND and OR peers, ipBlock with except, named and ranged ports', () => {
    const v = netpol({
      podSelector: { matchLabels: { app: 'db' } },
      policyTypes: ['Egress', 'Ingress'],
      ingress: [
        {
          from: [{ namespaceSelector: { matchLabels: { team: 'a' } }, podSelector: { matchExpressions: [{ key: 'role', operator: 'In', values: ['web', 'api'] }] } }, { podSelector: {} }],
          ports: [{ port: 'serve-80-tcp' }, { protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 8000, endPort: 8100 }, { protocol: 'SCTP' }],
        },
      ],
      egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }, { namespaceSelector: {} }] }],
    });
    expect(v).toEqual({
      namespace: 'ns',
      name: 'p',
      podSelector: { matchLabels: { app: 'db' }, matchExpressions: [] },
      policyTypes: ['Egress', 'Ingress'],
      ingress: [
        {
          peers: [{ namespaceSelector: { matchLabels: { team: 'a' }, matchExpressions: [] }, podSelector: { matchLabels: {}, matchExpressions: [{ key: 'role', operator: 'In', values: ['web', 'api'] }] } }, { podSelector: ALL }],
          ports: [{ protocol: 'TCP', port: 'serve-80-tcp' }, { protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 8000, endPort: 8100 }, { protocol: 'SCTP' }],
        },
      ],
      egress: [{ peers: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }, { namespaceSelector: ALL }], ports: [] }],
    });
  });

  it.each([
    ['no policyTypes, no egress: Ingress only', { podSelector: {} }, ['Ingress']],
    ['no policyTypes, empty egress list: Ingress only', { podSelector: {}, egress: [] }, ['Ingress']],
    ['no policyTypes, an egress rule: both', { podSelector: {}, egress: [{}] }, ['Ingress', 'Egress']],
    ['Egress only, as written', { podSelector: {}, policyTypes: ['Egress'] }, ['Egress']],
  ])('defaults policyTypes: %s', (_n, spec, types) => {
    expect(netpol(spec).policyTypes).toEqual(types);
  });

  it('keeps an empty rule (all peers, all ports) apart from no rule (nothing allowed)', () => {
    expect(netpol({ podSelector: {}, ingress: [{}] }).ingress).toEqual([{ peers: [], ports: [] }]);
    expect(netpol({ podSelector: {}, ingress: [{ from: [], ports: [] }] }).ingress).toEqual([{ peers: [], ports: [] }]);
    expect(netpol({ podSelector: {} }).ingress).toEqual([]);
    // A missing podSelector is the API's empty one: every pod of the namespace.
    expect(netpol({}).podSelector).toEqual(ALL);
  });

  it.each([
    [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }, 'spec.podSelector.matchExpressions[0].values'],
    [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'In', values: [] }] } }, 'spec.podSelector.matchExpressions[0].values'],
    [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Near' }] } }, 'spec.podSelector.matchExpressions[0].operator'],
    [{ podSelector: { matchLabels: { a: 1 } } }, 'spec.podSelector.matchLabels.a'],
    [{ ingress: [{ from: [{}] }] }, 'spec.ingress[0].from[0]'],
    [{ ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] }, 'spec.ingress[0].from[0]'],
    [{ egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0' } }] }] }, 'spec.egress[0].to[0].ipBlock.cidr'],
    [{ egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['fd00::/8'] } }] }] }, 'spec.egress[0].to[0].ipBlock.except[0]'],
    [{ ingress: [{ ports: [{ port: 0 }] }] }, 'spec.ingress[0].ports[0].port'],
    [{ ingress: [{ ports: [{ port: 'Not_A_Name' }] }] }, 'spec.ingress[0].ports[0].port'],
    [{ ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] }, 'spec.ingress[0].ports[0].endPort'],
    [{ ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }, 'spec.ingress[0].ports[0].endPort'],
    [{ ingress: [{ ports: [{ port: 80, protocol: 'ICMP' }] }] }, 'spec.ingress[0].ports[0].protocol'],
    [{ policyTypes: ['Both'] }, 'spec.policyTypes'],
  ])('reports %j at %s', (spec, field) => {
    try {
      netpol(spec);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConvertError);
      expect((e as ConvertError).field).toBe(field);
    }
  });
});

describe('policy pod conversion', () => {
  const raw = (status: Record<string, unknown>, spec: Record<string, unknown> = {}) => ({
    metadata: { ...meta, annotations: { big: 'x'.repeat(100) }, ownerReferences: [{ kind: 'ReplicaSet', name: 'r' }] },
    spec: {
      nodeName: 'n2',
      containers: [
        { name: 'c', image: 'i', ports: [{ name: 'serve-80-tcp', containerPort: 80 }, { containerPort: 9000 }, { name: 'serve-81-udp', containerPort: 81, protocol: 'UDP' }] },
      ],
      initContainers: [
        { name: 'sidecar', restartPolicy: 'Always', ports: [{ name: 'metrics', containerPort: 9090 }] },
        { name: 'once', ports: [{ name: 'setup', containerPort: 1 }] },
      ],
      ...spec,
    },
    status,
  });

  it('keeps namespace, labels, IPs and named ports only', () => {
    const { key, value } = convert('policypods', raw({ phase: 'Running', podIP: '10.244.2.5', podIPs: [{ ip: '10.244.2.5' }, { ip: 'fd00::5' }], conditions: [{ type: 'Ready', status: 'True' }] }));
    expect(key).toBe('ns/p');
    expect(value).toEqual({
      namespace: 'ns',
      name: 'p',
      nodeName: 'n2',
      hostNetwork: false,
      podIPs: ['10.244.2.5', 'fd00::5'],
      labels: { x: 'y' },
      namedPorts: [
        { name: 'serve-80-tcp', port: 80, protocol: 'TCP' },
        { name: 'serve-81-udp', port: 81, protocol: 'UDP' },
        { name: 'metrics', port: 9090, protocol: 'TCP' },
      ],
    });
  });

  it('drops the addresses of a finished pod (they may be reused) and keeps hostNetwork', () => {
    expect(convert('policypods', raw({ phase: 'Succeeded', podIP: '10.244.2.5' })).value.podIPs).toEqual([]);
    expect(convert('policypods', raw({ phase: 'Failed', podIPs: [{ ip: '10.244.2.5' }] })).value.podIPs).toEqual([]);
    expect(convert('policypods', raw({ phase: 'Pending' })).value.podIPs).toEqual([]);
    expect(convert('policypods', raw({ podIP: '192.168.1.2' }, { hostNetwork: true })).value).toMatchObject({ hostNetwork: true, podIPs: ['192.168.1.2'] });
  });

  it('shares equal labels, ports and names between pods of one workload', () => {
    const a = convert('policypods', raw({ podIP: '10.244.2.5' })).value;
    const b = convert('policypods', { ...raw({ podIP: '10.244.2.6' }), metadata: { ...meta, name: 'q' } }).value;
    expect(b.labels).toBe(a.labels);
    expect(b.namedPorts).toBe(a.namedPorts);
    const c = convert('policypods', { ...raw({}), metadata: { ...meta, name: 'r', labels: { x: 'z' } } }).value;
    expect(c.labels).toEqual({ x: 'z' });
    expect(a.labels).toEqual({ x: 'y' });
  });

  it('reports a malformed container port', () => {
    expect(() => convert('policypods', raw({}, { containers: [{ ports: [{ name: 'x', containerPort: 'eighty' }] }] }))).toThrow(/spec.containers\[0\].ports\[0\].containerPort/);
  });
});
