// Server-side apply (PATCH application/apply-patch+yaml): the applied configuration is merged into
// the live object by the schema (list maps by key, sets by value, atomic lists whole), fields this
// manager applied before and dropped now are removed unless another manager owns them, and a field
// another manager owns with a different value is a conflict (409 with every conflict listed) unless
// the request says force=true, which takes it over.
import { parse as parseYaml } from 'yaml';
import { ApiError } from './errors.js';
import { deletePath, findManager, flatten, formatPath, keyElement, readManagers, writeManagers, type ManagedFieldsEntry } from './fields.js';
import type { KubeObject } from './resources.js';
import { childOf, type Node } from './schema.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Parses an apply body (YAML, of which JSON is a subset) into an object. */
export function parseApplyBody(text: string): Obj {
  let v: unknown;
  try {
    v = parseYaml(text);
  } catch (e) {
    throw new ApiError(400, 'BadRequest', `error decoding YAML: ${(e as Error).message}`);
  }
  if (!isObj(v)) throw new ApiError(400, 'BadRequest', 'the applied configuration must be an object');
  return v;
}

/** Merges an applied configuration into the live object (neither is mutated). */
export function applyMerge(live: unknown, applied: unknown, node: Node | undefined): unknown {
  if (isObj(applied)) {
    const out: Obj = isObj(live) ? { ...live } : {};
    for (const [k, v] of Object.entries(applied)) {
      const child = childOf(node, k) ?? (node?.kind === 'any' ? node : undefined);
      out[k] = v === null ? null : applyMerge(out[k], v, child);
      if (v === null) delete out[k];
    }
    return out;
  }
  if (Array.isArray(applied) && node?.kind === 'list' && node.listType !== 'atomic' && Array.isArray(live)) {
    const out = [...live];
    if (node.listType === 'set') {
      for (const v of applied) if (!out.some((o) => JSON.stringify(o) === JSON.stringify(v))) out.push(v);
      return out;
    }
    for (const item of applied) {
      if (!isObj(item)) continue;
      const el = keyElement(item, node.keys);
      const i = out.findIndex((o) => isObj(o) && keyElement(o, node.keys) === el);
      if (i < 0) out.push(item);
      else out[i] = applyMerge(out[i], item, node.items);
    }
    return out;
  }
  return applied;
}

export interface ApplyRequest {
  readonly live: KubeObject | undefined;
  readonly applied: Obj;
  readonly node: Node | undefined;
  readonly manager: string;
  readonly force: boolean;
  readonly apiVersion: string;
  /** Resources with a status subresource: the main resource's apply ignores .status. */
  readonly ignoreStatus: boolean;
}

/** The object to store after the apply, with its managedFields; throws 409 on conflicts. */
export function serverSideApply(req: ApplyRequest): KubeObject {
  const { live, applied, node, manager, force, apiVersion, ignoreStatus } = req;
  const appliedFields = flatten(applied, node, ignoreStatus);
  const managers = live ? readManagers(live) : [];
  const liveFields = live ? flatten(live, node, ignoreStatus) : new Map<string, string>();

  const conflicts: { manager: string; apiVersion: string; path: string }[] = [];
  for (const m of managers) {
    if (m.manager === manager && m.operation === 'Apply') continue;
    for (const p of m.fields) {
      if (!appliedFields.has(p)) continue;
      const liveValue = liveFields.get(p);
      if (liveValue === undefined || liveValue === appliedFields.get(p)) continue;
      if (force) m.fields.delete(p);
      else conflicts.push({ manager: m.manager, apiVersion: m.apiVersion, path: p });
    }
  }
  if (conflicts.length > 0) {
    const causes = conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}" using ${c.apiVersion}`, field: formatPath(c.path) }));
    throw new ApiError(409, 'Conflict', `Apply failed with ${conflicts.length} conflict${conflicts.length > 1 ? 's' : ''}: ${causes.map((c) => `${c.message}: ${c.field}`).join('\n')}`, { causes });
  }

  const base: KubeObject = live ? structuredClone(live) : { metadata: {} };
  const merged = applyMerge(base, applied, node) as KubeObject;
  merged.metadata = { ...(merged.metadata ?? {}) };

  // Fields this manager applied before and leaves out now go, unless someone else still owns them.
  const me = findManager(managers, manager, 'Apply', apiVersion);
  const dropped = [...me.fields].filter((p) => !appliedFields.has(p));
  const ownedByOthers = (p: string): boolean => managers.some((m) => m !== me && m.fields.has(p));
  // Deepest first, so removing a list item never shifts a path still to be removed.
  for (const p of dropped.sort((a, b) => b.length - a.length)) if (!ownedByOthers(p)) deletePath(merged, p, node);
  me.fields = new Set(appliedFields.keys());

  // Whatever the merge removed is owned by no one any more.
  const after = flatten(merged, node, ignoreStatus);
  for (const m of managers) for (const p of [...m.fields]) if (!after.has(p)) m.fields.delete(p);
  merged.metadata.managedFields = writeManagers(managers) as ManagedFieldsEntry[] as unknown as KubeObject['metadata']['managedFields'];
  return merged;
}
