import { describe, expect, it } from 'vitest';
import { desiredState, evaluate } from './desired.js';
import { explain } from './explain.js';
import { cluster, expected, matrix, netpolPod, podIP, policy } from './fixtures.js';
import { intervalToCidrs, normalize, parseCidr, subtract } from './ipnet.js';
import type { NetworkPolicy, Protocol } from './model.js';

const ns = (pod: string): string => pod.split('/')[0]!;
const name = (pod: string): string => pod.split('/')[1]!;
const sel = (matchLabels: Record<string, string>) => ({ matchLabels });

interface Case {
  readonly title: string;
  readonly policies: NetworkPolicy[];
  readonly protocol?: Protocol;
  readonly port?: number;
  /** Which (from, to) pairs are denied; everything else, and every pod to itself, is allowed. */
  readonly deny: (from: string, to: string) => boolean;
}

// Modelled on upstream's test/e2e/network/netpol cases and cyclonus' generated ones.
const cases: Case[] = [
  { title: 'no policy: everything reaches everything', policies: [], deny: () => false },
  {
    title: 'default-deny-ingress in x',
    policies: [policy('deny-ingress', { podSelector: {} })],
    deny: (_f, t) => ns(t) === 'x',
  },
  {
    title: 'default-deny-all in x: nothing in or out of x',
    policies: [policy('deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })],
    deny: (f, t) => ns(t) === 'x' || ns(f) === 'x',
  },
  {
    title: 'allow x/a from pods in x with pod=b (podSelector)',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }] })],
    deny: (f, t) => t === 'x/a' && f !== 'x/b',
  },
  {
    title: 'allow ingress to x/a from all pods in all namespaces (namespaceSelector {})',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ namespaceSelector: {} }] }] })],
    deny: () => false,
  },
  {
    title: 'allow only from a different namespace (namespaceSelector NotIn)',
    policies: [policy('p', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] } }] }] })],
    deny: (f, t) => ns(t) === 'x' && ns(f) === 'x',
  },
  {
    title: 'podSelector with matchExpressions In',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] } }] }] })],
    deny: (f, t) => t === 'x/a' && f !== 'x/b',
  },
  {
    title: 'namespaceSelector with matchExpressions In using the default kubernetes.io/metadata.name label',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['y'] }] } }] }] })],
    deny: (f, t) => t === 'x/a' && ns(f) !== 'y',
  },
  {
    title: 'podSelector OR namespaceSelector (two peers)',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] } }, { podSelector: sel({ pod: 'b' }) }] }] })],
    deny: (f, t) => t === 'x/a' && !(ns(f) !== 'x' || f === 'x/b'),
  },
  {
    title: 'podSelector AND namespaceSelector (one peer)',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] }, podSelector: sel({ pod: 'b' }) }] }] })],
    deny: (f, t) => t === 'x/a' && !(ns(f) !== 'x' && name(f) === 'b'),
  },
  {
    title: 'multiple podSelectors and namespaceSelectors',
    policies: [
      policy('p', {
        podSelector: sel({ pod: 'a' }),
        ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] }, podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] } }] }],
      }),
    ],
    deny: (f, t) => t === 'x/a' && !(ns(f) !== 'x' && name(f) !== 'a'),
  },
  {
    title: 'pod in a different namespace by pod and namespace selector',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }), podSelector: sel({ pod: 'a' }) }] }] })],
    deny: (f, t) => t === 'x/a' && f !== 'y/a',
  },
  {
    title: 'ports: only 80 allowed to x/a (probe 80)',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }], ports: [{ port: 80 }] }] })],
    deny: (f, t) => t === 'x/a' && ns(f) !== 'y',
  },
  {
    title: 'ports: only 80 allowed to x/a (probe 81)',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }], ports: [{ port: 80 }] }] })],
    port: 81,
    deny: (_f, t) => t === 'x/a',
  },
  {
    title: 'stacked policies with overlapping podSelectors are a union (81 then 80)',
    policies: [
      policy('p81', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }], ports: [{ port: 81 }] }] }),
      policy('p80', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }], ports: [{ port: 80 }] }] }),
    ],
    port: 81,
    deny: (f, t) => t === 'x/a' && ns(f) !== 'y',
  },
  {
    title: 'allow-all ingress ({} rule)',
    policies: [policy('p', { podSelector: {}, ingress: [{}] })],
    deny: () => false,
  },
  {
    title: 'allow-all with an empty from list',
    policies: [policy('p', { podSelector: {}, ingress: [{ from: [] }] })],
    deny: () => false,
  },
  {
    title: 'one named ingress port (serve-81-tcp), probe 80',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })],
    deny: (_f, t) => t === 'x/a',
  },
  {
    title: 'one named ingress port (serve-80-tcp), probe 80',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ ports: [{ port: 'serve-80-tcp' }] }] })],
    deny: () => false,
  },
  {
    title: 'named port from a namespace',
    policies: [policy('p', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }], ports: [{ port: 'serve-80-tcp' }] }] })],
    deny: (f, t) => ns(t) === 'x' && ns(f) !== 'y',
  },
  {
    title: 'named port with the wrong protocol allows nothing (serve-80-udp probed over TCP)',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ ports: [{ port: 'serve-80-udp' }] }] })],
    deny: (_f, t) => t === 'x/a',
  },
  {
    title: 'one named egress port resolved on the destination (serve-80-tcp) with DNS',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-80-tcp' }] }, { ports: [{ port: 53, protocol: 'UDP' }] }] })],
    deny: () => false,
  },
  {
    title: 'one named egress port, probe 81',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'], egress: [{ ports: [{ port: 'serve-80-tcp' }] }] })],
    port: 81,
    deny: (f) => f === 'x/a',
  },
  {
    title: 'deny ingress from pods in other namespaces',
    policies: [policy('p', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })],
    deny: (f, t) => ns(t) === 'x' && ns(f) !== 'x',
  },
  {
    title: 'deny egress from pods by podSelector (x/a may only reach x/b)',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), egress: [{ to: [{ podSelector: sel({ pod: 'b' }) }] }] })],
    deny: (f, t) => (f === 'x/a' && t !== 'x/b') || (t === 'x/a' && f !== 'x/a'),
  },
  {
    title: 'deny egress from all pods in a namespace',
    policies: [policy('p', { podSelector: {}, policyTypes: ['Egress'] })],
    deny: (f) => ns(f) === 'x',
  },
  {
    title: 'ingress and egress together',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), policyTypes: ['Ingress', 'Egress'], ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }], egress: [{ to: [{ podSelector: sel({ pod: 'b' }) }] }] })],
    deny: (f, t) => (t === 'x/a' && f !== 'x/b') || (f === 'x/a' && t !== 'x/b'),
  },
  {
    title: 'client-side egress deny wins over a server that allows',
    policies: [
      policy('deny-egress', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'] }),
      policy('allow-in', { podSelector: sel({ pod: 'b' }), ingress: [{ from: [{ podSelector: sel({ pod: 'a' }) }] }] }, 'y'),
    ],
    // podSelector alone means the policy's own namespace: only y/a.
    deny: (f, t) => f === 'x/a' || (t === 'y/b' && f !== 'y/a'),
  },
  {
    title: 'egress to a server in another namespace by pod AND namespace selector',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: sel({ ns: 'y' }), podSelector: sel({ pod: 'b' }) }] }] })],
    deny: (f, t) => f === 'x/a' && t !== 'y/b',
  },
  {
    title: 'any port on one protocol (UDP only) denies TCP',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ ports: [{ protocol: 'UDP' }] }] })],
    deny: (_f, t) => t === 'x/a',
  },
  {
    title: 'any port on one protocol (UDP only), probe UDP 81',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ ports: [{ protocol: 'UDP' }] }] })],
    protocol: 'UDP',
    port: 81,
    deny: () => false,
  },
  {
    title: 'SCTP is not TCP',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }] })],
    deny: (_f, t) => t === 'x/a',
  },
  {
    title: 'a policy allowing SCTP still isolates for SCTP from others',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }], ports: [{ protocol: 'SCTP', port: 80 }] }] })],
    protocol: 'SCTP',
    deny: (f, t) => t === 'x/a' && f !== 'x/b',
  },
  {
    title: 'allow-all ingress next to a narrow one: allow-all wins',
    policies: [policy('narrow', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }] }), policy('all', { podSelector: {}, ingress: [{}] })],
    deny: () => false,
  },
  {
    title: 'allow-all egress next to a narrow one: allow-all wins',
    policies: [
      policy('narrow', { podSelector: sel({ pod: 'a' }), egress: [{ to: [{ podSelector: sel({ pod: 'b' }) }] }], policyTypes: ['Egress'] }),
      policy('all', { podSelector: {}, egress: [{}], policyTypes: ['Egress'] }),
    ],
    deny: () => false,
  },
  {
    title: 'egress to a CIDR block (y/b only, /32)',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${podIP('y', 'b')}/32` } }] }] })],
    deny: (f, t) => f === 'x/a' && t !== 'y/b',
  },
  {
    title: 'egress to a CIDR block with except (node n2 subnet minus y/b)',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.244.2.0/24', except: [`${podIP('y', 'b')}/32`] } }] }] })],
    deny: (f, t) => f === 'x/a' && (name(t) !== 'b' || t === 'y/b'),
  },
  {
    title: 'an address in both a CIDR and another policy\'s except is allowed (union)',
    policies: [
      policy('except', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.244.2.0/24', except: [`${podIP('y', 'b')}/32`] } }] }] }),
      policy('exact', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${podIP('y', 'b')}/32` } }] }] }),
    ],
    deny: (f, t) => f === 'x/a' && name(t) !== 'b',
  },
  {
    title: 'endPort range covers 80-81 (probe 81)',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }], ports: [{ port: 80, endPort: 81 }] }] })],
    port: 81,
    deny: (f, t) => t === 'x/a' && ns(f) !== 'y',
  },
  {
    title: 'endPort range 82-90 leaves 81 out',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ ports: [{ port: 82, endPort: 90 }] }] })],
    port: 81,
    deny: (_f, t) => t === 'x/a',
  },
  {
    title: 'ingress and egress isolation controlled independently',
    policies: [
      policy('in', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }] }),
      policy('out', { podSelector: sel({ pod: 'b' }), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: sel({ pod: 'c' }) }] }] }),
    ],
    deny: (f, t) => (t === 'x/a' && f !== 'x/b') || (f === 'x/b' && t !== 'x/c'),
  },
  {
    title: 'UDP default-deny-ingress',
    policies: [policy('deny-ingress', { podSelector: {} })],
    protocol: 'UDP',
    port: 81,
    deny: (_f, t) => ns(t) === 'x',
  },
  {
    title: 'UDP ingress on port 81 from namespace y',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }], ports: [{ port: 81, protocol: 'UDP' }] }] })],
    protocol: 'UDP',
    port: 81,
    deny: (f, t) => t === 'x/a' && ns(f) !== 'y',
  },
  {
    title: 'an egress policy alone does not isolate ingress (policyTypes [Egress], ingress rules ignored)',
    policies: [policy('p', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'], ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }], egress: [{}] })],
    deny: () => false,
  },
  {
    title: 'a policy in another namespace does not select x pods',
    policies: [policy('deny', { podSelector: {} }, 'y')],
    deny: (_f, t) => ns(t) === 'y',
  },
];

describe('reachability from the desired state (upstream netpol and cyclonus shapes)', () => {
  it.each(cases)('$title', (c) => {
    expect(matrix(cluster(c.policies), c.protocol ?? 'TCP', c.port ?? 80)).toBe(expected(c.deny));
  });

  it('relabels: a namespace or pod gaining the label gains access; the updated policy is in force', () => {
    const p = policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ namespaceSelector: sel({ team: 'blue' }) }] }] });
    const before = cluster([p]);
    expect(matrix(before)).toBe(expected((_f, t) => t === 'x/a'));
    const nsLabelled = cluster([p], { namespaces: [{ name: 'x', labels: { ns: 'x' } }, { name: 'y', labels: { ns: 'y', team: 'blue' } }, { name: 'z', labels: { ns: 'z' } }] });
    expect(matrix(nsLabelled)).toBe(expected((f, t) => t === 'x/a' && ns(f) !== 'y'));
    const q = policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ role: 'client' }) }] }] });
    const pods = before.pods.map((x) => (x.namespace === 'x' && x.name === 'c' ? { ...x, labels: { ...x.labels, role: 'client' } } : x));
    expect(matrix(cluster([q], { pods }))).toBe(expected((f, t) => t === 'x/a' && f !== 'x/c'));
    // The target relabelled out of the policy's podSelector is no longer isolated.
    const pods2 = before.pods.map((x) => (x.namespace === 'x' && x.name === 'a' ? { ...x, labels: { pod: 'a2' } } : x));
    expect(matrix(cluster([q], { pods: pods2 }))).toBe(expected(() => false));
  });
});

describe('desired state', () => {
  it('holds only this node\'s isolated pods; rules are shared; peers resolve to addresses', () => {
    const inputs = cluster([policy('p', { podSelector: {}, ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }, { ipBlock: { cidr: '192.168.0.0/16', except: ['192.168.1.0/24'] } }], ports: [{ port: 80 }, { port: 1000, endPort: 2000 }, { protocol: 'UDP' }] }] })]);
    const d = desiredState(inputs, { nodeName: 'n1' });
    expect([...d.pods.keys()]).toEqual(['x/a', 'x/c']);
    expect(d.pods.get('x/a')).toEqual({ key: 'x/a', ips: ['10.244.1.11'], ingress: { policies: ['x/p'], rules: ['x.p.in0'] } });
    expect([...d.rules.values()]).toEqual([
      {
        id: 'x.p.in0',
        setId: 'x.p.in0',
        policy: 'x/p',
        direction: 'ingress',
        index: 0,
        named: false,
        ports: [
          { protocol: 'TCP', from: 80, to: 80 },
          { protocol: 'TCP', from: 1000, to: 2000 },
          { protocol: 'UDP', from: 0, to: 65535 },
        ],
      },
    ]);
    const s = d.peerSets.get('x.p.in0')!;
    expect(s.pods).toEqual(['10.244.2.12']);
    expect(s.nets4.flatMap((iv) => intervalToCidrs(iv, 4))).toEqual(['192.168.0.0/24', '192.168.2.0/23', '192.168.4.0/22', '192.168.8.0/21', '192.168.16.0/20', '192.168.32.0/19', '192.168.64.0/18', '192.168.128.0/17']);
    expect(desiredState(inputs, { nodeName: 'n2' }).pods.has('x/b')).toBe(true);
  });

  it('hostNetwork pods are neither policied nor peers; pods without addresses are no peers, their rules are there ahead of them', () => {
    const pods = [netpolPod('x', 'a'), netpolPod('x', 'h', { hostNetwork: true, podIPs: ['172.18.0.2'] }), netpolPod('x', 'n', { podIPs: [] })];
    const inputs = cluster([policy('p', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })], { pods });
    const d = desiredState(inputs, { nodeName: 'n1' });
    expect([...d.pods.keys()]).toEqual(['x/a', 'x/n']);
    expect(d.pods.get('x/n')).toMatchObject({ ips: [], ingress: { rules: ['x.p.in0'] } });
    expect(d.peerSets.get('x.p.in0')!.pods).toEqual(['10.244.1.11']);
    // Only the pending pod selects the rule: it is still in the state (rendered ahead of the ADD).
    const alone = desiredState(cluster([policy('q', { podSelector: sel({ pod: 'n' }), ingress: [{ from: [{ podSelector: {} }] }] })], { pods }), { nodeName: 'n1' });
    expect([...alone.rules.keys()]).toEqual(['x.q.in0']);
    expect(alone.pods.get('x/n')!.ips).toEqual([]);
  });

  it('ingress named ports resolve per local pod: one rule state per distinct resolution', () => {
    const pods = [netpolPod('x', 'a'), netpolPod('x', 'c', { namedPorts: [{ name: 'web', port: 8080, protocol: 'TCP' }] }), netpolPod('x', 'd', { namedPorts: [{ name: 'web', port: 9090, protocol: 'TCP' }] })];
    const inputs = cluster([policy('p', { podSelector: {}, ingress: [{ ports: [{ port: 'web' }, { port: 443 }] }] })], { pods });
    const d = desiredState(inputs, { nodeName: 'n1' });
    const ports = (pod: string) => d.rules.get(d.pods.get(pod)!.ingress!.rules[0]!)!.ports;
    expect(ports('x/a')).toEqual([{ protocol: 'TCP', from: 443, to: 443 }]);
    expect(ports('x/c')).toEqual([{ protocol: 'TCP', from: 443, to: 443 }, { protocol: 'TCP', from: 8080, to: 8080 }]);
    expect(ports('x/d')).toEqual([{ protocol: 'TCP', from: 443, to: 443 }, { protocol: 'TCP', from: 9090, to: 9090 }]);
    expect(new Set(d.pods.get('x/c')!.ingress!.rules).size + new Set(d.pods.get('x/d')!.ingress!.rules).size).toBe(2);
    expect(d.pods.get('x/c')!.ingress!.rules[0]).not.toBe(d.pods.get('x/d')!.ingress!.rules[0]);
    // A rule with only a name the pod lacks allows nothing: no rule at all for that pod.
    const only = desiredState(cluster([policy('p', { podSelector: {}, ingress: [{ ports: [{ port: 'web' }] }] })], { pods }), { nodeName: 'n1' });
    expect(only.pods.get('x/a')!.ingress!.rules).toEqual([]);
  });

  it('egress named ports become (address, protocol, port) of the selected pods', () => {
    const inputs = cluster([policy('p', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: sel({ ns: 'y' }) }], ports: [{ port: 'serve-81-udp', protocol: 'UDP' }] }] })]);
    const d = desiredState(inputs, { nodeName: 'n1' });
    expect(d.peerSets.get('x.p.eg0')!.named).toEqual(['y/a', 'y/c', 'y/b'].map((p) => ({ ip: podIP('y', p.slice(2)), protocol: 'UDP', port: 81 })));
    expect(evaluate(d, 'x/a', 'egress', podIP('y', 'b'), 'UDP', 81)?.allowed).toBe(true);
    expect(evaluate(d, 'x/a', 'egress', podIP('y', 'b'), 'UDP', 80)?.allowed).toBe(false);
    expect(evaluate(d, 'x/a', 'egress', podIP('z', 'b'), 'UDP', 81)?.allowed).toBe(false);
  });

  it('an ipBlock peer\'s egress named port is resolved on the pods whose addresses are in the block', () => {
    // 10.244.1.0/24 holds the a and c pods; y/c is cut out.
    const block = { ipBlock: { cidr: '10.244.1.0/24', except: [`${podIP('y', 'c')}/32`] } };
    const d = desiredState(cluster([policy('p', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'], egress: [{ to: [block], ports: [{ port: 'serve-81-udp', protocol: 'UDP' }] }] })]), { nodeName: 'n1' });
    const named = d.peerSets.get('x.p.eg0')!.named.map((n) => n.ip);
    expect(named.sort()).toEqual(['x/a', 'x/c', 'y/a', 'z/a', 'z/c'].map((p) => podIP(ns(p), name(p))).sort());
    expect(evaluate(d, 'x/a', 'egress', podIP('z', 'c'), 'UDP', 81)?.allowed).toBe(true);
    expect(evaluate(d, 'x/a', 'egress', podIP('z', 'c'), 'UDP', 80)?.allowed).toBe(false);
    expect(evaluate(d, 'x/a', 'egress', podIP('y', 'c'), 'UDP', 81)?.allowed).toBe(false);
    expect(evaluate(d, 'x/a', 'egress', podIP('y', 'b'), 'UDP', 81)?.allowed).toBe(false);
  });

  it('egress that allows port 53 also allows the node-local DNS addresses; other egress does not', () => {
    const dnsPolicy = policy('dns', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: sel({ 'kubernetes.io/metadata.name': 'kube-system' }) }], ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }] }] });
    const d = desiredState(cluster([dnsPolicy]), { nodeName: 'n1', dnsAddresses: ['10.96.0.10'] });
    expect(d.pods.get('x/a')!.egress!.dns).toEqual([
      { protocol: 'TCP', from: 53, to: 53 },
      { protocol: 'UDP', from: 53, to: 53 },
    ]);
    expect(evaluate(d, 'x/a', 'egress', '10.96.0.10', 'UDP', 53)).toEqual({ allowed: true, dns: true });
    expect(evaluate(d, 'x/a', 'egress', '10.96.0.10', 'UDP', 54)?.allowed).toBe(false);
    const other = desiredState(cluster([policy('web', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 80 }] }] })]), { nodeName: 'n1', dnsAddresses: ['10.96.0.10'] });
    expect(other.pods.get('x/a')!.egress!.dns).toBeUndefined();
    expect(evaluate(other, 'x/a', 'egress', '10.96.0.10', 'UDP', 53)?.allowed).toBe(false);
  });
});

describe('explain', () => {
  it('names the policy and rule that decides, or what isolates', () => {
    const inputs = cluster([
      policy('deny', { podSelector: {} }),
      policy('web', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ pod: 'c' }) }] }, { from: [{ podSelector: sel({ pod: 'b' }) }], ports: [{ port: 80 }] }] }),
    ]);
    const e = explain(inputs, { pod: 'x/b' }, { pod: 'x/a' }, 'TCP', 80);
    expect(e.allowed).toBe(true);
    expect(e.egress.verdict).toBe('not-isolated');
    expect(e.ingress).toEqual({ verdict: 'allow', policies: ['x/deny', 'x/web'], policy: 'x/web', rule: 'ingress[1]', reason: 'x/web ingress[1] allows TCP 80 from x/b (10.244.2.12)' });
    const d = explain(inputs, { pod: 'x/b' }, { pod: 'x/a' }, 'TCP', 81);
    expect(d.allowed).toBe(false);
    expect(d.ingress.reason).toBe('isolated by x/deny, x/web; no rule allows TCP 81 from x/b (10.244.2.12)');
    // The pod's own node passes (kubelet probes); another node does not.
    expect(explain(inputs, { node: 'n1', ip: '172.18.0.1' }, { pod: 'x/a' }, 'TCP', 81).allowed).toBe(true);
    expect(explain(inputs, { node: 'n2', ip: '172.18.0.2' }, { pod: 'x/a' }, 'TCP', 81).allowed).toBe(false);
    expect(explain(inputs, { ip: '8.8.8.8' }, { pod: 'y/a' }, 'TCP', 81).ingress.verdict).toBe('not-isolated');
    expect(() => explain(inputs, { pod: 'x/nope' }, { pod: 'x/a' }, 'TCP', 80)).toThrow('unknown pod x/nope');
  });
});

describe('address arithmetic', () => {
  it('subtracts excepts and prints the fewest CIDRs, IPv4 and IPv6', () => {
    const a = parseCidr('10.0.0.0/8')!;
    const cut = subtract([a], normalize([parseCidr('10.1.0.0/16')!, parseCidr('10.0.0.0/16')!]));
    expect(cut.flatMap((iv) => intervalToCidrs(iv, 4))).toEqual(['10.2.0.0/15', '10.4.0.0/14', '10.8.0.0/13', '10.16.0.0/12', '10.32.0.0/11', '10.64.0.0/10', '10.128.0.0/9']);
    const b = parseCidr('fd00::/64')!;
    expect(subtract([b], [parseCidr('fd00::/65')!]).flatMap((iv) => intervalToCidrs(iv, 6))).toEqual(['fd00::8000:0:0:0/65']);
    expect(parseCidr('10.1.2.3/24')).toMatchObject({ prefix: 24 });
    expect(intervalToCidrs(parseCidr('10.1.2.3/24')!, 4)).toEqual(['10.1.2.0/24']);
    expect(parseCidr('10.0.0.0')).toBeUndefined();
    expect(parseCidr('::ffff:1.2.3.4/128')!.lo).toBe(0xffff01020304n);
  });
});
