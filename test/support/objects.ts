// The one builder for a Service as the watch cache holds it: every field at its API default, so
// component fixtures only state what their tests care about.
import type { ServiceInfo } from '../../common/types.js';

export function serviceInfo(ns: string, name: string, o: Partial<ServiceInfo> = {}): ServiceInfo {
  return {
    namespace: ns,
    name,
    uid: `uid-${ns}-${name}`,
    type: 'ClusterIP',
    clusterIPs: [],
    headless: false,
    ipFamilies: ['IPv4'],
    ports: [],
    externalIPs: [],
    loadBalancerIPs: [],
    loadBalancerSourceRanges: [],
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    publishNotReadyAddresses: false,
    labels: {},
    ...o,
  };
}
