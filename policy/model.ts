// The policy engine's inputs: small read-only types for NetworkPolicy (networking.k8s.io/v1), the
// pods and the namespaces. Their shape matches what the agent's watch keeps (PolicyPodInfo,
// NetworkPolicyInfo in common/types.ts on the agent side), so converted watch objects feed
// desired.ts as they are. Empty and missing follow the API reference, made explicit here:
//   - rule.peers [] means every source/destination (`from`/`to` missing or empty);
//   - rule.ports [] means every port (`ports` missing or empty);
//   - a peer's podSelector / namespaceSelector undefined means "not given", {} means "all";
//   - policyTypes is always filled (API defaulting applied by the converter);
//   - ingress [] with 'Ingress' in policyTypes isolates and allows nothing (default deny).

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type PolicyType = 'Ingress' | 'Egress';
export type Operator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelRequirement {
  readonly key: string;
  readonly operator: Operator;
  readonly values: readonly string[];
}

/** Empty (no labels, no expressions) selects everything. */
export interface LabelSelector {
  readonly matchLabels: Readonly<Record<string, string>>;
  readonly matchExpressions: readonly LabelRequirement[];
}

export interface IPBlock {
  readonly cidr: string;
  readonly except: readonly string[];
}

/** Exactly one of: ipBlock, or at least one of podSelector / namespaceSelector (both: AND). */
export interface NetworkPolicyPeer {
  readonly podSelector?: LabelSelector;
  readonly namespaceSelector?: LabelSelector;
  readonly ipBlock?: IPBlock;
}

/** port undefined: every port of the protocol; a string is a named port; endPort only with a number. */
export interface NetworkPolicyPort {
  readonly protocol: Protocol;
  readonly port?: number | string;
  readonly endPort?: number;
}

export interface NetworkPolicyRule {
  readonly peers: readonly NetworkPolicyPeer[];
  readonly ports: readonly NetworkPolicyPort[];
}

export interface NetworkPolicy {
  readonly namespace: string;
  readonly name: string;
  readonly podSelector: LabelSelector;
  readonly policyTypes: readonly PolicyType[];
  readonly ingress: readonly NetworkPolicyRule[];
  readonly egress: readonly NetworkPolicyRule[];
}

export interface NamedPort {
  readonly name: string;
  readonly port: number;
  readonly protocol: Protocol;
}

export interface PolicyPod {
  readonly namespace: string;
  readonly name: string;
  readonly nodeName: string;
  readonly hostNetwork: boolean;
  /** [] for pods that have none yet or have finished (Succeeded/Failed): their addresses may be reused. */
  readonly podIPs: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly namedPorts: readonly NamedPort[];
}

export interface PolicyNamespace {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

export const EMPTY_SELECTOR: LabelSelector = { matchLabels: {}, matchExpressions: [] };

export function policyKey(p: { readonly namespace: string; readonly name: string }): string {
  return `${p.namespace}/${p.name}`;
}

/** Whether labels satisfy the selector: every matchLabels pair and every expression (AND). */
export function matches(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const k in sel.matchLabels) if (labels[k] !== sel.matchLabels[k]) return false;
  for (const r of sel.matchExpressions) {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    switch (r.operator) {
      case 'In':
        if (!has || !r.values.includes(labels[r.key]!)) return false;
        break;
      case 'NotIn':
        // Like Kubernetes' selector: a missing key satisfies NotIn.
        if (has && r.values.includes(labels[r.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

export function isEmptySelector(sel: LabelSelector): boolean {
  return Object.keys(sel.matchLabels).length === 0 && sel.matchExpressions.length === 0;
}
