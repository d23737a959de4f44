// Parses what `skiff sandbox apply -f` reads: multi-document YAML or JSON, `kind: List` flattened,
// each object mapped to the fake API server's resource name.
import { parseAllDocuments } from 'yaml';
import { UsageError } from '../common/errors.js';
import type { KubeObject, ResourceName } from './apiserver/resources.js';

const KINDS: Record<string, { resource: ResourceName; apiVersions: readonly string[] }> = {
  Namespace: { resource: 'namespaces', apiVersions: ['v1'] },
  Node: { resource: 'nodes', apiVersions: ['v1'] },
  Service: { resource: 'services', apiVersions: ['v1'] },
  Pod: { resource: 'pods', apiVersions: ['v1'] },
  EndpointSlice: { resource: 'endpointslices', apiVersions: ['discovery.k8s.io/v1'] },
  Deployment: { resource: 'deployments', apiVersions: ['apps/v1'] },
  ReplicaSet: { resource: 'replicasets', apiVersions: ['apps/v1'] },
  DaemonSet: { resource: 'daemonsets', apiVersions: ['apps/v1'] },
  NetworkPolicy: { resource: 'networkpolicies', apiVersions: ['networking.k8s.io/v1'] },
  ClusterNetworkPolicy: { resource: 'clusternetworkpolicies', apiVersions: ['policy.networking.k8s.io/v1alpha2'] },
  AdminNetworkPolicy: { resource: 'adminnetworkpolicies', apiVersions: ['policy.networking.k8s.io/v1alpha1'] },
  BaselineAdminNetworkPolicy: { resource: 'baselineadminnetworkpolicies', apiVersions: ['policy.networking.k8s.io/v1alpha1'] },
};

/** `get`/`delete` accept the kind, plural, singular or short name, as kubectl does. */
const ALIASES: Record<string, ResourceName> = {
  namespace: 'namespaces', namespaces: 'namespaces', ns: 'namespaces',
  node: 'nodes', nodes: 'nodes', no: 'nodes',
  service: 'services', services: 'services', svc: 'services',
  pod: 'pods', pods: 'pods', po: 'pods',
  endpointslice: 'endpointslices', endpointslices: 'endpointslices', eps: 'endpointslices',
  deployment: 'deployments', deployments: 'deployments', deploy: 'deployments',
  replicaset: 'replicasets', replicasets: 'replicasets', rs: 'replicasets',
  daemonset: 'daemonsets', daemonsets: 'daemonsets', ds: 'daemonsets',
  event: 'events', events: 'events', ev: 'events',
  networkpolicy: 'networkpolicies', networkpolicies: 'networkpolicies', netpol: 'networkpolicies',
  clusternetworkpolicy: 'clusternetworkpolicies', clusternetworkpolicies: 'clusternetworkpolicies', cnp: 'clusternetworkpolicies',
  adminnetworkpolicy: 'adminnetworkpolicies', adminnetworkpolicies: 'adminnetworkpolicies', anp: 'adminnetworkpolicies',
  baselineadminnetworkpolicy: 'baselineadminnetworkpolicies', baselineadminnetworkpolicies: 'baselineadminnetworkpolicies', banp: 'baselineadminnetworkpolicies',
};

export function resourceFor(kindOrAlias: string): ResourceName {
  const r = ALIASES[kindOrAlias.toLowerCase()] ?? ALIASES[kindOrAlias.toLowerCase().replace(/\.(discovery\.k8s\.io|apps|networking\.k8s\.io|policy\.networking\.k8s\.io)$/, '')];
  if (!r) throw new UsageError(`unknown resource type "${kindOrAlias}" (known: pods, services, endpointslices, nodes, namespaces, deployments, replicasets, daemonsets, events, networkpolicies, clusternetworkpolicies, adminnetworkpolicies, baselineadminnetworkpolicies)`);
  return r;
}

export interface ManifestObject {
  readonly resource: ResourceName;
  readonly object: KubeObject;
}

export function parseManifests(text: string, source = 'input'): ManifestObject[] {
  const docs = parseAllDocuments(text);
  const out: ManifestObject[] = [];
  const add = (o: unknown, where: string): void => {
    if (o === null || o === undefined) return;
    if (typeof o !== 'object' || Array.isArray(o)) throw new UsageError(`${where}: expected an object`);
    const obj = o as KubeObject;
    if (obj.kind === 'List' || (typeof obj.kind === 'string' && obj.kind.endsWith('List') && Array.isArray(obj.items))) {
      (obj.items as unknown[]).forEach((item, i) => add(item, `${where} item ${i}`));
      return;
    }
    const k = typeof obj.kind === 'string' ? KINDS[obj.kind] : undefined;
    if (!k) throw new UsageError(`${where}: unsupported kind "${String(obj.kind)}" (${Object.keys(KINDS).join(', ')})`);
    if (obj.apiVersion !== undefined && !k.apiVersions.includes(String(obj.apiVersion))) {
      throw new UsageError(`${where}: ${obj.kind} must have apiVersion ${k.apiVersions.join(' or ')}, not "${String(obj.apiVersion)}"`);
    }
    if (!obj.metadata || typeof obj.metadata !== 'object' || (!obj.metadata.name && !obj.metadata.generateName)) {
      throw new UsageError(`${where}: ${obj.kind} has no metadata.name`);
    }
    out.push({ resource: k.resource, object: obj });
  };
  docs.forEach((d, i) => {
    if (d.errors.length) throw new UsageError(`${source}: document ${i + 1}: ${d.errors[0]!.message.split('\n')[0]}`);
    add(d.toJS(), `${source}: document ${i + 1}`);
  });
  return out;
}
