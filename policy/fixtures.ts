// Test fixtures: upstream netpol's cluster (namespaces x, y, z; pods a, b, c in each, serving
// 80 and 81 over TCP and UDP on named ports serve-<port>-<proto>), spread over two nodes, and
// policies written as API objects through the converter.
import { toClusterNetworkPolicy, type ClusterPolicy } from './admin.js';
import { toNetworkPolicy } from './convert.js';
import type { PolicyInputs } from './desired.js';
import { explain } from './explain.js';
import type { NetworkPolicy, PolicyNamespace, PolicyPod, Protocol } from './model.js';

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const POD_NAMES = ['a', 'b', 'c'] as const;

/** x/a -> 10.244.1.11, y/b -> 10.244.2.22 ...: node n1 holds a and c, n2 holds b. */
export function podIP(ns: string, pod: string): string {
  const n = NAMESPACES.indexOf(ns as 'x') + 1;
  const p = POD_NAMES.indexOf(pod as 'a') + 1;
  return `10.244.${p === 2 ? 2 : 1}.${n}${p}`;
}

export function netpolPod(ns: string, name: string, o: Partial<PolicyPod> = {}): PolicyPod {
  return {
    namespace: ns,
    name,
    nodeName: name === 'b' ? 'n2' : 'n1',
    hostNetwork: false,
    podIPs: [podIP(ns, name)],
    labels: { pod: name },
    namedPorts: [80, 81].flatMap((port) =>
      (['TCP', 'UDP'] as const).map((protocol) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, port, protocol })),
    ),
    ...o,
  };
}

export function cluster(policies: NetworkPolicy[] = [], o: { pods?: PolicyPod[]; namespaces?: PolicyNamespace[]; admin?: ClusterPolicy[] } = {}): PolicyInputs {
  return {
    policies,
    admin: o.admin ?? [],
    pods: o.pods ?? NAMESPACES.flatMap((ns) => POD_NAMES.map((p) => netpolPod(ns, p))),
    namespaces: o.namespaces ?? NAMESPACES.map((ns) => ({ name: ns, labels: { ns } })),
  };
}

/** A NetworkPolicy from its spec (API JSON), through the converter; throws when refused. */
export function policy(name: string, spec: unknown, namespace = 'x'): NetworkPolicy {
  const r = toNetworkPolicy({ metadata: { namespace, name }, spec });
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}

/**
 * The reachability matrix as text, one line per client, a column per server, in the order
 * x/a x/b x/c y/a ... z/c: "." reaches, "X" does not. Built from explain(), i.e. from the same
 * desired state the rules are rendered from.
 */
export function matrix(inputs: PolicyInputs, protocol: Protocol = 'TCP', port = 80): string {
  const all = inputs.pods.map((p) => `${p.namespace}/${p.name}`);
  return all
    .map((from) => `${from} ${all.map((to) => (explain(inputs, { pod: from }, { pod: to }, protocol, port).allowed ? '.' : 'X')).join('')}`)
    .join('\n');
}

/** The matrix where everything reaches everything, with the given cells flipped. */
export function expected(deny: (from: string, to: string) => boolean): string {
  const all = NAMESPACES.flatMap((ns) => POD_NAMES.map((p) => `${ns}/${p}`));
  return all.map((from) => `${from} ${all.map((to) => (from !== to && deny(from, to) ? 'X' : '.')).join('')}`).join('\n');
}

/** A ClusterNetworkPolicy (v1alpha2) from its spec, through the converter; throws when refused. */
export function cnp(name: string, tier: 'Admin' | 'Baseline', priority: number, spec: Record<string, unknown>): ClusterPolicy {
  const r = toClusterNetworkPolicy({ metadata: { name }, spec: { tier, priority, ...spec } });
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}
