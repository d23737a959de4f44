// Just enough discovery for clients that look before they leap (kubectl, client-node's generic
// object API): versions, groups and each group version's resource list.
import { RESOURCES, RESOURCE_NAMES, type ResourceDef } from './resources.js';

const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];

function resourceList(groupVersion: string, defs: ResourceDef[]): unknown {
  const resources: unknown[] = [];
  for (const d of defs) {
    resources.push({ name: d.name, singularName: d.kind.toLowerCase(), namespaced: d.namespaced, kind: d.kind, verbs: VERBS, shortNames: d.shortNames });
    if (d.hasStatus) resources.push({ name: `${d.name}/status`, singularName: '', namespaced: d.namespaced, kind: d.kind, verbs: ['get', 'patch', 'update'] });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion, resources };
}

const groupDefs = (group: string): ResourceDef[] => RESOURCE_NAMES.map((r) => RESOURCES[r]).filter((d) => d.group === group);

/** Every named group but discovery.k8s.io (kept literal below), versions in RESOURCES order: the first is preferred. */
function extraGroups(): { name: string; versions: { groupVersion: string; version: string }[]; preferredVersion: { groupVersion: string; version: string } }[] {
  const versions = new Map<string, string[]>();
  for (const r of RESOURCE_NAMES) {
    const { group, version } = RESOURCES[r];
    if (group === '' || group === 'discovery.k8s.io') continue;
    const vs = versions.get(group) ?? [];
    if (!vs.includes(version)) vs.push(version);
    versions.set(group, vs);
  }
  return [...versions].map(([name, vs]) => {
    const gvs = vs.map((version) => ({ groupVersion: `${name}/${version}`, version }));
    return { name, versions: gvs, preferredVersion: gvs[0]! };
  });
}

function extraDiscovery(path: string): unknown {
  for (const g of extraGroups()) {
    if (path === `/apis/${g.name}`) return { kind: 'APIGroup', apiVersion: 'v1', ...g };
    const gv = g.versions.find((v) => path === `/apis/${v.groupVersion}`);
    if (gv) return resourceList(gv.groupVersion, groupDefs(g.name).filter((d) => d.version === gv.version));
  }
  return undefined;
}

/** The discovery document served at `path`, or undefined when the path is not a discovery path. */
export function discovery(path: string, serverAddress: string): unknown {
  const discoveryGroup = {
    name: 'discovery.k8s.io',
    versions: [{ groupVersion: 'discovery.k8s.io/v1', version: 'v1' }],
    preferredVersion: { groupVersion: 'discovery.k8s.io/v1', version: 'v1' },
  };
  switch (path) {
    case '/version':
      return { major: '1', minor: '31', gitVersion: 'v1.31.0-skiff-fake', gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean', buildDate: '2024-08-13T00:00:00Z', goVersion: 'go1.22.5', compiler: 'gc', platform: 'linux/amd64' };
    case '/api':
      return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
    case '/apis':
      return { kind: 'APIGroupList', apiVersion: 'v1', groups: [discoveryGroup, ...extraGroups()] };
    case '/apis/discovery.k8s.io':
      return { kind: 'APIGroup', apiVersion: 'v1', ...discoveryGroup };
    case '/api/v1':
      return resourceList('v1', groupDefs(''));
    case '/apis/discovery.k8s.io/v1':
      return resourceList('discovery.k8s.io/v1', groupDefs('discovery.k8s.io'));
    default:
      return extraDiscovery(path);
  }
}
