// Just enough discovery for clients that look before they leap (kubectl, client-node's generic
// object API): versions, groups and each group version's resource list, derived from RESOURCES
// plus the subresources and views that route modules serve (SUBRESOURCES).
import { RESOURCES, RESOURCE_NAMES, type ResourceDef } from './resources.js';

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

/** Entries served by route modules rather than the store's generic CRUD, per group version. */
export const SUBRESOURCES: Record<string, { name: string; kind: string; namespaced: boolean; verbs: string[]; singularName?: string; shortNames?: string[] }[]> = {
  v1: [
    { name: 'pods/log', kind: 'Pod', namespaced: true, verbs: ['get'] },
    { name: 'pods/exec', kind: 'PodExecOptions', namespaced: true, verbs: ['create', 'get'] },
  ],
  'apps/v1': [
    { name: 'deployments/scale', kind: 'Scale', namespaced: true, verbs: ['get', 'patch', 'update'] },
    { name: 'replicasets/scale', kind: 'Scale', namespaced: true, verbs: ['get', 'patch', 'update'] },
  ],
  'events.k8s.io/v1': [{ name: 'events', singularName: 'event', kind: 'Event', namespaced: true, verbs: ['get', 'list'], shortNames: ['ev'] }],
};

function resourceList(groupVersion: string, defs: ResourceDef[]): unknown {
  const resources: unknown[] = [];
  for (const d of defs) {
    resources.push({ name: d.name, singularName: d.kind.toLowerCase(), namespaced: d.namespaced, kind: d.kind, verbs: VERBS, shortNames: d.shortNames });
    if (d.hasStatus) resources.push({ name: `${d.name}/status`, singularName: '', namespaced: d.namespaced, kind: d.kind, verbs: ['get', 'patch', 'update'] });
  }
  for (const s of SUBRESOURCES[groupVersion] ?? []) resources.push({ singularName: '', shortNames: [], ...s });
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion, resources };
}

const groupDefs = (group: string): ResourceDef[] => RESOURCE_NAMES.map((r) => RESOURCES[r]).filter((d) => d.group === group);

function groups(): { name: string; versions: { groupVersion: string; version: string }[]; preferredVersion: { groupVersion: string; version: string } }[] {
  const names = [...new Set([...RESOURCE_NAMES.map((r) => RESOURCES[r].group), ...Object.keys(SUBRESOURCES).map((gv) => (gv.includes('/') ? gv.split('/')[0]! : ''))])].filter((g) => g !== '');
  return names.map((name) => {
    const v = { groupVersion: `${name}/v1`, version: 'v1' };
    return { name, versions: [v], preferredVersion: v };
  });
}

/** The discovery document served at `path`, or undefined when the path is not a discovery path. */
export function discovery(path: string, serverAddress: string): unknown {
  switch (path) {
    case '/version':
      return { major: '1', minor: '31', gitVersion: 'v1.31.0-skiff-fake', gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean', buildDate: '2024-08-13T00:00:00Z', goVersion: 'go1.22.5', compiler: 'gc', platform: 'linux/amd64' };
    case '/api':
      return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
    case '/apis':
      return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups() };
    case '/api/v1':
      return resourceList('v1', groupDefs(''));
  }
  for (const g of groups()) {
    if (path === `/apis/${g.name}`) return { kind: 'APIGroup', apiVersion: 'v1', ...g };
    if (path === `/apis/${g.name}/v1`) return resourceList(`${g.name}/v1`, groupDefs(g.name));
  }
  return undefined;
}
