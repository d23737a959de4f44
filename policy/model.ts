// The policy engine's inputs: small read-only types for NetworkPolicy (networking.k8s.io/v1), the
// pods and the namespaces: the types the agent's watch keeps (PolicyPodInfo, NetworkPolicyInfo in
// common/types.ts), so converted watch objects feed desired.ts as they are. Empty and missing follow the API reference, made explicit here:
//   - rule.peers [] means every source/destination (`from`/`to` missing or empty);
//   - rule.ports [] means every port (`ports` missing or empty);
//   - a peer's podSelector / namespaceSelector undefined means "not given", {} means "all";
//   - policyTypes is always filled (API defaulting applied by the converter);
//   - ingress [] with 'Ingress' in policyTypes isolates and allows nothing (default deny).

// The watch's converted shapes are the engine's inputs: one definition, in common/types.ts.
import type {
  IPBlock,
  LabelSelector,
  LabelSelectorRequirement,
  NamedPort,
  NamespaceInfo,
  NetworkPolicyInfo,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  NetworkPolicyRule,
  PolicyPodInfo,
  PolicyType,
  Protocol,
  SelectorOperator,
} from '../common/types.js';

export type { IPBlock, LabelSelector, NamedPort, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicyRule, PolicyType, Protocol };
export type Operator = SelectorOperator;
export type LabelRequirement = LabelSelectorRequirement;
export type NetworkPolicy = NetworkPolicyInfo;
export type PolicyPod = PolicyPodInfo;
export type PolicyNamespace = NamespaceInfo;

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
