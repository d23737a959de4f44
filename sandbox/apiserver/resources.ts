// The resources the fake API server knows, with what discovery and the path router need.
// Plural resource names double as the `Kind` names of common/types.ts, so tests use one vocabulary.

export type ResourceName = 'nodes' | 'services' | 'pods' | 'namespaces' | 'endpointslices' | 'networkpolicies';

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
  networkpolicies: { name: 'networkpolicies', kind: 'NetworkPolicy', group: 'networking.k8s.io', version: 'v1', namespaced: true, hasStatus: false, shortNames: ['netpol'], fields: {} },
};

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
