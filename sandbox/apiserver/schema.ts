// A compact description of the served kinds' schemas, and the typed model built from it. One model
// feeds the OpenAPI documents (openapi.ts), strategic merge patch (patch.ts), server-side apply
// (apply.ts) and strict field validation, so they never disagree about a list's merge key.
//
// Field syntax, `type|description`:
//   string, integer, int64, boolean, number, int-or-string, quantity, time, object (free-form)
//   Name          a definition (looked up in the same package, then core.v1, then meta.v1)
//   [T]           atomic list           [T set]     list of scalars merged as a set
//   [T k1,k2]     list map keyed by k1,k2 (strategic merge key k1)
//   [T k1 retain] the same with the merge,retainKeys strategy (volumes)
//   {T}           map of T
// A trailing `!` on a field name marks it required. `_` holds the definition's description.
import { SCHEMA_DEFS } from './schema-defs.js';

export type Prim = 'string' | 'integer' | 'int64' | 'boolean' | 'number' | 'int-or-string' | 'quantity' | 'time';

export type Node =
  | { readonly kind: 'prim'; readonly type: Prim }
  | { readonly kind: 'any' }
  | { readonly kind: 'ref'; readonly name: string }
  | { readonly kind: 'map'; readonly values: Node }
  | { readonly kind: 'list'; readonly items: Node; readonly listType: 'atomic' | 'set' | 'map'; readonly keys: readonly string[]; readonly retainKeys: boolean };

export interface Field {
  readonly node: Node;
  readonly description: string;
}

export interface Struct {
  /** Full OpenAPI name, e.g. io.k8s.api.core.v1.Container. */
  readonly name: string;
  readonly description: string;
  readonly fields: ReadonlyMap<string, Field>;
  readonly required: readonly string[];
  /** Set on top-level kinds. */
  readonly gvk?: { readonly group: string; readonly version: string; readonly kind: string };
}

const PACKAGES: Readonly<Record<string, string>> = {
  'core.v1': 'io.k8s.api.core.v1',
  'meta.v1': 'io.k8s.apimachinery.pkg.apis.meta.v1',
  'apps.v1': 'io.k8s.api.apps.v1',
  'discovery.v1': 'io.k8s.api.discovery.v1',
  'networking.v1': 'io.k8s.api.networking.v1',
  'events.v1': 'io.k8s.api.events.v1',
};
const GROUPS: Readonly<Record<string, string>> = { 'core.v1': '', 'apps.v1': 'apps', 'discovery.v1': 'discovery.k8s.io', 'networking.v1': 'networking.k8s.io', 'events.v1': 'events.k8s.io' };

const PRIMS = new Set<string>(['string', 'integer', 'int64', 'boolean', 'number', 'int-or-string', 'quantity', 'time']);

function parseType(text: string, pkg: string, keys: ReadonlySet<string>): Node {
  const t = text.trim();
  if (t === 'object') return { kind: 'any' };
  if (PRIMS.has(t)) return { kind: 'prim', type: t as Prim };
  if (t.startsWith('{') && t.endsWith('}')) return { kind: 'map', values: parseType(t.slice(1, -1), pkg, keys) };
  if (t.startsWith('[') && t.endsWith(']')) {
    const [item = '', how = '', extra = ''] = t.slice(1, -1).trim().split(/\s+/);
    const items = parseType(item, pkg, keys);
    if (how === '') return { kind: 'list', items, listType: 'atomic', keys: [], retainKeys: false };
    if (how === 'set') return { kind: 'list', items, listType: 'set', keys: [], retainKeys: false };
    return { kind: 'list', items, listType: 'map', keys: how.split(','), retainKeys: extra === 'retain' };
  }
  for (const p of [pkg, 'core.v1', 'meta.v1']) if (keys.has(`${p}.${t}`)) return { kind: 'ref', name: `${PACKAGES[p]}.${t}` };
  if (keys.has(t)) {
    const i = t.lastIndexOf('.');
    return { kind: 'ref', name: `${PACKAGES[t.slice(0, i)]}.${t.slice(i + 1)}` };
  }
  throw new Error(`schema: unknown type ${t} (in ${pkg})`);
}

function build(): Map<string, Struct> {
  const out = new Map<string, Struct>();
  const keys = new Set(Object.keys(SCHEMA_DEFS));
  for (const [key, def] of Object.entries(SCHEMA_DEFS)) {
    const i = key.lastIndexOf('.');
    const pkg = key.slice(0, i);
    const short = key.slice(i + 1);
    const fields = new Map<string, Field>();
    const required: string[] = [];
    for (const [rawName, spec] of Object.entries(def)) {
      if (rawName === '_' || rawName === '_kind') continue;
      const name = rawName.endsWith('!') ? rawName.slice(0, -1) : rawName;
      if (name !== rawName) required.push(name);
      const bar = spec.indexOf('|');
      const [type, description] = bar < 0 ? [spec, ''] : [spec.slice(0, bar), spec.slice(bar + 1).trim()];
      fields.set(name, { node: parseType(type, pkg, keys), description });
    }
    const full = `${PACKAGES[pkg]}.${short}`;
    const isKind = def._kind !== undefined;
    out.set(full, {
      name: full,
      description: def._ ?? '',
      fields,
      required,
      ...(isKind && { gvk: { group: GROUPS[pkg] ?? '', version: pkg.slice(pkg.indexOf('.') + 1), kind: short } }),
    });
  }
  return out;
}

export const STRUCTS: ReadonlyMap<string, Struct> = build();

/** The top-level kind's struct, by group and kind (group '' is core). */
export function kindStruct(group: string, kind: string): Struct | undefined {
  for (const s of STRUCTS.values()) if (s.gvk && s.gvk.group === group && s.gvk.kind === kind) return s;
  return undefined;
}

/** Follows a ref to its struct; undefined for anything that is not a struct. */
export function structOf(node: Node | undefined): Struct | undefined {
  return node?.kind === 'ref' ? STRUCTS.get(node.name) : undefined;
}

/** The schema of a child: a struct's field, a map's value or a list's item. */
export function childOf(node: Node | undefined, key: string): Node | undefined {
  if (!node) return undefined;
  if (node.kind === 'ref') return STRUCTS.get(node.name)?.fields.get(key)?.node;
  if (node.kind === 'map') return node.values;
  return undefined;
}

/** The node for a top-level kind, or undefined when the kind has no schema (then all is free-form). */
export function kindNode(group: string, kind: string): Node | undefined {
  const s = kindStruct(group, kind);
  return s ? { kind: 'ref', name: s.name } : undefined;
}

/**
 * Fields of `value` the schema does not know, as dotted paths (".spec.foo"), the way strict field
 * validation reports them. Free-form parts (object, unknown kinds) accept anything.
 */
export function unknownFields(node: Node | undefined, value: unknown, path = ''): string[] {
  if (!node || value === null || typeof value !== 'object') return [];
  if (node.kind === 'ref') {
    const s = STRUCTS.get(node.name);
    if (!s || Array.isArray(value)) return [];
    const out: string[] = [];
    for (const [k, v] of Object.entries(value)) {
      const f = s.fields.get(k);
      if (!f) out.push(`${path}.${k}`);
      else out.push(...unknownFields(f.node, v, `${path}.${k}`));
    }
    return out;
  }
  if (node.kind === 'map' && !Array.isArray(value)) return Object.entries(value).flatMap(([k, v]) => unknownFields(node.values, v, `${path}.${k}`));
  if (node.kind === 'list' && Array.isArray(value)) return value.flatMap((v, i) => unknownFields(node.items, v, `${path}[${i}]`));
  return [];
}

const GO_TYPES: Readonly<Record<Prim, string>> = { string: 'string', integer: 'int32', int64: 'int64', boolean: 'bool', number: 'float64', 'int-or-string': 'intstr.IntOrString', quantity: 'resource.Quantity', time: 'v1.Time' };

function jsonKind(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  return typeof v === 'number' ? 'number' : typeof v;
}

/**
 * The first value of the wrong JSON type in a request body, worded like the decoding error
 * kube-apiserver answers with ("cannot unmarshal string into Go struct field .spec.containers of
 * type []v1.Container"), or undefined. null is always accepted (it clears a field).
 */
export function typeError(node: Node | undefined, value: unknown, path = ''): string | undefined {
  if (!node || value === null || value === undefined) return undefined;
  const bad = (want: string): string => `cannot unmarshal ${jsonKind(value)} into Go struct field ${path || '.'} of type ${want}`;
  switch (node.kind) {
    case 'any':
      return undefined;
    case 'prim': {
      const t = node.type;
      const ok =
        t === 'string' || t === 'time' ? typeof value === 'string'
        : t === 'boolean' ? typeof value === 'boolean'
        : t === 'integer' || t === 'int64' ? typeof value === 'number' && Number.isInteger(value)
        : t === 'number' ? typeof value === 'number'
        : typeof value === 'string' || (typeof value === 'number' && (t === 'quantity' || Number.isInteger(value)));
      return ok ? undefined : bad(GO_TYPES[t]);
    }
    case 'ref': {
      const s = STRUCTS.get(node.name);
      if (!s) return undefined;
      if (typeof value !== 'object' || Array.isArray(value)) return bad(`v1.${s.name.slice(s.name.lastIndexOf('.') + 1)}`);
      for (const [k, v] of Object.entries(value)) {
        const e = typeError(s.fields.get(k)?.node, v, `${path}.${k}`);
        if (e) return e;
      }
      return undefined;
    }
    case 'map':
      if (typeof value !== 'object' || Array.isArray(value)) return bad('map');
      for (const [k, v] of Object.entries(value)) {
        const e = typeError(node.values, v, `${path}.${k}`);
        if (e) return e;
      }
      return undefined;
    case 'list': {
      if (!Array.isArray(value)) {
        const item = node.items.kind === 'ref' ? `v1.${node.items.name.slice(node.items.name.lastIndexOf('.') + 1)}` : node.items.kind === 'prim' ? GO_TYPES[node.items.type] : 'interface {}';
        return bad(`[]${item}`);
      }
      for (let i = 0; i < value.length; i++) {
        const e = typeError(node.items, value[i], `${path}[${i}]`);
        if (e) return e;
      }
      return undefined;
    }
  }
}
