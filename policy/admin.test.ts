import { describe, expect, it } from 'vitest';
import { ConvertError, convert, registerConverter } from '../common/watch/convert.js';
import { adminWatchConverters, domainMatches, domainSetsFor, toAdminNetworkPolicy, toBaselineAdminNetworkPolicy, toClusterNetworkPolicy, type ClusterPolicy } from './admin.js';
import { desiredState } from './desired.js';
import { explain } from './explain.js';
import { cluster, cnp, expected, matrix, podIP, policy } from './fixtures.js';
import type { NetworkPolicy, Protocol } from './model.js';
import { fullText, render } from './render.js';

const ns = (pod: string): string => pod.split('/')[0]!;
const sel = (matchLabels: Record<string, string>) => ({ matchLabels });
const inX = { namespaces: sel({ ns: 'x' }) };
const fromNs = (n: string) => ({ namespaces: sel({ ns: n }) });
const anyNs = { namespaces: {} };
const tcp = (number: number) => ({ tcp: { destinationPort: { number } } });

interface Case {
  readonly title: string;
  readonly admin: ClusterPolicy[];
  readonly policies?: NetworkPolicy[];
  readonly protocol?: Protocol;
  readonly port?: number;
  readonly deny: (from: string, to: string) => boolean;
}

// Modelled on the network-policy-api conformance suite: tiers, priorities, Pass, rule order.
const cases: Case[] = [
  {
    title: 'Admin Deny wins over a NetworkPolicy allow-all',
    admin: [cnp('deny-y', 'Admin', 10, { subject: inX, ingress: [{ action: 'Deny', from: [fromNs('y')] }] })],
    policies: [policy('all', { podSelector: {}, ingress: [{}] })],
    deny: (f, t) => ns(t) === 'x' && ns(f) === 'y',
  },
  {
    title: 'Admin Accept wins over a NetworkPolicy default deny',
    admin: [cnp('accept-y', 'Admin', 10, { subject: inX, ingress: [{ action: 'Accept', from: [fromNs('y')] }] })],
    policies: [policy('deny', { podSelector: {} })],
    deny: (f, t) => ns(t) === 'x' && ns(f) !== 'y',
  },
  {
    title: 'Pass skips the rest of the Admin tier: NetworkPolicy decides (none here: allowed)',
    admin: [
      cnp('pass-y', 'Admin', 10, { subject: inX, ingress: [{ action: 'Pass', from: [fromNs('y')] }] }),
      cnp('deny-all', 'Admin', 20, { subject: inX, ingress: [{ action: 'Deny', from: [anyNs] }] }),
    ],
    deny: (f, t) => ns(t) === 'x' && ns(f) !== 'y',
  },
  {
    title: 'Pass then a NetworkPolicy that denies',
    admin: [cnp('pass-y', 'Admin', 10, { subject: inX, ingress: [{ action: 'Pass', from: [fromNs('y')] }] })],
    policies: [policy('only-z', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: sel({ ns: 'z' }) }] }] })],
    deny: (f, t) => ns(t) === 'x' && ns(f) !== 'z',
  },
  {
    title: 'lower priority value first: Accept at 5 beats Deny at 10',
    admin: [
      cnp('deny', 'Admin', 10, { subject: inX, ingress: [{ action: 'Deny', from: [anyNs] }] }),
      cnp('accept', 'Admin', 5, { subject: inX, ingress: [{ action: 'Accept', from: [fromNs('z')] }] }),
    ],
    deny: (f, t) => ns(t) === 'x' && ns(f) !== 'z',
  },
  {
    title: 'rule order within one policy: the first matching rule wins',
    admin: [cnp('ordered', 'Admin', 10, { subject: inX, ingress: [{ action: 'Accept', from: [fromNs('y')], protocols: [tcp(80)] }, { action: 'Deny', from: [anyNs] }] })],
    deny: (f, t) => ns(t) === 'x' && ns(f) !== 'y',
  },
  {
    title: 'ports: an Admin Deny on TCP 81 leaves TCP 80 alone',
    admin: [cnp('deny-81', 'Admin', 10, { subject: inX, ingress: [{ action: 'Deny', from: [anyNs], protocols: [tcp(81)] }] })],
    deny: () => false,
  },
  {
    title: 'ports: an Admin Deny on a TCP range 80-81 (probe 80)',
    admin: [cnp('deny-range', 'Admin', 10, { subject: inX, ingress: [{ action: 'Deny', from: [anyNs], protocols: [{ tcp: { destinationPort: { range: { start: 80, end: 81 } } } }] }] })],
    deny: (_f, t) => ns(t) === 'x',
  },
  {
    title: 'a named port resolves on the target, any protocol (serve-80-udp probed over UDP)',
    admin: [cnp('deny-named', 'Admin', 10, { subject: inX, ingress: [{ action: 'Deny', from: [anyNs], protocols: [{ destinationNamedPort: 'serve-80-udp' }] }] })],
    protocol: 'UDP',
    deny: (_f, t) => ns(t) === 'x',
  },
  {
    title: 'Baseline Deny applies where no NetworkPolicy isolates',
    admin: [cnp('baseline-deny-y', 'Baseline', 10, { subject: inX, ingress: [{ action: 'Deny', from: [fromNs('y')] }] })],
    deny: (f, t) => ns(t) === 'x' && ns(f) === 'y',
  },
  {
    title: 'a NetworkPolicy overrides the Baseline tier',
    admin: [cnp('baseline-deny-y', 'Baseline', 10, { subject: inX, ingress: [{ action: 'Deny', from: [fromNs('y')] }] })],
    policies: [policy('all', { podSelector: sel({ pod: 'a' }), ingress: [{}] })],
    deny: (f, t) => ns(t) === 'x' && t !== 'x/a' && ns(f) === 'y',
  },
  {
    title: 'Baseline Accept before a Baseline Deny (default deny with exceptions)',
    admin: [
      cnp('baseline-accept-x', 'Baseline', 5, { subject: inX, ingress: [{ action: 'Accept', from: [fromNs('x')] }] }),
      cnp('baseline-deny', 'Baseline', 10, { subject: inX, ingress: [{ action: 'Deny', from: [anyNs] }] }),
    ],
    deny: (f, t) => ns(t) === 'x' && ns(f) !== 'x',
  },
  {
    title: 'egress: Admin Deny to a network (y/b /32) on TCP 80',
    admin: [cnp('no-yb', 'Admin', 10, { subject: inX, egress: [{ action: 'Deny', to: [{ networks: [`${podIP('y', 'b')}/32`] }], protocols: [tcp(80)] }] })],
    deny: (f, t) => ns(f) === 'x' && t === 'y/b',
  },
  {
    title: 'egress: pods peer (namespace AND pod selector) and subject by pods',
    admin: [cnp('a-not-to-b', 'Admin', 10, { subject: { pods: { namespaceSelector: {}, podSelector: sel({ pod: 'a' }) } }, egress: [{ action: 'Deny', to: [{ pods: { namespaceSelector: sel({ ns: 'z' }), podSelector: sel({ pod: 'b' }) } }] }] })],
    deny: (f, t) => f.endsWith('/a') && t === 'z/b',
  },
];

describe('admin tiers (ClusterNetworkPolicy v1alpha2)', () => {
  it.each(cases)('$title', (c) => {
    expect(matrix(cluster(c.policies ?? [], { admin: c.admin }), c.protocol ?? 'TCP', c.port ?? 80)).toBe(expected(c.deny));
  });

  it('egress to a nodes peer: the addresses of the nodes whose labels match, and only those', () => {
    const nodes = [
      { name: 'n1', labels: { role: 'control-plane' }, addresses: ['172.31.0.11'] },
      { name: 'n2', labels: { role: 'worker' }, addresses: ['172.31.0.12'] },
    ];
    const admin = [cnp('no-cp', 'Admin', 10, { subject: inX, egress: [{ action: 'Deny', to: [{ nodes: sel({ role: 'control-plane' }) }] }] })];
    const inputs = { ...cluster([], { admin }), nodes };
    expect(explain(inputs, { pod: 'x/a' }, { ip: '172.31.0.11' }, 'TCP', 6443).egress.verdict).toBe('deny');
    expect(explain(inputs, { pod: 'x/a' }, { ip: '172.31.0.12' }, 'TCP', 6443).egress.verdict).not.toBe('deny');
    expect(explain(inputs, { pod: 'y/a' }, { ip: '172.31.0.11' }, 'TCP', 6443).egress.verdict).not.toBe('deny');
    // The node's address is in the rule's set in the rendered table.
    const text = fullText(render(desiredState(inputs, { nodeName: 'n1' })));
    expect(text).toContain('172.31.0.11');
    expect(text).not.toContain('172.31.0.12');
  });

  it('explain names the tier, priority, rule and action', () => {
    const inputs = cluster([], { admin: [cnp('deny-y', 'Admin', 10, { subject: inX, ingress: [{ name: 'no-y', action: 'Deny', from: [fromNs('y')] }] })] });
    const e = explain(inputs, { pod: 'y/a' }, { pod: 'x/b' }, 'TCP', 80);
    expect(e.allowed).toBe(false);
    expect(e.ingress).toEqual({ verdict: 'deny', policies: [], policy: 'cnp:deny-y', rule: 'ingress[0]', reason: 'Admin tier cnp:deny-y (priority 10) ingress[0] "no-y": Deny TCP 80 from y/a (10.244.1.21)' });
    expect(explain(inputs, { pod: 'z/a' }, { pod: 'x/b' }, 'TCP', 80).ingress.verdict).toBe('not-isolated');
  });

  it('renders Admin rules inline with accept / drop / goto the NetworkPolicy part, Baseline with return', () => {
    const admin = [
      cnp('pass-y', 'Admin', 10, { subject: inX, ingress: [{ action: 'Pass', from: [fromNs('y')] }, { action: 'Deny', from: [anyNs], protocols: [tcp(81)] }] }),
      cnp('base', 'Baseline', 10, { subject: inX, ingress: [{ action: 'Accept', from: [fromNs('z')] }, { action: 'Deny', from: [anyNs] }] }),
      cnp('fqdn', 'Admin', 20, { subject: inX, egress: [{ action: 'Accept', to: [{ domainNames: ['*.example.com'] }], protocols: [tcp(443)] }, { action: 'Deny', to: [{ networks: ['0.0.0.0/0'] }] }] }),
    ];
    const t = render(desiredState(cluster([policy('deny', { podSelector: sel({ pod: 'c' }) })], { admin }), { nodeName: 'n1' }));
    expect(t.chains.get('in.x.a')!.rules).toEqual([
      'ip saddr 10.244.1.11 accept',
      'ip saddr @s.cnp.pass-y.in0.pods4 goto in-np.x.a',
      // A Deny goes through the shared deny chain (retransmits end there, the first packet is logged), then counts and drops.
      'ip saddr @s.cnp.pass-y.in1.pods4 meta l4proto . th dport @s.cnp.pass-y.in1.ports jump deny-in',
      'ip saddr @s.cnp.pass-y.in1.pods4 meta l4proto . th dport @s.cnp.pass-y.in1.ports counter name "drop-in.x.a" drop',
      'goto in-np.x.a',
    ]);
    // x/a: no NetworkPolicy isolates it, so the Baseline tier decides; Pass there means "allow".
    expect(t.chains.get('in-np.x.a')!.rules).toEqual(['ip saddr @s.cnp.base.in0.pods4 accept', 'ip saddr @s.cnp.base.in1.pods4 jump deny-in', 'ip saddr @s.cnp.base.in1.pods4 counter name "drop-in.x.a" drop']);
    expect(t.chains.has('r.cnp.pass-y.in0')).toBe(false);
    expect([...t.elements.get('s.cnp.pass-y.in0.pods4')!.keys()]).toEqual(['10.244.1.21', '10.244.1.23', '10.244.2.22']);
    expect(t.chains.get('out.x.a')!.rules).toEqual([
      'ip daddr 10.244.1.11 accept',
      'ip daddr @s.cnp.fqdn.eg0.fqdn4 meta l4proto . th dport @s.cnp.fqdn.eg0.ports accept',
      'ip daddr @s.cnp.fqdn.eg1.nets4 jump deny-out',
      'ip daddr @s.cnp.fqdn.eg1.nets4 counter name "drop-out.x.a" drop',
      'goto out-np.x.a',
    ]);
    expect(t.sets.get('s.cnp.fqdn.eg0.fqdn4')).toBe('type ipv4_addr ; flags timeout ;');
    expect(t.elements.has('s.cnp.fqdn.eg0.fqdn4')).toBe(false);
    expect([...t.domainSets]).toEqual([['s.cnp.fqdn.eg0.fqdn4', { patterns: ['*.example.com'], family: 4 }]]);
    // x/c: a NetworkPolicy isolates it (deny all); the Baseline tier is not consulted.
    expect(t.chains.get('in-np.x.c')!.rules).toEqual(['jump deny-in', 'counter name "drop-in.x.c" drop']);
  });
});

describe('admin policy conversion', () => {
  it('v1alpha1 AdminNetworkPolicy (Allow is Accept, `ports`) and the baseline singleton', () => {
    const anp = toAdminNetworkPolicy({ metadata: { name: 'a' }, spec: { priority: 3, subject: { namespaces: {} }, ingress: [{ action: 'Allow', from: [{ namespaces: {} }], ports: [{ portNumber: { protocol: 'UDP', port: 53 } }, { namedPort: 'dns' }, { portRange: { start: 80, end: 90 } }] }] } });
    expect(anp).toEqual({
      ok: true,
      value: {
        key: 'anp:a',
        tier: 'Admin',
        priority: 3,
        subject: { namespaces: { matchLabels: {}, matchExpressions: [] } },
        ingress: [{ name: '', action: 'Accept', peers: [{ namespaces: { matchLabels: {}, matchExpressions: [] } }], ports: [{ protocol: 'UDP', port: 53 }, { port: 'dns' }, { protocol: 'TCP', port: 80, endPort: 90 }] }],
        egress: [],
      },
    });
    const banp = toBaselineAdminNetworkPolicy({ metadata: { name: 'default' }, spec: { subject: { namespaces: {} }, egress: [{ action: 'Deny', to: [{ networks: ['10.0.0.0/8'] }] }] } });
    expect(banp.ok && banp.value.tier === 'Baseline' && banp.value.priority > 1000).toBe(true);
    expect(toBaselineAdminNetworkPolicy({ metadata: { name: 'default' }, spec: { subject: { namespaces: {} }, egress: [{ action: 'Allow', to: [{ domainNames: ['example.com'] }] }] } })).toEqual({ ok: false, reason: 'spec.egress[0]: BaselineAdminNetworkPolicy has no domainNames peer' });
  });

  it.each([
    [{ tier: 'Middle', priority: 1, subject: { namespaces: {} } }, 'spec.tier: must be Admin or Baseline'],
    [{ tier: 'Admin', priority: 1001, subject: { namespaces: {} } }, 'spec.priority: must be an integer in 0-1000'],
    [{ tier: 'Admin', priority: 1, subject: { namespaces: {}, pods: { namespaceSelector: {}, podSelector: {} } } }, 'spec.subject: exactly one of namespaces, pods must be set'],
    [{ tier: 'Admin', priority: 1, subject: { namespaces: {} }, egress: [{ action: 'Deny', to: [{ domainNames: ['example.com'] }] }] }, 'spec.egress[0]: domainNames peers need the Accept action'],
    [{ tier: 'Admin', priority: 1, subject: { namespaces: {} }, egress: [{ action: 'Accept', to: [{ networks: ['10.0.0.0/8'] }], protocols: [{ destinationNamedPort: 'http' }] }] }, 'spec.egress[0]: named ports cannot be used with networks, nodes or domainNames peers'],
    [{ tier: 'Admin', priority: 1, subject: { namespaces: {} }, ingress: [{ action: 'Accept', from: [{ networks: ['10.0.0.0/8'] }] }] }, 'spec.ingress[0].from[0]: exactly one of namespaces, pods must be set'],
    [{ tier: 'Admin', priority: 1, subject: { namespaces: {} }, ingress: [{ action: 'Allow', from: [anyNs] }] }, 'spec.ingress[0].action: unknown action "Allow"'],
    [{ tier: 'Admin', priority: 1, subject: { namespaces: {} }, ingress: [{ action: 'Deny', from: [] }] }, 'spec.ingress[0].from: must have at least one peer'],
  ])('refuses %j', (spec, why) => {
    expect(toClusterNetworkPolicy({ metadata: { name: 'p' }, spec })).toEqual({ ok: false, reason: why });
  });
});

describe('domainNames', () => {
  it.each([
    ['kubernetes.io', 'kubernetes.io', true],
    ['kubernetes.io', 'KUBERNETES.io.', true],
    ['kubernetes.io', 'www.kubernetes.io', false],
    ['*.kubernetes.io', 'www.kubernetes.io', true],
    ['*.kubernetes.io', 'latest.blog.kubernetes.io', true],
    ['*.kubernetes.io', 'kubernetes.io', false],
    ['*.kubernetes.io', 'my-kubernetes.io', false],
  ])('%s matches %s: %s', (p, n, want) => {
    expect(domainMatches(p, n)).toBe(want);
  });

  it('an answer goes into the sets whose patterns match, per family', () => {
    const sets = new Map([
      ['s.cnp.a.eg0.fqdn4', { patterns: ['*.example.com'], family: 4 as const }],
      ['s.cnp.a.eg0.fqdn6', { patterns: ['*.example.com'], family: 6 as const }],
      ['s.cnp.b.eg0.fqdn4', { patterns: ['example.com', 'example.org'], family: 4 as const }],
    ]);
    expect(domainSetsFor(sets, 'www.example.com', 4)).toEqual(['s.cnp.a.eg0.fqdn4']);
    expect(domainSetsFor(sets, 'example.org', 4)).toEqual(['s.cnp.b.eg0.fqdn4']);
    expect(domainSetsFor(sets, 'www.example.com', 6)).toEqual(['s.cnp.a.eg0.fqdn6']);
  });
});

describe('the watch converters (registered by the agent)', () => {
  it('keep the object name and report what the engine refuses at its field', () => {
    for (const [kind, fn] of Object.entries(adminWatchConverters())) registerConverter(kind as 'clusternetworkpolicies', fn);
    const { key, value } = convert('clusternetworkpolicies', { metadata: { name: 'deny-db' }, spec: { tier: 'Admin', priority: 5, subject: { namespaces: {} }, ingress: [{ name: 'r', action: 'Deny', from: [{ namespaces: {} }] }] } });
    expect(key).toBe('deny-db');
    expect(value).toMatchObject({ name: 'deny-db', key: 'cnp:deny-db', tier: 'Admin', priority: 5 });
    try {
      convert('clusternetworkpolicies', { metadata: { name: 'bad' }, spec: { tier: 'Middle', subject: { namespaces: {} } } });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConvertError);
      expect((e as ConvertError).field).toBe('spec.tier');
    }
  });
});
