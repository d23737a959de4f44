// Builders for the suite's policy objects, so a case reads like the policy it applies.
import type { KubeObject } from '../../sandbox/apiserver/resources.js';
import { NS_NAME_LABEL, type Ns, type Port, type Protocol } from './model.js';

export type Selector = { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
export type NpPort = { protocol?: Protocol | 'SCTP'; port?: number | string; endPort?: number };
export type NpPeer = { podSelector?: Selector; namespaceSelector?: Selector; ipBlock?: { cidr: string; except?: string[] } };
export interface IngressRule {
  from?: NpPeer[];
  ports?: NpPort[];
}
export interface EgressRule {
  to?: NpPeer[];
  ports?: NpPort[];
}

export const all: Selector = {};
export const labels = (m: Record<string, string>): Selector => ({ matchLabels: m });
export const pods = (pod: string): Selector => labels({ pod });
export const nsNamed = (ns: Ns): Selector => labels({ [NS_NAME_LABEL]: ns });
export const podIn = (...values: string[]): Selector => ({ matchExpressions: [{ key: 'pod', operator: 'In', values }] });
export const nsNotIn = (...values: Ns[]): Selector => ({ matchExpressions: [{ key: NS_NAME_LABEL, operator: 'NotIn', values }] });
export const nsIn = (...values: Ns[]): Selector => ({ matchExpressions: [{ key: NS_NAME_LABEL, operator: 'In', values }] });

/**
 * A NetworkPolicy. `ingress`/`egress` given (even empty) put the type in policyTypes, as upstream's
 * SetSpecIngressRules/SetSpecEgressRules do; `types` overrides.
 */
export function np(ns: Ns, name: string, podSelector: Selector, r: { ingress?: IngressRule[]; egress?: EgressRule[]; types?: ('Ingress' | 'Egress')[] }): KubeObject {
  const policyTypes = r.types ?? [...(r.ingress ? ['Ingress' as const] : []), ...(r.egress ? ['Egress' as const] : [])];
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: ns },
    spec: { podSelector, policyTypes, ...(r.ingress && { ingress: r.ingress }), ...(r.egress && { egress: r.egress }) },
  };
}

export const denyIngress = (ns: Ns, name = 'deny-ingress', sel: Selector = all): KubeObject => np(ns, name, sel, { ingress: [] });
export const denyEgress = (ns: Ns, name = 'deny-egress', sel: Selector = all): KubeObject => np(ns, name, sel, { egress: [] });

// ---- policy.networking.k8s.io ----

export type CnpAction = 'Accept' | 'Deny' | 'Pass';
export type AdminPeer = { namespaces: Selector } | { pods: { namespaceSelector: Selector; podSelector: Selector } } | { networks: string[] };
export type CnpProtocol = { tcp: { destinationPort: { number: number } | { range: { start: number; end: number } } } } | { udp: { destinationPort: { number: number } } } | { destinationNamedPort: string };
export interface CnpRule {
  action: CnpAction;
  peers: AdminPeer[];
  protocols?: CnpProtocol[];
  name?: string;
}
export type Subject = { namespaces: Selector } | { pods: { namespaceSelector: Selector; podSelector: Selector } };

/** A v1alpha2 ClusterNetworkPolicy. */
export function cnp(name: string, tier: 'Admin' | 'Baseline', priority: number, subject: Subject, r: { ingress?: CnpRule[]; egress?: CnpRule[] }): KubeObject {
  const rule = (dir: 'from' | 'to') => (x: CnpRule, i: number) => ({ name: x.name ?? `r${i}`, action: x.action, [dir]: x.peers, ...(x.protocols && { protocols: x.protocols }) });
  return {
    apiVersion: 'policy.networking.k8s.io/v1alpha2',
    kind: 'ClusterNetworkPolicy',
    metadata: { name },
    spec: { tier, priority, subject, ...(r.ingress && { ingress: r.ingress.map(rule('from')) }), ...(r.egress && { egress: r.egress.map(rule('to')) }) },
  };
}

export const tcp = (port: Port): CnpProtocol => ({ tcp: { destinationPort: { number: port } } });

type AnpAction = 'Allow' | 'Deny' | 'Pass';
interface AnpRule {
  action: AnpAction;
  peers: AdminPeer[];
  ports?: ({ portNumber: { protocol: Protocol; port: number } } | { namedPort: string } | { portRange: { protocol: Protocol; start: number; end: number } })[];
}
const anpRules = (dir: 'from' | 'to', rules: AnpRule[]): unknown[] => rules.map((x, i) => ({ name: `r${i}`, action: x.action, [dir]: x.peers, ...(x.ports && { ports: x.ports }) }));

/** A v1alpha1 AdminNetworkPolicy. */
export function anp(name: string, priority: number, subject: Subject, r: { ingress?: AnpRule[]; egress?: AnpRule[] }): KubeObject {
  return {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name },
    spec: { priority, subject, ...(r.ingress && { ingress: anpRules('from', r.ingress) }), ...(r.egress && { egress: anpRules('to', r.egress) }) },
  };
}

/** The v1alpha1 BaselineAdminNetworkPolicy (a singleton named "default"). */
export function banp(subject: Subject, r: { ingress?: AnpRule[]; egress?: AnpRule[] }): KubeObject {
  return {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: { subject, ...(r.ingress && { ingress: anpRules('from', r.ingress) }), ...(r.egress && { egress: anpRules('to', r.egress) }) },
  };
}

export const nsSubject = (ns: Ns): Subject => ({ namespaces: nsNamed(ns) });
export const fromNs = (ns: Ns): AdminPeer => ({ namespaces: nsNamed(ns) });
export const anyNs: AdminPeer = { namespaces: {} };
