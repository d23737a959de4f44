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
  readonly targetRef?: { readonly kind: string; readonly namespace?: string; readonly name: string };
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
  readonly endpoints: readonly EndpointInfo[];
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
}

export type Kind = keyof KindTypes;
export const KINDS: readonly Kind[] = ['nodes', 'services', 'endpointslices', 'namespaces', 'pods'];

/** Cache key: "namespace/name" for namespaced objects, "name" for cluster-scoped ones. */
export function objectKey(o: { readonly namespace?: string; readonly name: string }): string {
  return o.namespace ? `${o.namespace}/${o.name}` : o.name;
}
