// The stripped-down, read-only shapes every component sees. Watched API objects are converted
// into these at the informer boundary (common/watch/convert.ts) and the originals are dropped:
// a field is added here only when a component needs it, which keeps the cache small at scale.

export type IPFamily = 'IPv4' | 'IPv6';
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface NodeAddress {
  readonly type: string; // InternalIP, ExternalIP, Hostname
  readonly address: string;
}

export interface NodeInfo {
  readonly name: string;
  readonly uid: string;
  readonly podCIDRs: readonly string[];
  readonly addresses: readonly NodeAddress[];
  readonly labels: Readonly<Record<string, string>>;
  /** Only annotations under skiff.io/ and flannel.alpha.coreos.com/ are kept. */
  readonly annotations: Readonly<Record<string, string>>;
  /** topology.kubernetes.io/zone, when labelled. */
  readonly zone?: string;
  readonly ready: boolean;
}

export interface ServicePort {
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly targetPort: number | string;
  readonly nodePort?: number;
  readonly appProtocol?: string;
}

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';

export interface ServiceInfo {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly type: ServiceType;
  /** spec.clusterIPs without the literal "None"; empty for headless and ExternalName. */
  readonly clusterIPs: readonly string[];
  readonly headless: boolean;
  readonly ipFamilies: readonly IPFamily[];
  readonly ports: readonly ServicePort[];
  readonly selector?: Readonly<Record<string, string>>;
  readonly externalIPs: readonly string[];
  /** status.loadBalancer.ingress[].ip */
  readonly loadBalancerIPs: readonly string[];
  readonly loadBalancerSourceRanges: readonly string[];
  readonly externalName?: string;
  readonly externalTrafficPolicy: 'Cluster' | 'Local';
  readonly internalTrafficPolicy: 'Cluster' | 'Local';
  readonly healthCheckNodePort?: number;
  readonly sessionAffinity: 'None' | 'ClientIP';
  readonly sessionAffinityTimeoutSeconds: number;
  readonly publishNotReadyAddresses: boolean;
  readonly trafficDistribution?: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface EndpointInfo {
  readonly addresses: readonly string[];
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly hostname?: string;
  readonly nodeName?: string;
  readonly zone?: string;
  readonly hintsForZones?: readonly string[];
}

/** A slice's endpoints: a plain array, or the watch cache's packed form, built one by one as iterated. */
export interface EndpointList extends Iterable<EndpointInfo> {
  readonly length: number;
}

export interface EndpointPort {
  readonly name: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly appProtocol?: string;
}

export interface EndpointSliceInfo {
  readonly namespace: string;
  readonly name: string;
  /** From the kubernetes.io/service-name label; a slice without it belongs to no Service. */
  readonly serviceName: string;
  readonly addressType: IPFamily | 'FQDN';
  readonly ports: readonly EndpointPort[];
  /** Iterated, not indexed: the watch cache holds them packed (common/watch/packed-endpoints.ts). */
  readonly endpoints: EndpointList;
  /** endpoints.kubernetes.io/last-change-trigger-time in epoch ms, for network programming latency. */
  readonly triggerTimeMs?: number;
  readonly labels: Readonly<Record<string, string>>;
}

export interface PodInfo {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly nodeName: string;
  readonly hostNetwork: boolean;
  readonly podIPs: readonly string[];
  readonly phase: string;
  readonly ready: boolean;
  readonly deleting: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly hostname?: string;
  readonly subdomain?: string;
}

/** A named container port, what NetworkPolicy's named ports resolve against (per target pod). */
export interface NamedPort {
  readonly name: string;
  readonly port: number;
  readonly protocol: Protocol;
}

/**
 * A pod anywhere in the cluster, as NetworkPolicy needs it: peers are selected by namespace and
 * labels and matched by IP, named ports resolve per pod. Watched cluster-wide (kind `policypods`)
 * only while policy is enabled; a pod that finished (Succeeded, Failed) has no podIPs, since its
 * addresses may already belong to another pod.
 */
export interface PolicyPodInfo {
  readonly namespace: string;
  readonly name: string;
  readonly nodeName: string;
  readonly hostNetwork: boolean;
  readonly podIPs: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  /** Container ports that have a name (containers and sidecar init containers); others are never referenced. */
  readonly namedPorts: readonly NamedPort[];
}

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: SelectorOperator;
  readonly values: readonly string[];
}

/** metav1.LabelSelector; an empty selector (no labels, no expressions) selects everything. */
export interface LabelSelector {
  readonly matchLabels: Readonly<Record<string, string>>;
  readonly matchExpressions: readonly LabelSelectorRequirement[];
}

export interface IPBlock {
  readonly cidr: string;
  readonly except: readonly string[];
}

/**
 * One `from`/`to` entry. Absent selectors stay absent: {namespaceSelector} alone means every pod of
 * the selected namespaces, {podSelector} alone the selected pods of the policy's own namespace.
 */
export interface NetworkPolicyPeer {
  readonly podSelector?: LabelSelector;
  readonly namespaceSelector?: LabelSelector;
  readonly ipBlock?: IPBlock;
}

export interface NetworkPolicyPort {
  /** Defaults to TCP, as the API does. */
  readonly protocol: Protocol;
  /** A number, a named container port, or absent for every port of the protocol. */
  readonly port?: number | string;
  /** Last port of a range starting at `port` (a number then). */
  readonly endPort?: number;
}

/** An ingress or egress rule. Empty (or absent) `peers` matches every peer, empty `ports` every port. */
export interface NetworkPolicyRule {
  readonly peers: readonly NetworkPolicyPeer[];
  readonly ports: readonly NetworkPolicyPort[];
}

export type PolicyType = 'Ingress' | 'Egress';

export interface NetworkPolicyInfo {
  readonly namespace: string;
  readonly name: string;
  readonly podSelector: LabelSelector;
  /** Always filled: an omitted list is defaulted as the API server does (Ingress, plus Egress when egress rules exist). */
  readonly policyTypes: readonly PolicyType[];
  readonly ingress: readonly NetworkPolicyRule[];
  readonly egress: readonly NetworkPolicyRule[];
}

// Cluster-wide admin policy (sig-network's network-policy-api): ClusterNetworkPolicy v1alpha2 and
// the older AdminNetworkPolicy / BaselineAdminNetworkPolicy v1alpha1 in one tiered shape. The
// parsing and validation belong to the policy component (policy/admin.ts), which registers its
// converters with the watch (registerConverter) from the agent's composition root.
export type Tier = 'Admin' | 'Baseline';
export type AdminAction = 'Accept' | 'Deny' | 'Pass';

export interface NamespacedPods {
  readonly namespaceSelector: LabelSelector;
  readonly podSelector: LabelSelector;
}

/** Exactly one field set. */
export interface AdminPeer {
  readonly namespaces?: LabelSelector;
  readonly pods?: NamespacedPods;
  readonly networks?: readonly string[];
  readonly nodes?: LabelSelector;
  /** Egress only, Accept only (not in v1alpha1's baseline policy): addresses come from the node's DNS answers at run time. */
  readonly domainNames?: readonly string[];
}

/** A port, a range (endPort), every port of a protocol (no port), or a named port (protocol undefined: any). */
export interface AdminPort {
  readonly protocol?: Protocol;
  readonly port?: number | string;
  readonly endPort?: number;
}

export interface AdminRule {
  readonly name: string;
  readonly action: AdminAction;
  readonly peers: readonly AdminPeer[];
  /** [] = every port and protocol. */
  readonly ports: readonly AdminPort[];
}

export interface ClusterPolicy {
  /** "cnp:<name>", "anp:<name>" or "banp:<name>": the kinds share no name space. */
  readonly key: string;
  readonly tier: Tier;
  readonly priority: number;
  readonly subject: { readonly namespaces?: LabelSelector; readonly pods?: NamespacedPods };
  readonly ingress: readonly AdminRule[];
  readonly egress: readonly AdminRule[];
}

/** A network-policy-api object in the engine's model, with its object name. */
export type AdminPolicyInfo = ClusterPolicy & { readonly name: string };

export interface NamespaceInfo {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface KindTypes {
  nodes: NodeInfo;
  services: ServiceInfo;
  endpointslices: EndpointSliceInfo;
  namespaces: NamespaceInfo;
  pods: PodInfo;
  networkpolicies: NetworkPolicyInfo;
  /** Every pod in the cluster, trimmed to PolicyPodInfo; `pods` stays this node's own. */
  policypods: PolicyPodInfo;
  /** network-policy-api (CRDs, often not installed: a kind the API does not serve is empty). */
  clusternetworkpolicies: AdminPolicyInfo;
  adminnetworkpolicies: AdminPolicyInfo;
  baselineadminnetworkpolicies: AdminPolicyInfo;
}

export type Kind = keyof KindTypes;
/** The kinds every agent watches (and `synced()` means by default). */
export const KINDS: readonly Kind[] = ['nodes', 'services', 'endpointslices', 'namespaces', 'pods'];
/** Cluster-wide admin policy kinds: CRDs that may not exist; their reflectors treat "not served" as empty. */
const ADMIN_POLICY_KINDS_: readonly Kind[] = ['clusternetworkpolicies', 'adminnetworkpolicies', 'baselineadminnetworkpolicies'];
export const ADMIN_POLICY_KINDS = ADMIN_POLICY_KINDS_;
/** Watched only while policy is enabled: the cluster-wide pod stream is the largest in a big cluster. */
export const POLICY_KINDS: readonly Kind[] = ['networkpolicies', 'policypods', ...ADMIN_POLICY_KINDS_];
export const ALL_KINDS: readonly Kind[] = [...KINDS, ...POLICY_KINDS];

/** Cache key: "namespace/name" for namespaced objects, "name" for cluster-scoped ones. */
export function objectKey(o: { readonly namespace?: string; readonly name: string }): string {
  return o.namespace ? `${o.namespace}/${o.name}` : o.name;
}
