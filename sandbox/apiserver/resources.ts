// The resources the fake API server knows, with what discovery and the path router need.
// Plural resource names double as the `Kind` names of common/types.ts, so tests use one vocabulary.

export type ResourceName =
  | 'nodes'
  | 'services'
  | 'pods'
  | 'namespaces'
  | 'endpointslices'
  | 'deployments'
  | 'replicasets'
  | 'daemonsets'
  | 'events'
  | 'serviceaccounts'
  | 'configmaps'
  | 'secrets'
  | 'networkpolicies'
  | 'clusternetworkpolicies'
  | 'adminnetworkpolicies'
  | 'baselineadminnetworkpolicies';

export interface ResourceDef {
  readonly name: ResourceName;
  readonly kind: string;
  readonly group: string; // '' for core
  readonly version: string;
  readonly namespaced: boolean;
  readonly hasStatus: boolean;
  readonly shortNames: readonly string[];
  /** Extra field selectors beyond metadata.name / metadata.namespace. */
  readonly fields: Readonly<Record<string, (obj: KubeObject) => string>>;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

/** A stored API object as plain JSON. Stored objects are never mutated; every write replaces them. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [k: string]: unknown;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const spec = (o: KubeObject): Record<string, unknown> => (o.spec && typeof o.spec === 'object' ? (o.spec as Record<string, unknown>) : {});
const status = (o: KubeObject): Record<string, unknown> => (o.status && typeof o.status === 'object' ? (o.status as Record<string, unknown>) : {});

export const RESOURCES: Readonly<Record<ResourceName, ResourceDef>> = {
  nodes: { name: 'nodes', kind: 'Node', group: '', version: 'v1', namespaced: false, hasStatus: true, shortNames: ['no'], fields: { 'spec.unschedulable': (o) => String(spec(o).unschedulable === true) } },
  namespaces: { name: 'namespaces', kind: 'Namespace', group: '', version: 'v1', namespaced: false, hasStatus: true, shortNames: ['ns'], fields: { 'status.phase': (o) => str(status(o).phase) } },
  services: { name: 'services', kind: 'Service', group: '', version: 'v1', namespaced: true, hasStatus: true, shortNames: ['svc'], fields: {} },
  pods: {
    name: 'pods',
    kind: 'Pod',
    group: '',
    version: 'v1',
    namespaced: true,
    hasStatus: true,
    shortNames: ['po'],
    fields: { 'spec.nodeName': (o) => str(spec(o).nodeName), 'status.phase': (o) => str(status(o).phase), 'status.podIP': (o) => str(status(o).podIP) },
  },
  endpointslices: { name: 'endpointslices', kind: 'EndpointSlice', group: 'discovery.k8s.io', version: 'v1', namespaced: true, hasStatus: false, shortNames: [], fields: {} },
  deployments: { name: 'deployments', kind: 'Deployment', group: 'apps', version: 'v1', namespaced: true, hasStatus: true, shortNames: ['deploy'], fields: {} },
  replicasets: { name: 'replicasets', kind: 'ReplicaSet', group: 'apps', version: 'v1', namespaced: true, hasStatus: true, shortNames: ['rs'], fields: {} },
  daemonsets: { name: 'daemonsets', kind: 'DaemonSet', group: 'apps', version: 'v1', namespaced: true, hasStatus: true, shortNames: ['ds'], fields: {} },
  events: { name: 'events', kind: 'Event', group: '', version: 'v1', namespaced: true, hasStatus: false, shortNames: ['ev'], fields: eventFields() },
  serviceaccounts: { name: 'serviceaccounts', kind: 'ServiceAccount', group: '', version: 'v1', namespaced: true, hasStatus: false, shortNames: ['sa'], fields: {} },
  configmaps: { name: 'configmaps', kind: 'ConfigMap', group: '', version: 'v1', namespaced: true, hasStatus: false, shortNames: ['cm'], fields: {} },
  secrets: { name: 'secrets', kind: 'Secret', group: '', version: 'v1', namespaced: true, hasStatus: false, shortNames: [], fields: { type: (o) => str(o.type) } },
  networkpolicies: { name: 'networkpolicies', kind: 'NetworkPolicy', group: 'networking.k8s.io', version: 'v1', namespaced: true, hasStatus: false, shortNames: ['netpol'], fields: {} },
  // network-policy-api CRDs: v1alpha2 first, so discovery prefers it for the group.
  clusternetworkpolicies: { name: 'clusternetworkpolicies', kind: 'ClusterNetworkPolicy', group: 'policy.networking.k8s.io', version: 'v1alpha2', namespaced: false, hasStatus: true, shortNames: ['cnp'], fields: {} },
  adminnetworkpolicies: { name: 'adminnetworkpolicies', kind: 'AdminNetworkPolicy', group: 'policy.networking.k8s.io', version: 'v1alpha1', namespaced: false, hasStatus: true, shortNames: ['anp'], fields: {} },
  baselineadminnetworkpolicies: { name: 'baselineadminnetworkpolicies', kind: 'BaselineAdminNetworkPolicy', group: 'policy.networking.k8s.io', version: 'v1alpha1', namespaced: false, hasStatus: true, shortNames: ['banp'], fields: {} },
};

/** The field selectors `kubectl describe` and `kubectl events` send for an object's events. */
function eventFields(): Record<string, (obj: KubeObject) => string> {
  const involved = (o: KubeObject): Record<string, unknown> => (o.involvedObject && typeof o.involvedObject === 'object' ? (o.involvedObject as Record<string, unknown>) : {});
  const out: Record<string, (obj: KubeObject) => string> = { reason: (o) => str(o.reason), type: (o) => str(o.type), 'source': (o) => str((o.source as { component?: string } | undefined)?.component) };
  for (const f of ['kind', 'namespace', 'name', 'uid', 'apiVersion', 'resourceVersion', 'fieldPath']) out[`involvedObject.${f}`] = (o) => str(involved(o)[f]);
  return out;
}

export const RESOURCE_NAMES = Object.keys(RESOURCES) as ResourceName[];

export function apiVersionOf(def: ResourceDef): string {
  return def.group ? `${def.group}/${def.version}` : def.version;
}

export function isResourceName(s: string): s is ResourceName {
  return Object.hasOwn(RESOURCES, s);
}

/** "namespace/name" for namespaced objects, "name" otherwise: the same keys the watch cache uses. */
export function storeKey(def: ResourceDef, namespace: string | undefined, name: string): string {
  return def.namespaced ? `${namespace ?? ''}/${name}` : name;
}
