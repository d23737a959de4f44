// Builders for Services and EndpointSlices in tests and the bench: defaults of a plain ClusterIP
// Service, overridable field by field.
import type { EndpointInfo, EndpointSliceInfo, ServiceInfo } from '../common/types.js';
import { serviceInfo } from '../test/support/objects.js';
import type { NodeContext } from './model.js';

/** A plain ClusterIP Service at 10.96.0.10 with one TCP port, overridable field by field. */
export function service(ns: string, name: string, o: Partial<ServiceInfo> = {}): ServiceInfo {
  return serviceInfo(ns, name, { clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }], ...o });
}

export function endpoint(ip: string, o: Partial<EndpointInfo> = {}): EndpointInfo {
  return { addresses: [ip], ready: true, serving: true, terminating: false, nodeName: 'node-a', ...o };
}

export function slice(ns: string, svcName: string, endpoints: EndpointInfo[], o: Partial<EndpointSliceInfo> = {}): EndpointSliceInfo {
  return {
    namespace: ns,
    name: `${svcName}-abc`,
    serviceName: svcName,
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints,
    labels: {},
    ...o,
  };
}

export const nodeCtx: NodeContext = {
  nodeName: 'node-a',
  zone: 'zone-a',
  clusterCIDRs: ['10.244.0.0/16'],
  serviceCIDRs: ['10.96.0.0/12'],
  nodePortAddresses: [],
  masqueradeAll: false,
};
