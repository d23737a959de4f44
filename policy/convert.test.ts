import { describe, expect, it } from 'vitest';
import { toNetworkPolicy, toPolicyNamespace, toPolicyPod } from './convert.js';
import { matches } from './model.js';

const np = (spec: unknown, metadata: unknown = { namespace: 'x', name: 'p' }) => toNetworkPolicy({ metadata, spec });
const ok = <T>(r: { ok: true; value: T } | { ok: false; reason: string }): T => {
  if (!r.ok) throw new Error(r.reason);
  return r.value;
};
const reason = (r: { ok: boolean; reason?: string }): string | undefined => (r.ok ? undefined : r.reason);

describe('NetworkPolicy conversion', () => {
  it('defaults policyTypes as the API server does: Ingress always, Egress only with egress rules', () => {
    expect(ok(np({ podSelector: {} })).policyTypes).toEqual(['Ingress']);
    expect(ok(np({ podSelector: {}, egress: [] })).policyTypes).toEqual(['Ingress']);
    expect(ok(np({ podSelector: {}, egress: [{}] })).policyTypes).toEqual(['Ingress', 'Egress']);
    expect(ok(np({ podSelector: {}, policyTypes: ['Egress'] })).policyTypes).toEqual(['Egress']);
  });

  it('keeps missing and empty apart where the API does, and folds them where it does not', () => {
    const p = ok(
      np({
        podSelector: { matchLabels: { app: 'a' } },
        ingress: [{}, { from: [] }, { from: [{ podSelector: {} }, { namespaceSelector: {} }, { podSelector: {}, namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [] }],
      }),
    );
    // from/ports missing or empty: all peers, all ports.
    expect(p.ingress[0]).toEqual({ peers: [], ports: [] });
    expect(p.ingress[1]).toEqual({ peers: [], ports: [] });
    // A peer's selectors: undefined (not given) differs from {} (everything).
    expect(p.ingress[2]!.peers).toEqual([
      { podSelector: { matchLabels: {}, matchExpressions: [] } },
      { namespaceSelector: { matchLabels: {}, matchExpressions: [] } },
      { podSelector: { matchLabels: {}, matchExpressions: [] }, namespaceSelector: { matchLabels: { ns: 'y' }, matchExpressions: [] } },
    ]);
    expect(p.podSelector).toEqual({ matchLabels: { app: 'a' }, matchExpressions: [] });
  });

  it('ports: protocol defaults to TCP, numbers, names, ranges, a digit string is a number', () => {
    const p = ok(np({ podSelector: {}, ingress: [{ ports: [{ port: 80 }, { protocol: 'UDP', port: 'dns' }, { protocol: 'SCTP' }, { port: 1000, endPort: 2000 }, { port: '81' }] }] }));
    expect(p.ingress[0]!.ports).toEqual([
      { protocol: 'TCP', port: 80 },
      { protocol: 'UDP', port: 'dns' },
      { protocol: 'SCTP' },
      { protocol: 'TCP', port: 1000, endPort: 2000 },
      { protocol: 'TCP', port: 81 },
    ]);
  });

  it.each([
    [{ ingress: [{ from: [{}] }] }, 'spec.ingress[0].from[0]: must specify a peer'],
    [{ ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] }, 'spec.ingress[0].from[0]: ipBlock cannot be combined with a selector'],
    [{ egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } }] }] }, 'spec.egress[0].to[0].ipBlock.except[0]: 11.0.0.0/16 is not within 10.0.0.0/8'],
    [{ egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.0.0/8'] } }] }] }, 'spec.egress[0].to[0].ipBlock.except[0]: 10.0.0.0/8 must be a strict subset of 10.0.0.0/8'],
    [{ egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] }, 'spec.egress[0].to[0].ipBlock.cidr: invalid CIDR "10.0.0.0/33"'],
    [{ ingress: [{ ports: [{ port: 0 }] }] }, 'spec.ingress[0].ports[0].port: must be an integer in 1-65535'],
    [{ ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }, 'spec.ingress[0].ports[0].endPort: must not be below port 90'],
    [{ ingress: [{ ports: [{ port: 'http', endPort: 80 }] }] }, 'spec.ingress[0].ports[0].endPort: not allowed with a named port'],
    [{ ingress: [{ ports: [{ endPort: 80 }] }] }, 'spec.ingress[0].ports[0].endPort: needs port'],
    [{ ingress: [{ ports: [{ port: 'Bad_Name' }] }] }, 'spec.ingress[0].ports[0].port: invalid port name "Bad_Name"'],
    [{ ingress: [{ ports: [{ protocol: 'ICMP' }] }] }, 'spec.ingress[0].ports[0].protocol: unknown protocol "ICMP"'],
    [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'In', values: [] }] } }, 'spec.podSelector.matchExpressions[0].values: must be non-empty for In'],
    [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }, 'spec.podSelector.matchExpressions[0].values: must be empty for Exists'],
    [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] } }, 'spec.podSelector.matchExpressions[0].operator: unknown operator "Gt"'],
    [{ policyTypes: ['Sideways'] }, 'spec.policyTypes[0]: unknown type "Sideways"'],
    [{ ingress: {} }, 'spec.ingress: must be a list'],
  ])('refuses %j with a reason', (spec, why) => {
    expect(reason(np(spec))).toBe(why);
  });

  it('refuses objects without a name or namespace', () => {
    expect(reason(toNetworkPolicy({ metadata: { name: 'p' }, spec: {} }))).toBe('metadata.namespace: missing');
    expect(reason(toNetworkPolicy('nope'))).toBe('(object): not a JSON object');
  });
});

describe('pods and namespaces', () => {
  it('keeps addresses, labels, named container ports; finished pods lose their addresses', () => {
    const raw = {
      metadata: { namespace: 'x', name: 'a', labels: { pod: 'a' } },
      spec: { nodeName: 'n1', containers: [{ ports: [{ name: 'serve-80-tcp', containerPort: 80 }, { containerPort: 9090 }] }, { ports: [{ name: 'serve-81-udp', containerPort: 81, protocol: 'UDP' }] }] },
      status: { podIPs: [{ ip: '10.244.1.5' }, { ip: 'fd00::5' }], phase: 'Running' },
    };
    expect(ok(toPolicyPod(raw))).toEqual({
      namespace: 'x',
      name: 'a',
      nodeName: 'n1',
      hostNetwork: false,
      podIPs: ['10.244.1.5', 'fd00::5'],
      labels: { pod: 'a' },
      namedPorts: [
        { name: 'serve-80-tcp', port: 80, protocol: 'TCP' },
        { name: 'serve-81-udp', port: 81, protocol: 'UDP' },
      ],
    });
    expect(ok(toPolicyPod({ ...raw, status: { podIP: '10.244.1.5', phase: 'Succeeded' } })).podIPs).toEqual([]);
    expect(ok(toPolicyPod({ ...raw, status: { podIP: '10.244.1.5' } })).podIPs).toEqual(['10.244.1.5']);
    expect(reason(toPolicyPod({ ...raw, spec: { containers: [{ ports: [{ name: 'x', containerPort: 70000 }] }] } }))).toBe('spec.containers[0].ports[0].containerPort: must be an integer in 1-65535');
  });

  it('namespaces keep their labels', () => {
    expect(ok(toPolicyNamespace({ metadata: { name: 'y', labels: { ns: 'y' } } }))).toEqual({ name: 'y', labels: { ns: 'y' } });
    expect(reason(toPolicyNamespace({ metadata: { name: 'y', labels: { ns: 1 } } }))).toBe('metadata.labels.ns: must be a string');
  });
});

describe('label selectors', () => {
  const sel = (matchLabels: Record<string, string>, matchExpressions: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values: string[] }[] = []) => ({ matchLabels, matchExpressions });
  it.each([
    [sel({}), {}, true],
    [sel({ a: '1' }), { a: '1', b: '2' }, true],
    [sel({ a: '1' }), { a: '2' }, false],
    [sel({}, [{ key: 'a', operator: 'In', values: ['1', '2'] }]), { a: '2' }, true],
    [sel({}, [{ key: 'a', operator: 'In', values: ['1'] }]), {}, false],
    [sel({}, [{ key: 'a', operator: 'NotIn', values: ['1'] }]), {}, true],
    [sel({}, [{ key: 'a', operator: 'NotIn', values: ['1'] }]), { a: '1' }, false],
    [sel({}, [{ key: 'a', operator: 'Exists', values: [] }]), { a: '' }, true],
    [sel({}, [{ key: 'a', operator: 'DoesNotExist', values: [] }]), { a: '' }, false],
    [sel({ b: '2' }, [{ key: 'a', operator: 'Exists', values: [] }]), { a: '1' }, false],
  ])('%j matches %j: %s', (s, labels, want) => {
    expect(matches(s, labels)).toBe(want);
  });
});
