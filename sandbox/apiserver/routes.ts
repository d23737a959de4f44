// Maps an API path onto a resource: /api/v1/{res}[/{name}[/status]],
// /api/v1/namespaces/{ns}/{res}[/{name}[/status]] and the same under /apis/{group}/{version}.
import { isResourceName, RESOURCES, type ResourceDef } from './resources.js';

export interface Route {
  readonly def: ResourceDef;
  /** Set for namespaced paths; absent for cluster-scoped resources and all-namespace lists. */
  readonly namespace?: string;
  readonly name?: string;
  readonly subresource?: 'status';
}

const PREFIXES: readonly [string, string][] = [
  ['/api/v1/', ''],
  ['/apis/discovery.k8s.io/v1/', 'discovery.k8s.io'],
];

/** The listed prefixes and one for every other group version of the resource table, so a new resource needs no route. */
function allPrefixes(): [string, string][] {
  const out = new Map<string, string>(PREFIXES);
  for (const d of Object.values(RESOURCES)) {
    const p = d.group ? `/apis/${d.group}/${d.version}/` : `/api/${d.version}/`;
    if (!out.has(p)) out.set(p, d.group);
  }
  return [...out];
}
const ALL_PREFIXES = allPrefixes();

export function parseRoute(pathname: string): Route | undefined {
  for (const [prefix, group] of ALL_PREFIXES) {
    if (!pathname.startsWith(prefix)) continue;
    let segs: string[];
    try {
      segs = pathname.slice(prefix.length).split('/').filter((s) => s !== '').map(decodeURIComponent);
    } catch {
      return undefined;
    }
    let namespace: string | undefined;
    if (segs[0] === 'namespaces' && segs.length >= 3 && isResourceName(segs[2]!) && RESOURCES[segs[2]].namespaced) {
      namespace = segs[1];
      segs = segs.slice(2);
    }
    const [res, name, sub, ...rest] = segs;
    if (!res || !isResourceName(res) || rest.length > 0) return undefined;
    const def = RESOURCES[res];
    if (def.group !== group) return undefined;
    // One group serves two versions (policy.networking.k8s.io): each kind only under its own.
    if (group !== '' && !prefix.endsWith(`/${def.version}/`)) return undefined;
    // A namespaced object is only addressable under its namespace.
    if (def.namespaced && name !== undefined && namespace === undefined) return undefined;
    if (sub !== undefined && (sub !== 'status' || !def.hasStatus)) return undefined;
    return { def, ...(namespace !== undefined && { namespace }), ...(name !== undefined && { name }), ...(sub !== undefined && { subresource: 'status' as const }) };
  }
  return undefined;
}
