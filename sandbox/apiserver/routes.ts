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

// Every group version of the resource table has its prefix, so a new resource needs no route.
const PREFIXES: readonly [string, string][] = [
  ...new Map(Object.values(RESOURCES).map((d) => [d.group ? `/apis/${d.group}/${d.version}/` : `/api/${d.version}/`, d.group] as [string, string])),
];

export function parseRoute(pathname: string): Route | undefined {
  for (const [prefix, group] of PREFIXES) {
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
