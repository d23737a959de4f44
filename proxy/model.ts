// The typed desired state both backends render: one ServicePort per (Service, port, IP family),
// already validated and with endpoints chosen, so renderers only translate and never decide.

export type Family = 4 | 6;
export type L4 = 'tcp' | 'udp' | 'sctp';

export interface Endpoint {
  readonly ip: string;
  readonly port: number;
  /** On this node (slice nodeName equals ours). */
  readonly local: boolean;
  /** Unset when the slice did not say. */
  readonly nodeName?: string;
}

export interface ServicePort {
  /** "namespace/name/protocol/portName" (the port number when unnamed); unique per family. */
  readonly id: string;
  /** "namespace/name" of the owning Service. */
  readonly serviceKey: string;
  readonly family: Family;
  readonly protocol: L4;
  readonly port: number;
  readonly clusterIPs: readonly string[];
  readonly nodePort?: number;
  readonly externalIPs: readonly string[];
  readonly loadBalancerIPs: readonly string[];
  readonly sourceRanges: readonly string[];
  readonly externalLocal: boolean;
  readonly internalLocal: boolean;
  /** Set when sessionAffinity is ClientIP. */
  readonly affinitySeconds?: number;
  readonly healthCheckNodePort?: number;
  /** Some usable endpoint exists anywhere in the cluster: decides reject versus drop. */
  readonly hasEndpoints: boolean;
  /** Where traffic to the cluster IP goes (internal policy and topology applied). */
  readonly clusterEndpoints: readonly Endpoint[];
  /** Where external traffic goes under externalTrafficPolicy Local. */
  readonly localEndpoints: readonly Endpoint[];
}

/** Node-wide inputs that every rule depends on; a change to them forces a full sync. */
export interface NodeContext {
  readonly nodeName: string;
  readonly zone?: string;
  readonly clusterCIDRs: readonly string[];
  readonly serviceCIDRs: readonly string[];
  readonly nodePortAddresses: readonly string[];
  readonly masqueradeAll: boolean;
}

/** Things the desired-state function refused, for the log; never fatal for other Services. */
export interface Problem {
  readonly object: string;
  readonly reason: string;
}

export function hasExternal(sp: ServicePort): boolean {
  return sp.nodePort !== undefined || sp.externalIPs.length > 0 || sp.loadBalancerIPs.length > 0;
}

/** Endpoints programmed for a port, each once: what conntrack cleanup and metrics look at. */
export function programmedEndpoints(sp: ServicePort): readonly Endpoint[] {
  // desired.ts lists each endpoint once per list; only two lists can overlap.
  if (sp.localEndpoints.length === 0) return sp.clusterEndpoints;
  if (sp.clusterEndpoints.length === 0) return sp.localEndpoints;
  const seen = new Map<string, Endpoint>();
  for (const e of [...sp.clusterEndpoints, ...sp.localEndpoints]) seen.set(`${e.ip}|${e.port}`, e);
  return [...seen.values()];
}
