// Discovery as kube-apiserver serves it: the legacy documents (/api, /apis, /api/v1,
// /apis/<group>[/<version>]) and the aggregated ones kubectl 1.32 asks for first
// (APIGroupDiscoveryList, apidiscovery.k8s.io v2 and v2beta1), all derived from the resource table.
import { negotiateAs, type MediaType } from './media.js';
import { RESOURCES, RESOURCE_NAMES, type ResourceDef } from './resources.js';

const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
const STATUS_VERBS = ['get', 'patch', 'update'];

/**
 * What upstream publishes for a resource beyond the table's own fields, by plural name: short names
 * and categories (`kubectl get all` expands the "all" category). Entries for resources this server
 * does not serve are unused, so adding a resource to the table picks up its upstream names.
 */
const UPSTREAM: Readonly<Record<string, { shortNames?: readonly string[]; categories?: readonly string[] }>> = {
  pods: { shortNames: ['po'], categories: ['all'] },
  services: { shortNames: ['svc'], categories: ['all'] },
  endpoints: { shortNames: ['ep'] },
  namespaces: { shortNames: ['ns'] },
  nodes: { shortNames: ['no'] },
  configmaps: { shortNames: ['cm'] },
  secrets: {},
  events: { shortNames: ['ev'] },
  serviceaccounts: { shortNames: ['sa'] },
  replicationcontrollers: { shortNames: ['rc'], categories: ['all'] },
  deployments: { shortNames: ['deploy'], categories: ['all'] },
  replicasets: { shortNames: ['rs'], categories: ['all'] },
  daemonsets: { shortNames: ['ds'], categories: ['all'] },
  statefulsets: { shortNames: ['sts'], categories: ['all'] },
  jobs: { categories: ['all'] },
  cronjobs: { shortNames: ['cj'], categories: ['all'] },
  networkpolicies: { shortNames: ['netpol'] },
  endpointslices: {},
  adminnetworkpolicies: { shortNames: ['anp'] },
  baselineadminnetworkpolicies: { shortNames: ['banp'] },
};

export function shortNamesOf(def: ResourceDef): string[] {
  return [...new Set([...def.shortNames, ...(UPSTREAM[def.name]?.shortNames ?? [])])];
}
export function categoriesOf(def: ResourceDef): string[] {
  return [...(UPSTREAM[def.name]?.categories ?? [])];
}
export const singularOf = (def: ResourceDef): string => def.kind.toLowerCase();

const allDefs = (): ResourceDef[] => RESOURCE_NAMES.map((r) => RESOURCES[r]);

/** Subresources served by route modules (sandbox/podio, scale.ts), by resource. */
export const SUBRESOURCES: Readonly<Record<string, readonly { subresource: string; kind: { group: string; version: string; kind: string }; verbs: readonly string[] }[]>> = {
  pods: [
    { subresource: 'log', kind: { group: '', version: 'v1', kind: 'Pod' }, verbs: ['get'] },
    { subresource: 'exec', kind: { group: '', version: 'v1', kind: 'PodExecOptions' }, verbs: ['create', 'get'] },
  ],
  deployments: [{ subresource: 'scale', kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' }, verbs: STATUS_VERBS }],
  replicasets: [{ subresource: 'scale', kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' }, verbs: STATUS_VERBS }],
};

/** Read-only views of stored kinds under another group (events.k8s.io/v1 Events, events-v1.ts). */
export const VIEWS: readonly ResourceDef[] = [{ ...RESOURCES.events, group: 'events.k8s.io', version: 'v1', shortNames: ['ev'] }];
const VIEW_VERBS = ['get', 'list'];

/** Group name -> versions, in the table's order; the core group is ''. */
export function groupVersions(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const d of [...allDefs(), ...VIEWS]) {
    const vs = out.get(d.group) ?? [];
    if (!vs.includes(d.version)) vs.push(d.version);
    out.set(d.group, vs);
  }
  return out;
}

const defsOf = (group: string, version: string): ResourceDef[] => [...allDefs(), ...VIEWS].filter((d) => d.group === group && d.version === version);
const verbsOf = (d: ResourceDef): readonly string[] => (VIEWS.includes(d) ? VIEW_VERBS : VERBS);

function resourceList(group: string, version: string): unknown {
  const resources: unknown[] = [];
  for (const d of defsOf(group, version)) {
    const shortNames = shortNamesOf(d);
    const categories = categoriesOf(d);
    resources.push({
      name: d.name,
      singularName: singularOf(d),
      namespaced: d.namespaced,
      kind: d.kind,
      verbs: verbsOf(d),
      ...(shortNames.length > 0 && { shortNames }),
      ...(categories.length > 0 && { categories }),
    });
    if (d.hasStatus && !VIEWS.includes(d)) resources.push({ name: `${d.name}/status`, singularName: '', namespaced: d.namespaced, kind: d.kind, verbs: STATUS_VERBS });
    if (!VIEWS.includes(d)) for (const sub of SUBRESOURCES[d.name] ?? []) resources.push({ name: `${d.name}/${sub.subresource}`, singularName: '', namespaced: d.namespaced, ...(sub.kind.group && { group: sub.kind.group, version: sub.kind.version }), kind: sub.kind.kind, verbs: sub.verbs });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
}

function apiGroup(name: string, versions: string[]): unknown {
  const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: vs, preferredVersion: vs[0] };
}

function aggregatedGroup(group: string, versions: string[]): unknown {
  return {
    metadata: { name: group, creationTimestamp: null },
    versions: versions.map((version) => ({
      version,
      freshness: 'Current',
      resources: defsOf(group, version).map((d) => {
        const responseKind = { group: d.group, version: d.version, kind: d.kind };
        const shortNames = shortNamesOf(d);
        const categories = categoriesOf(d);
        return {
          resource: d.name,
          responseKind,
          scope: d.namespaced ? 'Namespaced' : 'Cluster',
          singularResource: singularOf(d),
          verbs: verbsOf(d),
          ...(shortNames.length > 0 && { shortNames }),
          ...(categories.length > 0 && { categories }),
          ...(!VIEWS.includes(d) && (d.hasStatus || SUBRESOURCES[d.name]) && {
            subresources: [
              ...(d.hasStatus ? [{ subresource: 'status', responseKind, verbs: STATUS_VERBS }] : []),
              ...(SUBRESOURCES[d.name] ?? []).map((sub) => ({ subresource: sub.subresource, responseKind: sub.kind, verbs: sub.verbs })),
            ],
          }),
        };
      }),
    })),
  };
}

const AGGREGATED = [
  { g: 'apidiscovery.k8s.io', v: 'v2', as: 'APIGroupDiscoveryList' },
  { g: 'apidiscovery.k8s.io', v: 'v2beta1', as: 'APIGroupDiscoveryList' },
] as const;

export interface DiscoveryDoc {
  readonly body: unknown;
  readonly contentType: string;
}

export const VERSION_INFO = { major: '1', minor: '32', gitVersion: 'v1.32.0-skiff-sandbox', gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean', buildDate: '2024-12-11T00:00:00Z', goVersion: 'go1.23.4', compiler: 'gc', platform: 'linux/amd64' };

/** The discovery document served at `path` for this Accept header, or undefined when `path` is not a discovery path. */
export function discovery(path: string, serverAddress: string, accept: MediaType[] = []): DiscoveryDoc | undefined {
  const json = (body: unknown): DiscoveryDoc => ({ body, contentType: 'application/json' });
  const gvs = groupVersions();
  if (path === '/version') return json(VERSION_INFO);
  if (path === '/api' || path === '/apis') {
    const agg = negotiateAs(accept, AGGREGATED);
    if (agg) {
      // /api holds the core group only (its name is empty); /apis every named group.
      const items = [...gvs].filter(([g]) => (path === '/api') === (g === '')).map(([g, vs]) => aggregatedGroup(g, vs));
      return { body: { kind: 'APIGroupDiscoveryList', apiVersion: `${agg.g}/${agg.v}`, metadata: {}, items }, contentType: `application/json;g=${agg.g};v=${agg.v};as=${agg.as}` };
    }
    if (path === '/api') return json({ kind: 'APIVersions', versions: gvs.get('') ?? [], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] });
    return json({ kind: 'APIGroupList', apiVersion: 'v1', groups: [...gvs].filter(([g]) => g !== '').map(([g, vs]) => apiGroup(g, vs)) });
  }
  let m = /^\/api\/([^/]+)$/.exec(path);
  if (m && gvs.get('')?.includes(m[1]!)) return json(resourceList('', m[1]!));
  m = /^\/apis\/([^/]+)$/.exec(path);
  if (m && m[1] !== '' && gvs.has(m[1]!)) return json({ kind: 'APIGroup', apiVersion: 'v1', ...(apiGroup(m[1]!, gvs.get(m[1]!)!) as object) });
  m = /^\/apis\/([^/]+)\/([^/]+)$/.exec(path);
  if (m && m[1] !== '' && gvs.get(m[1]!)?.includes(m[2]!)) return json(resourceList(m[1]!, m[2]!));
  return undefined;
}

