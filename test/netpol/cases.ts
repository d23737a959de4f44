// Every case of the suite as data: the upstream netpol e2e suite's 42 TCP and 3 UDP tests (with all
// nine pods present, so each expectation covers pods upstream's trimmed topologies leave out),
// cyclonus-style endPort and ipBlock variants and generated combinations, pod and namespace
// relabels, and the admin-tier cases of the network-policy-api conformance suite (tiers,
// priorities, Pass, rule order).
import type { KubeObject } from '../../sandbox/apiserver/resources.js';
import { PODS, Reachability, type Ns, type PodId, type Port, type Protocol } from './model.js';
import type { Cluster } from './oracle.js';
import {
  all, anp, anyNs, banp, cnp, denyEgress, denyIngress, fromNs, labels, np, nsIn, nsNamed, nsNotIn, nsSubject, podIn, pods, tcp, type NpPeer, type NpPort,
} from './policies.js';

export interface Ctx {
  ip(p: PodId): string;
  /** 1 or 2: the sandbox node the pod runs on. */
  nodeOf(p: PodId): number;
  /** The pod CIDR of node 1 or 2. */
  podCidr(node: number): string;
}

export interface Probe {
  readonly port: Port;
  readonly protocol: Protocol;
  readonly reach: Reachability;
}

export interface Step {
  /** Created, or replaced when one of that name exists. */
  readonly apply?: readonly KubeObject[];
  readonly remove?: readonly KubeObject[];
  /** Label changes (null removes); the suite restores every pod and namespace's labels after the case. */
  readonly podLabels?: readonly (readonly [PodId, Record<string, string | null>])[];
  readonly nsLabels?: readonly (readonly [Ns, Record<string, string | null>])[];
  readonly probes: readonly Probe[];
}

/** Records a step's writes in the oracle's copy of the cluster, in the order the suite makes them. */
export function record(step: Step, cluster: Cluster): void {
  for (const [id, change] of step.podLabels ?? []) cluster.relabelPod(id, change);
  for (const [ns, change] of step.nsLabels ?? []) cluster.relabelNs(ns, change);
  for (const o of step.apply ?? []) cluster.apply(o);
  for (const o of step.remove ?? []) cluster.remove(o);
}

export interface Case {
  readonly name: string;
  readonly group: 'upstream TCP' | 'upstream UDP' | 'cyclonus' | 'generated' | 'relabel' | 'admin';
  readonly steps: (c: Ctx) => Step[];
}

const R = (): Reachability => new Reachability(true);
const TCP = (port: Port, reach: Reachability): Probe => ({ port, protocol: 'TCP', reach });
const UDP = (port: Port, reach: Reachability): Probe => ({ port, protocol: 'UDP', reach });
const one = (apply: KubeObject[], ...probes: Probe[]): Step[] => [{ apply, probes }];

const host = (c: Ctx, p: PodId): string => `${c.ip(p)}/32`;
/** Upstream's makeLargeCIDRForIP, here the whole pod network around the pod. */
const large = (c: Ctx, p: PodId): string => `${c.ip(p).split('.').slice(0, 2).join('.')}.0.0/16`;
/** Allowed exactly when the destination satisfies `f` (for rules keyed on addresses). */
const egressOnlyTo = (from: PodId, f: (to: PodId) => boolean): Reachability => {
  const r = R();
  for (const to of PODS) r.expect(from, to, f(to));
  return r;
};

const xaFromY = np('x', 'allow-client-a-via-ns-selector', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNamed('y') }] }] });

export const UPSTREAM_TCP: Case[] = [
  { name: "should support a 'default-deny-ingress' policy", group: 'upstream TCP', steps: () => one([denyIngress('x')], TCP(80, R().expectPeer({}, { ns: 'x' }, false))) },
  {
    name: "should support a 'default-deny-all' policy",
    group: 'upstream TCP',
    steps: () => one([np('x', 'deny-all', all, { ingress: [], egress: [] })], TCP(80, R().expectPeer({}, { ns: 'x' }, false).expectPeer({ ns: 'x' }, {}, false))),
  },
  {
    name: 'should enforce policy to allow traffic from pods within server namespace based on PodSelector',
    group: 'upstream TCP',
    steps: () => one([np('x', 'x-a-allows-x-b', pods('a'), { ingress: [{ from: [{ podSelector: pods('b') }] }] })], TCP(80, R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true))),
  },
  {
    name: 'should enforce policy to allow ingress traffic for a target',
    group: 'upstream TCP',
    steps: () =>
      one(
        [denyIngress('x', 'deny-all'), np('x', 'allow-all-to-a', pods('a'), { ingress: [{ from: [{ podSelector: all, namespaceSelector: all }] }] })],
        TCP(80, R().expectAllIngress('x/a', true).expectAllIngress('x/b', false).expectAllIngress('x/c', false)),
      ),
  },
  {
    name: 'should enforce policy to allow ingress traffic from pods in all namespaces',
    group: 'upstream TCP',
    steps: () => one([np('x', 'allow-from-another-ns', pods('a'), { ingress: [{ from: [{ namespaceSelector: labels({}) }] }] })], TCP(80, R())),
  },
  {
    name: 'should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector',
    group: 'upstream TCP',
    steps: () => one([xaFromY], TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false))),
  },
  {
    name: 'should enforce policy based on PodSelector with MatchExpressions',
    group: 'upstream TCP',
    steps: () => one([np('x', 'x-a-allows-x-b', pods('a'), { ingress: [{ from: [{ podSelector: podIn('b') }] }] })], TCP(80, R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true))),
  },
  {
    name: 'should enforce policy based on NamespaceSelector with MatchExpressions',
    group: 'upstream TCP',
    steps: () =>
      one(
        [np('x', 'allow-ns-y-match-selector', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsIn('y') }] }] })],
        TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false)),
      ),
  },
  {
    name: 'should enforce policy based on PodSelector or NamespaceSelector',
    group: 'upstream TCP',
    steps: () =>
      one([np('x', 'allow-ns-y-match-selector', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNotIn('x') }, { podSelector: pods('b') }] }] })], TCP(80, R().expect('x/c', 'x/a', false))),
  },
  {
    name: 'should enforce policy based on PodSelector and NamespaceSelector',
    group: 'upstream TCP',
    steps: () =>
      one(
        [np('x', 'allow-ns-y-podselector-and-nsselector', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNotIn('x'), podSelector: pods('b') }] }] })],
        TCP(80, R().expectAllIngress('x/a', false).expect('y/b', 'x/a', true).expect('z/b', 'x/a', true)),
      ),
  },
  {
    name: 'should enforce policy based on Multiple PodSelectors and NamespaceSelectors',
    group: 'upstream TCP',
    steps: () =>
      one(
        [np('x', 'allow-ns-y-z-pod-b-c', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNotIn('x'), podSelector: podIn('b', 'c') }] }] })],
        TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expect('y/a', 'x/a', false).expect('z/a', 'x/a', false)),
      ),
  },
  {
    name: 'should enforce policy based on any PodSelectors',
    group: 'upstream TCP',
    steps: () =>
      one(
        [np('x', 'allow-ns-x-pod-b-c', pods('a'), { ingress: [{ from: [{ podSelector: pods('b') }, { podSelector: pods('c') }] }] })],
        TCP(80, R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true).expect('x/c', 'x/a', true)),
      ),
  },
  {
    name: 'should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector',
    group: 'upstream TCP',
    steps: () =>
      one(
        [np('x', 'allow-ns-y-pod-a-via-namespace-pod-selector', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNamed('y'), podSelector: pods('a') }] }] })],
        TCP(80, R().expectAllIngress('x/a', false).expect('y/a', 'x/a', true)),
      ),
  },
  {
    name: 'should enforce policy based on Ports',
    group: 'upstream TCP',
    steps: () =>
      one(
        [np('x', 'allow-client-a-via-ns-selector', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNamed('y') }], ports: [{ port: 81, protocol: 'TCP' }] }] })],
        TCP(81, R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expectPeer({ ns: 'y' }, { ns: 'x', pod: 'a' }, true).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false)),
        TCP(80, R().expectAllIngress('x/a', false)),
      ),
  },
  {
    name: 'should enforce multiple, stacked policies with overlapping podSelectors',
    group: 'upstream TCP',
    steps: () => {
      const allow = R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expectPeer({ ns: 'y' }, { ns: 'x', pod: 'a' }, true).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false);
      const rule = (port: number) => ({ from: [{ namespaceSelector: nsNamed('y') }], ports: [{ port, protocol: 'TCP' as const }] });
      return [
        { apply: [np('x', 'allow-client-a-via-ns-selector', pods('a'), { ingress: [rule(81)] })], probes: [TCP(81, allow), TCP(80, R().expectAllIngress('x/a', false))] },
        { apply: [np('x', 'allow-client-a-via-ns-selector-80', pods('a'), { ingress: [rule(80)] })], probes: [TCP(80, allow)] },
      ];
    },
  },
  { name: 'should support allow-all policy', group: 'upstream TCP', steps: () => one([np('x', 'allow-all', all, { ingress: [{}] })], TCP(80, R()), TCP(81, R())) },
  {
    name: 'should allow ingress access on one named port',
    group: 'upstream TCP',
    steps: () => one([np('x', 'allow-all', all, { ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })], TCP(81, R()), TCP(80, R().expectPeer({}, { ns: 'x' }, false))),
  },
  {
    name: 'should allow ingress access from namespace on one named port',
    group: 'upstream TCP',
    steps: () =>
      one(
        [np('x', 'allow-client-a-via-ns-selector-80', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNamed('y') }], ports: [{ port: 'serve-80-tcp', protocol: 'TCP' }] }] })],
        TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false)),
        TCP(81, R().expectAllIngress('x/a', false)),
      ),
  },
  {
    name: 'should allow egress access on one named port',
    group: 'upstream TCP',
    steps: () => one([np('x', 'allow-egress', all, { egress: [{ ports: [{ port: 'serve-80-tcp' }] }] })], TCP(80, R()), TCP(81, R().expectPeer({ ns: 'x' }, {}, false))),
  },
  {
    name: 'should enforce updated policy',
    group: 'upstream TCP',
    steps: () => [
      { apply: [np('x', 'allow-all-mutate-to-deny-all', all, { ingress: [{}] })], probes: [TCP(81, R())] },
      { apply: [np('x', 'allow-all-mutate-to-deny-all', all, { ingress: [] })], probes: [TCP(81, R().expectPeer({}, { ns: 'x' }, false))] },
    ],
  },
  {
    name: 'should allow ingress access from updated namespace',
    group: 'upstream TCP',
    steps: () => [
      { apply: [np('x', 'allow-client-a-via-ns-selector', pods('a'), { ingress: [{ from: [{ namespaceSelector: labels({ ns2: 'updated' }) }] }] })], probes: [TCP(80, R().expectAllIngress('x/a', false))] },
      { nsLabels: [['y', { ns2: 'updated' }]], probes: [TCP(80, R().expectAllIngress('x/a', false).expectPeer({ ns: 'y' }, {}, true))] },
    ],
  },
  {
    name: 'should allow ingress access from updated pod',
    group: 'upstream TCP',
    steps: () => [
      { apply: [np('x', 'allow-client-a-via-pod-selector', pods('a'), { ingress: [{ from: [{ podSelector: labels({ pod: 'b', pod2: 'updated' }) }] }] })], probes: [TCP(80, R().expectAllIngress('x/a', false))] },
      { podLabels: [['x/b', { pod2: 'updated' }]], probes: [TCP(80, R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true))] },
    ],
  },
  {
    name: 'should deny ingress from pods on other namespaces',
    group: 'upstream TCP',
    steps: () => one([np('x', 'deny-empty-policy', all, { ingress: [{ from: [{ podSelector: labels({}) }] }] })], TCP(80, R().expectPeer({ ns: 'y' }, { ns: 'x' }, false).expectPeer({ ns: 'z' }, { ns: 'x' }, false))),
  },
  {
    name: 'should deny ingress access to updated pod',
    group: 'upstream TCP',
    steps: () => [
      { apply: [denyIngress('x', 'deny-ingress-via-label-selector', labels({ target: 'isolated' }))], probes: [TCP(80, R())] },
      { podLabels: [['x/a', { target: 'isolated' }]], probes: [TCP(80, R().expectAllIngress('x/a', false))] },
    ],
  },
  { name: 'should deny egress from pods based on PodSelector', group: 'upstream TCP', steps: () => one([denyEgress('x', 'deny-egress-pod-a', pods('a'))], TCP(80, R().expectAllEgress('x/a', false))) },
  { name: 'should deny egress from all pods in a namespace', group: 'upstream TCP', steps: () => one([denyEgress('x', 'deny-egress-ns-x')], TCP(80, R().expectPeer({ ns: 'x' }, {}, false))) },
  {
    name: 'should work with Ingress, Egress specified together',
    group: 'upstream TCP',
    steps: () =>
      one(
        [np('x', 'allow-client-a-via-pod-selector', pods('a'), { ingress: [{ from: [{ podSelector: pods('b') }] }], egress: [{ ports: [{ port: 80 }] }], types: ['Egress', 'Ingress'] })],
        TCP(80, R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true)),
        TCP(81, R().expectAllIngress('x/a', false).expectAllEgress('x/a', false).expect('x/b', 'x/a', true)),
      ),
  },
  {
    name: 'should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)',
    group: 'upstream TCP',
    steps: () => {
      const fromXa = { ingress: [{ from: [{ namespaceSelector: nsNamed('x'), podSelector: pods('a') }] }] };
      return one(
        [
          np('x', 'allow-to-ns-y-pod-a', pods('a'), { egress: [{ to: [{ namespaceSelector: nsNamed('y'), podSelector: pods('a') }] }] }),
          np('y', 'allow-from-xa-on-ya-match-selector', pods('a'), fromXa),
          np('y', 'allow-from-xa-on-yb-match-selector', pods('b'), fromXa),
        ],
        TCP(80, R().expectPeer({ ns: 'x', pod: 'a' }, {}, false).expectPeer({}, { ns: 'y', pod: 'a' }, false).expectPeer({ ns: 'x', pod: 'a' }, { ns: 'y', pod: 'a' }, true).expectPeer({}, { ns: 'y', pod: 'b' }, false)),
      );
    },
  },
  {
    name: 'should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector',
    group: 'upstream TCP',
    steps: () =>
      one([np('x', 'allow-to-ns-y-pod-a', pods('a'), { egress: [{ to: [{ namespaceSelector: nsNamed('y'), podSelector: pods('a') }] }] })], TCP(80, R().expectAllEgress('x/a', false).expect('x/a', 'y/a', true))),
  },
  {
    name: 'should enforce ingress policy allowing any port traffic to a server on a specific protocol',
    group: 'upstream TCP',
    steps: () => one([np('x', 'allow-ingress-by-proto', pods('a'), { ingress: [{ ports: [{ protocol: 'TCP' }] }] })], TCP(80, R()), UDP(80, R().expectAllIngress('x/a', false))),
  },
  {
    name: 'should enforce multiple ingress policies with ingress allow-all policy taking precedence',
    group: 'upstream TCP',
    steps: () => [
      { apply: [np('x', 'allow-ingress-port-80', all, { ingress: [{ ports: [{ port: 80 }] }] })], probes: [TCP(81, R().expectPeer({}, { ns: 'x' }, false))] },
      { apply: [np('x', 'allow-ingress', all, { ingress: [{}] })], probes: [TCP(81, R())] },
    ],
  },
  {
    name: 'should enforce multiple egress policies with egress allow-all policy taking precedence',
    group: 'upstream TCP',
    steps: () => [
      { apply: [np('x', 'allow-egress-port-80', all, { egress: [{ ports: [{ port: 80 }] }] })], probes: [TCP(81, R().expectPeer({ ns: 'x' }, {}, false))] },
      { apply: [np('x', 'allow-egress', all, { egress: [{}] })], probes: [TCP(81, R())] },
    ],
  },
  {
    name: 'should stop enforcing policies after they are deleted',
    group: 'upstream TCP',
    steps: () => {
      const p = np('x', 'deny-all', all, { ingress: [], egress: [] });
      return [
        { apply: [p], probes: [TCP(80, R().expectPeer({ ns: 'x' }, {}, false).expectPeer({}, { ns: 'x' }, false))] },
        { remove: [p], probes: [TCP(80, R())] },
      ];
    },
  },
  {
    name: 'should allow egress access to server in CIDR block',
    group: 'upstream TCP',
    steps: (c) => one([np('x', 'allow-client-a-via-cidr-egress-rule', pods('a'), { egress: [{ to: [{ ipBlock: { cidr: host(c, 'y/b') } }] }] })], TCP(80, R().expectAllEgress('x/a', false).expect('x/a', 'y/b', true))),
  },
  {
    name: 'should enforce except clause while egress access to server in CIDR block',
    group: 'upstream TCP',
    steps: (c) =>
      one([np('x', 'allow-client-a-via-cidr-egress-rule', pods('a'), { egress: [{ to: [{ ipBlock: { cidr: large(c, 'x/b'), except: [host(c, 'x/b')] } }] }] })], TCP(80, R().expect('x/a', 'x/b', false))),
  },
  {
    name: 'should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed',
    group: 'upstream TCP',
    steps: (c) => [
      { apply: [np('x', 'allow-client-a-via-cidr-egress-rule', pods('a'), { egress: [{ to: [{ ipBlock: { cidr: large(c, 'x/b'), except: [host(c, 'x/b')] } }] }] })], probes: [TCP(80, R().expect('x/a', 'x/b', false))] },
      {
        apply: [np('x', 'allow-client-a-via-cidr-egress-rule', pods('a'), { egress: [{ to: [{ ipBlock: { cidr: host(c, 'x/b') } }] }] })],
        probes: [TCP(80, R().expectAllEgress('x/a', false).expect('x/a', 'x/b', true))],
      },
    ],
  },
  {
    name: 'should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector',
    group: 'upstream TCP',
    steps: () => [
      { apply: [np('x', 'allow-egress-for-target', pods('a'), { egress: [{}] })], probes: [TCP(80, R())] },
      { apply: [denyIngress('x', 'deny-ingress-via-label-selector', pods('a'))], probes: [TCP(80, R().expectAllIngress('x/a', false))] },
    ],
  },
  {
    name: "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
    group: 'upstream TCP',
    steps: () =>
      one([denyIngress('x'), np('x', 'allow-only-sctp-ingress-on-port-81', pods('a'), { ingress: [{ ports: [{ port: 81, protocol: 'SCTP' }] }] })], TCP(81, R().expectPeer({}, { ns: 'x' }, false))),
  },
  {
    name: "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
    group: 'upstream TCP',
    steps: () => one([np('x', 'allow-only-sctp-ingress-on-port-80', pods('a'), { ingress: [{ ports: [{ port: 80, protocol: 'SCTP' }] }] })], TCP(81, R().expectAllIngress('x/a', false))),
  },
  {
    name: 'should not allow access by TCP when a policy specifies only UDP',
    group: 'upstream TCP',
    steps: () => one([np('x', 'allow-only-udp-ingress-on-port-81', pods('a'), { ingress: [{ ports: [{ port: 81, protocol: 'UDP' }] }] })], TCP(81, R().expectAllIngress('x/a', false)), UDP(81, R())),
  },
  {
    name: 'should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label',
    group: 'upstream TCP',
    steps: () =>
      one(
        [np('x', 'allow-client-a-via-ns-selector-for-immutable-ns-label', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNamed('y') }] }] })],
        TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false)),
      ),
  },
  {
    name: 'should enforce policy based on NamespaceSelector with MatchExpressions using default ns label',
    group: 'upstream TCP',
    steps: () =>
      one([np('x', 'allow-ns-y-match-selector-for-immutable-ns-label', pods('a'), { egress: [{ to: [{ namespaceSelector: nsNotIn('y') }] }] })], TCP(80, R().expectPeer({ ns: 'x', pod: 'a' }, { ns: 'y' }, false))),
  },
];

export const UPSTREAM_UDP: Case[] = [
  { name: "should support a 'default-deny-ingress' policy", group: 'upstream UDP', steps: () => one([denyIngress('x', 'deny-all')], UDP(80, R().expectPeer({}, { ns: 'x' }, false))) },
  {
    name: 'should enforce policy based on Ports',
    group: 'upstream UDP',
    steps: () =>
      one(
        [np('x', 'allow-ingress-on-port-81-ns-x', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNamed('y') }], ports: [{ port: 81, protocol: 'UDP' }] }] })],
        UDP(81, R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false)),
        UDP(80, R().expectAllIngress('x/a', false)),
      ),
  },
  {
    name: 'should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector',
    group: 'upstream UDP',
    steps: () =>
      one(
        [np('x', 'allow-ns-y-pod-a-via-namespace-pod-selector', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNamed('y'), podSelector: pods('a') }] }] })],
        UDP(80, R().expectAllIngress('x/a', false).expect('y/a', 'x/a', true)),
      ),
  },
];

export const CYCLONUS: Case[] = [
  {
    name: 'endPort: a TCP range 80-81 opens both ports, not UDP',
    group: 'cyclonus',
    steps: () => one([np('x', 'range-80-81', pods('a'), { ingress: [{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] })], TCP(80, R()), TCP(81, R()), UDP(80, R().expectAllIngress('x/a', false))),
  },
  {
    name: 'endPort: a range 81-82 starts above 80',
    group: 'cyclonus',
    steps: () => one([np('x', 'range-81-82', pods('a'), { ingress: [{ ports: [{ protocol: 'TCP', port: 81, endPort: 82 }] }] })], TCP(80, R().expectAllIngress('x/a', false)), TCP(81, R())),
  },
  {
    name: 'endPort: a range 79-80 ends below 81 (protocol defaulted to TCP)',
    group: 'cyclonus',
    steps: () => one([np('x', 'range-79-80', pods('a'), { ingress: [{ ports: [{ port: 79, endPort: 80 }] }] })], TCP(80, R()), TCP(81, R().expectAllIngress('x/a', false))),
  },
  {
    name: 'endPort: an egress UDP range 80-81 from a whole namespace',
    group: 'cyclonus',
    steps: () => one([np('x', 'udp-range', all, { egress: [{ ports: [{ protocol: 'UDP', port: 80, endPort: 81 }] }] })], UDP(80, R()), UDP(81, R()), TCP(80, R().expectPeer({ ns: 'x' }, {}, false))),
  },
  {
    name: 'endPort: a range with a namespace peer',
    group: 'cyclonus',
    steps: () => {
      const r = R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false);
      return one([np('x', 'range-from-y', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNamed('y') }], ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }] })], TCP(80, r), TCP(81, r), UDP(80, R().expectAllIngress('x/a', false)));
    },
  },
  {
    name: 'ipBlock: ingress from one pod address',
    group: 'cyclonus',
    steps: (c) => one([np('x', 'from-yb-ip', pods('a'), { ingress: [{ from: [{ ipBlock: { cidr: host(c, 'y/b') } }] }] })], TCP(80, R().expectAllIngress('x/a', false).expect('y/b', 'x/a', true))),
  },
  {
    name: 'ipBlock: ingress from the pod network except two pods',
    group: 'cyclonus',
    steps: (c) =>
      one(
        [np('x', 'from-all-but-two', pods('a'), { ingress: [{ from: [{ ipBlock: { cidr: large(c, 'x/a'), except: [host(c, 'y/b'), host(c, 'z/c')] } }] }] })],
        TCP(80, R().expect('y/b', 'x/a', false).expect('z/c', 'x/a', false)),
      ),
  },
  {
    name: "ipBlock: egress to one node's pod CIDR only",
    group: 'cyclonus',
    steps: (c) => one([np('x', 'to-node-2', pods('a'), { egress: [{ to: [{ ipBlock: { cidr: c.podCidr(2) } }] }] })], TCP(80, egressOnlyTo('x/a', (t) => c.nodeOf(t) === 2))),
  },
  {
    name: "ipBlock: egress to 0.0.0.0/0 except one node's pod CIDR",
    group: 'cyclonus',
    steps: (c) => one([np('x', 'not-node-1', pods('a'), { egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: [c.podCidr(1)] } }] }] })], TCP(81, egressOnlyTo('x/a', (t) => c.nodeOf(t) !== 1))),
  },
  {
    name: 'ipBlock: ingress from the pod network on port 81 only',
    group: 'cyclonus',
    steps: (c) => one([np('x', 'ip-port-81', pods('a'), { ingress: [{ from: [{ ipBlock: { cidr: large(c, 'x/a') } }], ports: [{ port: 81 }] }] })], TCP(80, R().expectAllIngress('x/a', false)), TCP(81, R())),
  },
  {
    name: 'ipBlock: an except is a hole in one rule only, another rule still allows the pod (rules are a union)',
    group: 'cyclonus',
    steps: (c) =>
      one(
        [np('x', 'union', pods('a'), { ingress: [{ from: [{ ipBlock: { cidr: large(c, 'x/a'), except: [host(c, 'y/b')] } }] }, { from: [{ namespaceSelector: nsNamed('y'), podSelector: pods('b') }] }] })],
        TCP(80, R()),
      ),
  },
];

/**
 * Generated the way cyclonus generates: one policy per combination of direction, target, peer and
 * port, in namespace x. These have no hand-written tables: every matrix is the oracle's
 * (oracle.ts), itself checked against every hand-written table.
 */
export function generated(): Case[] {
  type Peer = { name: string; peer: (c: Ctx) => NpPeer };
  const peers: Peer[] = [
    { name: 'pod b in x', peer: () => ({ podSelector: pods('b') }) },
    { name: 'namespace y', peer: () => ({ namespaceSelector: nsNamed('y') }) },
    { name: 'pod b in y or z', peer: () => ({ namespaceSelector: nsNotIn('x'), podSelector: pods('b') }) },
    { name: "the pod network but node 1's pods", peer: (c) => ({ ipBlock: { cidr: large(c, 'x/a'), except: [c.podCidr(1)] } }) },
  ];
  const ports: { name: string; ports?: NpPort[] }[] = [
    { name: 'any port' },
    { name: 'TCP 81', ports: [{ protocol: 'TCP', port: 81 }] },
    { name: 'named serve-80-udp', ports: [{ protocol: 'UDP', port: 'serve-80-udp' }] },
    { name: 'UDP 80-81', ports: [{ protocol: 'UDP', port: 80, endPort: 81 }] },
  ];
  const out: Case[] = [];
  for (const dir of ['ingress', 'egress'] as const) {
    for (const [pi, p] of peers.entries()) {
      for (const [qi, q] of ports.entries()) {
        // Alternate the target between one pod and the whole namespace.
        const target = (pi + qi) % 2 === 0 ? { name: 'pod a', sel: pods('a') } : { name: 'all pods', sel: all };
        out.push({
          name: `${dir} of ${target.name} in x ${dir === 'ingress' ? 'from' : 'to'} ${p.name}, ${q.name}`,
          group: 'generated',
          steps: (c) => {
            const rule = { ...(dir === 'ingress' ? { from: [p.peer(c)] } : { to: [p.peer(c)] }), ...(q.ports && { ports: q.ports }) };
            return [{ apply: [np('x', `gen-${dir}-${pi}-${qi}`, target.sel, { [dir]: [rule] })], probes: [] }];
          },
        });
      }
    }
  }
  return out;
}

export const RELABEL: Case[] = [
  {
    name: 'namespace relabel: the peer namespace label moves from y to z',
    group: 'relabel',
    steps: () => [
      {
        nsLabels: [['y', { team: 'blue' }]],
        apply: [np('x', 'from-blue', pods('a'), { ingress: [{ from: [{ namespaceSelector: labels({ team: 'blue' }) }] }] })],
        probes: [TCP(80, R().expectAllIngress('x/a', false).expectPeer({ ns: 'y' }, { ns: 'x', pod: 'a' }, true))],
      },
      { nsLabels: [['y', { team: 'red' }], ['z', { team: 'blue' }]], probes: [TCP(80, R().expectAllIngress('x/a', false).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, true))] },
    ],
  },
  {
    name: 'pod relabel: the policy target label moves from x/b to x/c',
    group: 'relabel',
    steps: () => [
      { podLabels: [['x/b', { role: 'db' }]], apply: [denyIngress('x', 'isolate-db', labels({ role: 'db' }))], probes: [TCP(80, R().expectAllIngress('x/b', false))] },
      { podLabels: [['x/b', { role: null }], ['x/c', { role: 'db' }]], probes: [TCP(80, R().expectAllIngress('x/c', false))] },
    ],
  },
  {
    name: 'pod relabel: an egress peer appears when a pod gains the label',
    group: 'relabel',
    steps: () => [
      { apply: [np('x', 'to-web', pods('a'), { egress: [{ to: [{ podSelector: labels({ role: 'web' }) }] }] })], probes: [TCP(80, R().expectAllEgress('x/a', false))] },
      { podLabels: [['x/c', { role: 'web' }]], probes: [TCP(80, R().expectAllEgress('x/a', false).expect('x/a', 'x/c', true))] },
    ],
  },
  {
    name: 'namespace relabel: an egress namespace peer appears when a namespace gains the label',
    group: 'relabel',
    steps: () => [
      { apply: [np('x', 'to-green', pods('a'), { egress: [{ to: [{ namespaceSelector: labels({ team: 'green' }) }] }] })], probes: [TCP(81, R().expectAllEgress('x/a', false))] },
      { nsLabels: [['z', { team: 'green' }]], probes: [TCP(81, R().expectAllEgress('x/a', false).expectPeer({ ns: 'x', pod: 'a' }, { ns: 'z' }, true))] },
    ],
  },
  {
    name: 'pod relabel: a pod that stops matching the policy target is open again',
    group: 'relabel',
    steps: () => [
      { apply: [denyIngress('y', 'deny-b', pods('b'))], probes: [TCP(80, R().expectAllIngress('y/b', false))] },
      { podLabels: [['y/b', { pod: 'bb' }]], probes: [TCP(80, R())] },
    ],
  },
];

const xSubject = nsSubject('x');
export const ADMIN: Case[] = [
  {
    name: 'Admin tier Deny wins over a NetworkPolicy that allows',
    group: 'admin',
    steps: () => one([np('x', 'allow-all', all, { ingress: [{}] }), cnp('admin-deny-y', 'Admin', 10, xSubject, { ingress: [{ action: 'Deny', peers: [fromNs('y')] }] })], TCP(80, R().expectPeer({ ns: 'y' }, { ns: 'x' }, false))),
  },
  {
    name: 'Admin tier Accept wins over a NetworkPolicy that denies',
    group: 'admin',
    steps: () =>
      one([denyIngress('x'), cnp('admin-accept-y', 'Admin', 10, xSubject, { ingress: [{ action: 'Accept', peers: [fromNs('y')] }] })], TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'x' }, false).expectPeer({ ns: 'z' }, { ns: 'x' }, false))),
  },
  {
    name: 'Admin tier Pass hands the decision to NetworkPolicy, below a lower-precedence Deny',
    group: 'admin',
    steps: () =>
      one(
        [
          cnp('pass-y', 'Admin', 10, xSubject, { ingress: [{ action: 'Pass', peers: [fromNs('y')] }] }),
          cnp('deny-all', 'Admin', 20, xSubject, { ingress: [{ action: 'Deny', peers: [anyNs] }] }),
          np('x', 'allow-from-y', all, { ingress: [{ from: [{ namespaceSelector: nsNamed('y') }] }] }),
        ],
        TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'x' }, false).expectPeer({ ns: 'z' }, { ns: 'x' }, false)),
      ),
  },
  {
    name: 'Admin tier Pass with no NetworkPolicy falls through to the Baseline tier',
    group: 'admin',
    steps: () =>
      one(
        [
          cnp('pass-y', 'Admin', 10, xSubject, { ingress: [{ action: 'Pass', peers: [fromNs('y')] }] }),
          cnp('deny-all', 'Admin', 20, xSubject, { ingress: [{ action: 'Deny', peers: [anyNs] }] }),
          cnp('baseline-deny-y-81', 'Baseline', 10, xSubject, { ingress: [{ action: 'Deny', peers: [fromNs('y')], protocols: [tcp(81)] }] }),
        ],
        TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'x' }, false).expectPeer({ ns: 'z' }, { ns: 'x' }, false)),
        TCP(81, R().expectPeer({}, { ns: 'x' }, false)),
      ),
  },
  {
    name: 'Admin tier priorities: the lower number wins, and swapping them swaps the outcome',
    group: 'admin',
    steps: () => {
      const accept = (priority: number) => cnp('accept-y', 'Admin', priority, xSubject, { ingress: [{ action: 'Accept', peers: [fromNs('y')] }] });
      const deny = cnp('deny-all', 'Admin', 10, xSubject, { ingress: [{ action: 'Deny', peers: [anyNs] }] });
      return [
        { apply: [accept(5), deny], probes: [TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'x' }, false).expectPeer({ ns: 'z' }, { ns: 'x' }, false))] },
        { apply: [accept(15)], probes: [TCP(80, R().expectPeer({}, { ns: 'x' }, false))] },
      ];
    },
  },
  {
    name: 'Admin tier rule order: the first matching rule of a policy decides',
    group: 'admin',
    steps: () =>
      one(
        [cnp('ordered', 'Admin', 10, xSubject, { ingress: [{ action: 'Accept', peers: [{ pods: { namespaceSelector: nsNamed('y'), podSelector: pods('a') } }] }, { action: 'Deny', peers: [fromNs('y')] }] })],
        TCP(80, R().expectPeer({ ns: 'y' }, { ns: 'x' }, false).expectPeer({ ns: 'y', pod: 'a' }, { ns: 'x' }, true)),
      ),
  },
  {
    name: 'Baseline tier applies to pods no NetworkPolicy selects, and a NetworkPolicy overrides it',
    group: 'admin',
    steps: () => [
      { apply: [cnp('baseline-deny-y', 'Baseline', 10, xSubject, { ingress: [{ action: 'Deny', peers: [fromNs('y')] }] })], probes: [TCP(80, R().expectPeer({ ns: 'y' }, { ns: 'x' }, false))] },
      {
        apply: [np('x', 'allow-from-y', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNamed('y') }] }] })],
        probes: [TCP(80, R().expectPeer({ ns: 'y' }, { ns: 'x' }, false).expectAllIngress('x/a', false).expectPeer({ ns: 'y' }, { ns: 'x', pod: 'a' }, true))],
      },
    ],
  },
  {
    name: 'Admin tier egress Deny from selected pods to a namespace',
    group: 'admin',
    steps: () =>
      one([cnp('xa-not-to-z', 'Admin', 10, { pods: { namespaceSelector: nsNamed('x'), podSelector: pods('a') } }, { egress: [{ action: 'Deny', peers: [fromNs('z')] }] })], TCP(80, R().expectPeer({ ns: 'x', pod: 'a' }, { ns: 'z' }, false))),
  },
  {
    name: 'Admin tier Deny on one port and protocol only',
    group: 'admin',
    steps: () => one([cnp('deny-tcp-80', 'Admin', 10, xSubject, { ingress: [{ action: 'Deny', peers: [anyNs], protocols: [tcp(80)] }] })], TCP(80, R().expectPeer({}, { ns: 'x' }, false)), TCP(81, R()), UDP(80, R())),
  },
  {
    name: 'Admin tier egress Deny to networks, with a port range',
    group: 'admin',
    steps: (c) =>
      one(
        [cnp('not-to-yb', 'Admin', 10, xSubject, { egress: [{ action: 'Deny', peers: [{ networks: [host(c, 'y/b')] }], protocols: [{ tcp: { destinationPort: { range: { start: 80, end: 81 } } } }] }] })],
        TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'y', pod: 'b' }, false)),
        TCP(81, R().expectPeer({ ns: 'x' }, { ns: 'y', pod: 'b' }, false)),
        UDP(80, R()),
      ),
  },
  {
    name: 'Admin tier Deny on UDP only leaves TCP on the same port open',
    group: 'admin',
    steps: () =>
      one(
        [cnp('deny-udp-81', 'Admin', 10, xSubject, { ingress: [{ action: 'Deny', peers: [anyNs], protocols: [{ udp: { destinationPort: { number: 81 } } }] }] })],
        UDP(81, R().expectPeer({}, { ns: 'x' }, false)),
        TCP(81, R()),
      ),
  },
  {
    name: 'Admin tier Accept on a named port opens that port only, over a NetworkPolicy deny',
    group: 'admin',
    steps: () =>
      one(
        [denyIngress('x'), cnp('accept-y-http', 'Admin', 10, xSubject, { ingress: [{ action: 'Accept', peers: [fromNs('y')], protocols: [{ destinationNamedPort: 'serve-80-tcp' }] }] })],
        TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'x' }, false).expectPeer({ ns: 'z' }, { ns: 'x' }, false)),
        TCP(81, R().expectPeer({}, { ns: 'x' }, false)),
      ),
  },
  {
    name: 'Admin tier egress Pass defers to a NetworkPolicy egress allow, below a lower-precedence Deny',
    group: 'admin',
    steps: () =>
      one(
        [
          cnp('pass-to-y', 'Admin', 10, xSubject, { egress: [{ action: 'Pass', peers: [fromNs('y')] }] }),
          cnp('deny-egress', 'Admin', 20, xSubject, { egress: [{ action: 'Deny', peers: [anyNs] }] }),
          np('x', 'to-y-a', all, { egress: [{ to: [{ namespaceSelector: nsNamed('y'), podSelector: pods('a') }] }] }),
        ],
        TCP(80, R().expectPeer({ ns: 'x' }, {}, false).expectPeer({ ns: 'x' }, { ns: 'y', pod: 'a' }, true)),
      ),
  },
  {
    name: 'v1alpha1 AdminNetworkPolicy: a UDP port range and a named port',
    group: 'admin',
    steps: () =>
      one(
        [
          anp('anp-ports', 10, xSubject, {
            ingress: [
              { action: 'Deny', peers: [fromNs('z')], ports: [{ portRange: { protocol: 'UDP', start: 80, end: 81 } }] },
              { action: 'Deny', peers: [fromNs('y')], ports: [{ namedPort: 'serve-81-tcp' }] },
            ],
          }),
        ],
        UDP(80, R().expectPeer({ ns: 'z' }, { ns: 'x' }, false)),
        TCP(81, R().expectPeer({ ns: 'y' }, { ns: 'x' }, false)),
      ),
  },
  {
    name: 'v1alpha1 AdminNetworkPolicy: Allow beats a NetworkPolicy deny, Pass defers to it',
    group: 'admin',
    steps: () =>
      one(
        [denyIngress('x'), anp('anp-x', 10, xSubject, { ingress: [{ action: 'Allow', peers: [fromNs('y')] }, { action: 'Pass', peers: [fromNs('z')] }] })],
        TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'x' }, false).expectPeer({ ns: 'z' }, { ns: 'x' }, false)),
      ),
  },
  {
    name: 'v1alpha1 BaselineAdminNetworkPolicy: Deny applies until a NetworkPolicy selects the pods',
    group: 'admin',
    steps: () => [
      { apply: [banp(xSubject, { ingress: [{ action: 'Deny', peers: [fromNs('y')] }] })], probes: [TCP(80, R().expectPeer({ ns: 'y' }, { ns: 'x' }, false))] },
      { apply: [np('x', 'allow-from-y', all, { ingress: [{ from: [{ namespaceSelector: nsNamed('y') }] }] })], probes: [TCP(80, R().expectPeer({ ns: 'x' }, { ns: 'x' }, false).expectPeer({ ns: 'z' }, { ns: 'x' }, false))] },
    ],
  },
];

export const ALL_CASES: readonly Case[] = [...UPSTREAM_TCP, ...UPSTREAM_UDP, ...CYCLONUS, ...generated(), ...RELABEL, ...ADMIN];
