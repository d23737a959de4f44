// Field ownership for server-side apply: an object's fields as a set of paths (the FieldsV1
// vocabulary: f:<field>, k:<list-map key>, v:<set value>), the managedFields entries that record
// which manager owns which paths, and how a plain write (create, update, patch) moves ownership:
// the writer takes the fields it changed, fields that disappear leave every manager.
import { isDeepStrictEqual } from 'node:util';
import type { KubeObject } from './resources.js';
import { childOf, type Node } from './schema.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A path is its FieldsV1 elements joined by NUL (no element can contain one). */
export type Path = string;
const SEP = '\u0000';
export const join = (parent: Path, el: string): Path => (parent === '' ? el : `${parent}${SEP}${el}`);
export const elements = (p: Path): string[] => (p === '' ? [] : p.split(SEP));

/** Fields no manager owns: identity and bookkeeping the server sets. */
const IGNORED_META = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink']);

/** The k: element of a list-map item, with keys in the schema's order (JSON, as FieldsV1 writes it). */
export function keyElement(item: Obj, keys: readonly string[]): string {
  const k: Obj = {};
  for (const key of keys) if (item[key] !== undefined) k[key] = item[key];
  return `k:${JSON.stringify(k)}`;
}

/**
 * Every owned path of `value` with the leaf's value as JSON (list-map items and set values map to
 * '' — they are owned as a whole, their content is compared through their own fields).
 */
export function flatten(value: unknown, node: Node | undefined, ignoreStatus: boolean): Map<Path, string> {
  const out = new Map<Path, string>();
  if (!isObj(value)) return out;
  for (const [k, v] of Object.entries(value)) {
    if (k === 'apiVersion' || k === 'kind' || (k === 'status' && ignoreStatus)) continue;
    if (k === 'metadata' && isObj(v)) {
      const meta = join('', 'f:metadata');
      for (const [mk, mv] of Object.entries(v)) if (!IGNORED_META.has(mk)) walk(mv, childOf(childOf(node, 'metadata'), mk), join(meta, `f:${mk}`), out);
      continue;
    }
    walk(v, childOf(node, k), join('', `f:${k}`), out);
  }
  return out;
}

function walk(v: unknown, node: Node | undefined, path: Path, out: Map<Path, string>): void {
  if (isObj(v) && Object.keys(v).length > 0 && node?.kind !== 'prim') {
    for (const [k, x] of Object.entries(v)) walk(x, childOf(node, k) ?? (node?.kind === 'any' ? { kind: 'any' } : undefined), join(path, `f:${k}`), out);
    return;
  }
  if (Array.isArray(v) && node?.kind === 'list' && node.listType !== 'atomic') {
    for (const item of v) {
      if (node.listType === 'set') out.set(join(path, `v:${JSON.stringify(item)}`), '');
      else if (isObj(item)) {
        const el = join(path, keyElement(item, node.keys));
        out.set(el, '');
        for (const [k, x] of Object.entries(item)) walk(x, childOf(node.items, k), join(el, `f:${k}`), out);
      }
    }
    return;
  }
  out.set(path, JSON.stringify(v));
}

/** Removes the field or list item at `path` from `obj` (in place); empty parents stay. */
export function deletePath(obj: unknown, path: Path, node: Node | undefined): void {
  const els = elements(path);
  let cur: unknown = obj;
  let curNode = node;
  for (let i = 0; i < els.length; i++) {
    const el = els[i]!;
    const last = i === els.length - 1;
    if (el.startsWith('f:')) {
      if (!isObj(cur)) return;
      const k = el.slice(2);
      if (last) {
        delete cur[k];
        return;
      }
      curNode = childOf(curNode, k);
      cur = cur[k];
    } else if (el.startsWith('k:') || el.startsWith('v:')) {
      if (!Array.isArray(cur) || curNode?.kind !== 'list') return;
      const list = cur;
      const keys = curNode.keys;
      const idx = el.startsWith('v:')
        ? list.findIndex((x) => JSON.stringify(x) === el.slice(2))
        : list.findIndex((x) => isObj(x) && keyElement(x, keys) === el);
      if (idx < 0) return;
      if (last) {
        list.splice(idx, 1);
        return;
      }
      cur = list[idx];
      curNode = curNode.items;
    } else return;
  }
}

/** ".spec.ports[port=80,protocol=\"TCP\"].targetPort", as kube-apiserver names a field in a conflict. */
export function formatPath(path: Path): string {
  return elements(path).map((el) => {
    if (el.startsWith('f:')) return `.${el.slice(2)}`;
    if (el.startsWith('k:')) {
      const k = JSON.parse(el.slice(2)) as Obj;
      return `[${Object.entries(k).map(([n, v]) => `${n}=${JSON.stringify(v)}`).join(',')}]`;
    }
    if (el.startsWith('v:')) return `[=${el.slice(2)}]`;
    return `[${el.slice(2)}]`;
  }).join('');
}

/** A set of paths as the FieldsV1 trie: intermediate list items owned themselves get ".". */
export function toFieldsV1(paths: Iterable<Path>): Obj {
  const root: Obj = {};
  for (const p of paths) {
    let cur = root;
    for (const el of elements(p)) cur = (cur[el] ??= {}) as Obj;
    if (Object.keys(cur).length > 0) cur['.'] = {};
  }
  // An element owned itself and with owned children holds "." beside them.
  const mark = (o: Obj, owned: Set<string>, prefix: Path): void => {
    for (const [k, v] of Object.entries(o)) {
      if (k === '.') continue;
      const p = join(prefix, k);
      if (isObj(v) && Object.keys(v).length > 0) {
        if (owned.has(p)) v['.'] = {};
        mark(v, owned, p);
      }
    }
  };
  mark(root, new Set(paths), '');
  return root;
}

export function fromFieldsV1(trie: unknown): Set<Path> {
  const out = new Set<Path>();
  const walkTrie = (o: unknown, prefix: Path): void => {
    if (!isObj(o)) return;
    const entries = Object.entries(o);
    if (prefix !== '' && (entries.length === 0 || Object.hasOwn(o, '.'))) out.add(prefix);
    for (const [k, v] of entries) if (k !== '.') walkTrie(v, join(prefix, k));
  };
  walkTrie(trie, '');
  return out;
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Obj;
  subresource?: string;
}

export interface Manager {
  readonly manager: string;
  readonly operation: 'Apply' | 'Update';
  readonly subresource?: string;
  fields: Set<Path>;
  apiVersion: string;
  time: string;
}

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export function readManagers(obj: KubeObject): Manager[] {
  const list = Array.isArray(obj.metadata.managedFields) ? (obj.metadata.managedFields as ManagedFieldsEntry[]) : [];
  return list.filter((e) => isObj(e) && typeof e.manager === 'string').map((e) => ({
    manager: e.manager,
    operation: e.operation === 'Apply' ? 'Apply' : 'Update',
    ...(e.subresource ? { subresource: e.subresource } : {}),
    fields: fromFieldsV1(e.fieldsV1),
    apiVersion: e.apiVersion ?? 'v1',
    time: e.time ?? now(),
  }));
}

export function writeManagers(managers: readonly Manager[]): ManagedFieldsEntry[] {
  return managers.filter((m) => m.fields.size > 0).map((m) => ({
    manager: m.manager,
    operation: m.operation,
    apiVersion: m.apiVersion,
    time: m.time,
    fieldsType: 'FieldsV1',
    fieldsV1: toFieldsV1([...m.fields].sort()),
    ...(m.subresource ? { subresource: m.subresource } : {}),
  }));
}

export function findManager(managers: Manager[], manager: string, operation: 'Apply' | 'Update', apiVersion: string, subresource?: string): Manager {
  let m = managers.find((x) => x.manager === manager && x.operation === operation && (x.subresource ?? '') === (subresource ?? ''));
  if (!m) {
    m = { manager, operation, ...(subresource ? { subresource } : {}), fields: new Set(), apiVersion, time: now() };
    managers.push(m);
  }
  m.time = now();
  m.apiVersion = apiVersion;
  return m;
}

/**
 * managedFields after a plain write by `manager` (old undefined: a create). The writer takes every
 * path it added or changed, others lose those; paths that are gone leave every manager.
 */
export function managedAfterUpdate(old: KubeObject | undefined, next: KubeObject, node: Node | undefined, ignoreStatus: boolean, manager: string, apiVersion: string, subresource?: string): ManagedFieldsEntry[] {
  const before = old ? flatten(old, node, ignoreStatus) : new Map<Path, string>();
  const after = flatten(next, node, ignoreStatus);
  // A request that rewrites managedFields itself (kubectl's migration from client-side apply does)
  // sets the starting point; otherwise the stored entries are.
  const requested = next.metadata.managedFields;
  const rewritten = Array.isArray(requested) && !isDeepStrictEqual(requested, old?.metadata.managedFields);
  const managers = rewritten ? readManagers(next) : old ? readManagers(old) : [];
  const changed = [...after].filter(([p, v]) => before.get(p) !== v).map(([p]) => p);
  if (old && !rewritten && changed.length === 0 && [...before.keys()].every((p) => after.has(p))) return writeManagers(managers);
  for (const m of managers) {
    for (const p of changed) m.fields.delete(p);
    for (const p of [...m.fields]) if (!after.has(p)) m.fields.delete(p);
  }
  if (changed.length > 0) {
    const me = findManager(managers, manager, 'Update', apiVersion, subresource);
    for (const p of changed) me.fields.add(p);
  }
  return writeManagers(managers);
}

