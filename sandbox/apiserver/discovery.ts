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

/** The discovery document served at `path`, or undefined when the path is not a discovery path. */
export function discovery(path: string, serverAddress: string): unknown {
  const group = (name: string) => ({ name, versions: [{ groupVersion: `${name}/v1`, version: 'v1' }], preferredVersion: { groupVersion: `${name}/v1`, version: 'v1' } });
  const groups = ['discovery.k8s.io', 'networking.k8s.io'];
  const m = /^\/apis\/([^/]+)(\/v1)?$/.exec(path);
  if (m && groups.includes(m[1]!)) return m[2] ? resourceList(`${m[1]}/v1`, groupDefs(m[1]!)) : { kind: 'APIGroup', apiVersion: 'v1', ...group(m[1]!) };
  switch (path) {
    case '/version':
      return { major: '1', minor: '31', gitVersion: 'v1.31.0-skiff-fake', gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean', buildDate: '2024-08-13T00:00:00Z', goVersion: 'go1.22.5', compiler: 'gc', platform: 'linux/amd64' };
    case '/api':
      return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
    case '/apis':
      return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map(group) };
    case '/api/v1':
      return resourceList('v1', groupDefs(''));
    default:
      return undefined;
  }
}
