// The PATCH formats kube-apiserver accepts, applied to plain JSON: RFC 7386 merge patch, RFC 6902
// JSON patch, and strategic merge patch, which uses the schema's list semantics (containers merge
// by name, ports by port) and understands the directives kubectl sends ($patch, $retainKeys,
// $setElementOrder, $deleteFromPrimitiveList).
import { isDeepStrictEqual } from 'node:util';
import { ApiError } from './errors.js';
import { childOf, type Node } from './schema.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

const invalidPatch = (why: string): ApiError => new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: ${why}`);

/** Strategic merge patch of `patch` onto `original` (not mutated); `node` is the schema, undefined for free-form. */
export function strategicMerge(original: unknown, patch: unknown, node: Node | undefined): unknown {
  if (!isObj(patch)) throw new ApiError(400, 'BadRequest', 'a strategic merge patch must be a JSON object');
  const out = mergeMap(isObj(original) ? original : {}, patch, node);
  return out === DELETE ? {} : out;
}

const DELETE = Symbol('delete');

function mergeMap(original: Obj, patch: Obj, node: Node | undefined): Obj | typeof DELETE {
  const directive = patch.$patch;
  if (directive === 'delete') return DELETE;
  if (directive === 'replace') return stripDirectives(withoutKey(patch, '$patch')) as Obj;
  if (directive !== undefined && directive !== 'merge') throw invalidPatch(`unknown patch directive "${String(directive)}"`);
  const out: Obj = { ...original };
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch' || key === '$retainKeys' || key.startsWith('$setElementOrder/')) continue;
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length);
      const drop = Array.isArray(value) ? value : [];
      const cur = out[field];
      if (Array.isArray(cur)) out[field] = cur.filter((v) => !drop.some((d) => isDeepStrictEqual(d, v)));
      continue;
    }
    const child = childOf(node, key);
    if (value === null) delete out[key];
    else if (isObj(value)) {
      const merged = mergeMap(isObj(out[key]) ? (out[key] as Obj) : {}, value, child);
      if (merged === DELETE) delete out[key];
      else out[key] = merged;
    } else if (Array.isArray(value)) out[key] = mergeList(Array.isArray(out[key]) ? (out[key] as unknown[]) : [], value, child);
    else out[key] = value;
  }
  if (Array.isArray(patch.$retainKeys)) {
    const keep = new Set(patch.$retainKeys.map(String));
    for (const k of Object.keys(out)) if (!keep.has(k)) delete out[k];
  }
  return out;
}

function mergeList(original: unknown[], patch: unknown[], node: Node | undefined): unknown[] {
  if (node?.kind !== 'list' || node.listType === 'atomic') {
    // A list of maps with a lone {$patch: replace} element means "replace with the rest".
    return patch.filter((p) => !(isObj(p) && p.$patch === 'replace')).map(stripDirectives);
  }
  if (patch.some((p) => isObj(p) && p.$patch === 'replace')) return patch.filter((p) => !(isObj(p) && p.$patch === 'replace')).map(stripDirectives);
  if (node.listType === 'set') {
    const out = [...original];
    for (const v of patch) if (!out.some((o) => isDeepStrictEqual(o, v))) out.push(v);
    return out;
  }
  const mergeKey = node.keys[0]!;
  const out = [...original];
  for (const p of patch) {
    if (!isObj(p)) throw invalidPatch(`a list merged by "${mergeKey}" holds maps, not ${JSON.stringify(p)}`);
    if (!(mergeKey in p)) throw invalidPatch(`map: ${JSON.stringify(p)} does not contain declared merge key: ${mergeKey}`);
    const i = out.findIndex((o) => isObj(o) && isDeepStrictEqual(o[mergeKey], p[mergeKey]));
    if (p.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    if (i < 0) out.push(stripDirectives(p));
    else {
      const merged = mergeMap(out[i] as Obj, p, node.items);
      if (merged === DELETE) out.splice(i, 1);
      else out[i] = merged;
    }
  }
  return out;
}

function withoutKey(o: Obj, key: string): Obj {
  const out = { ...o };
  delete out[key];
  return out;
}

/** Removes $-directives from a value that is stored as given (new list items, replaced maps). */
function stripDirectives(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectives(x);
  return out;
}

/** RFC 7386 merge patch: objects merge key by key, null deletes, anything else replaces. */
export function jsonMerge(original: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return patch;
  const out: Obj = isObj(original) ? { ...original } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = jsonMerge(out[k], v);
  }
  return out;
}

/** RFC 6902 JSON patch; a failing operation (missing path, failed test) is 422 like kube-apiserver. */
export function jsonPatch(original: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new ApiError(400, 'BadRequest', 'a JSON patch must be a JSON array of operations');
  let doc = structuredClone(original);
  for (const raw of ops) {
    if (!isObj(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') throw invalidPatch(`invalid JSON patch operation ${JSON.stringify(raw)}`);
    const { op, path } = raw as { op: string; path: string };
    switch (op) {
      case 'add':
        doc = put(doc, pointer(path), structuredClone(raw.value), 'add');
        break;
      case 'replace':
        get(doc, pointer(path), path);
        doc = put(doc, pointer(path), structuredClone(raw.value), 'replace');
        break;
      case 'remove':
        doc = remove(doc, pointer(path), path);
        break;
      case 'move':
      case 'copy': {
        if (typeof raw.from !== 'string') throw invalidPatch(`${op} needs "from"`);
        const value = structuredClone(get(doc, pointer(raw.from), raw.from));
        if (op === 'move') doc = remove(doc, pointer(raw.from), raw.from);
        doc = put(doc, pointer(path), value, 'add');
        break;
      }
      case 'test':
        if (!isDeepStrictEqual(get(doc, pointer(path), path), raw.value)) throw invalidPatch(`testing value ${path} failed`);
        break;
      default:
        throw invalidPatch(`unexpected JSON patch operation "${op}"`);
    }
  }
  return doc;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw invalidPatch(`JSON pointer must start with "/": ${path}`);
  return path.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function get(doc: unknown, segs: string[], path: string): unknown {
  let cur = doc;
  for (const s of segs) {
    if (Array.isArray(cur) && /^\d+$/.test(s) && Number(s) < cur.length) cur = cur[Number(s)];
    else if (isObj(cur) && Object.hasOwn(cur, s)) cur = cur[s];
    else throw invalidPatch(`doc is missing path: "${path}"`);
  }
  return cur;
}

function put(doc: unknown, segs: string[], value: unknown, mode: 'add' | 'replace'): unknown {
  if (segs.length === 0) return value;
  const parent = get(doc, segs.slice(0, -1), `/${segs.slice(0, -1).join('/')}`);
  const last = segs[segs.length - 1]!;
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(i) || i < 0 || i > parent.length || (mode === 'replace' && i >= parent.length)) throw invalidPatch(`index ${last} out of range`);
    if (mode === 'add') parent.splice(i, 0, value);
    else parent[i] = value;
  } else if (isObj(parent)) parent[last] = value;
  else throw invalidPatch(`doc is missing path: "/${segs.join('/')}"`);
  return doc;
}

function remove(doc: unknown, segs: string[], path: string): unknown {
  get(doc, segs, path);
  const parent = get(doc, segs.slice(0, -1), path);
  const last = segs[segs.length - 1]!;
  if (Array.isArray(parent)) parent.splice(Number(last), 1);
  else delete (parent as Obj)[last];
  return doc;
}
