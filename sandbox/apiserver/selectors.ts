// Label and field selectors with the API server's grammar: labels support =, ==, !=, in, notin,
// exists and !exists; fields support =, == and != over a fixed set of fields per resource.
import { ApiError } from './errors.js';
import type { KubeObject, ResourceDef } from './resources.js';

export type Matcher = (obj: KubeObject) => boolean;

const always: Matcher = () => true;

/** Splits on commas that are not inside parentheses ("a in (x,y),b" has two terms). */
function terms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

function invalid(what: string, sel: string, why: string): ApiError {
  return new ApiError(400, 'BadRequest', `unable to parse requirement: ${what} selector "${sel}": ${why}`);
}

export function parseLabelSelector(sel: string | undefined): Matcher {
  if (!sel) return always;
  const reqs: Matcher[] = terms(sel).map((t) => {
    let m = /^([^\s!=,()]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(t);
    if (m) {
      const key = m[1]!;
      const values = new Set(m[3]!.split(',').map((v) => v.trim()).filter((v) => v !== ''));
      const isIn = m[2] === 'in';
      return (o) => {
        const v = o.metadata.labels?.[key];
        return isIn ? v !== undefined && values.has(v) : v === undefined || !values.has(v);
      };
    }
    m = /^([^\s!=,()]+)\s*(==|=|!=)\s*([^\s!=,()]*)$/.exec(t);
    if (m) {
      const [, key, op, value] = m as unknown as [string, string, string, string];
      return op === '!=' ? (o) => o.metadata.labels?.[key] !== value : (o) => o.metadata.labels?.[key] === value;
    }
    m = /^(!?)([^\s!=,()]+)$/.exec(t);
    if (m) {
      const key = m[2]!;
      return m[1] ? (o) => o.metadata.labels?.[key] === undefined : (o) => o.metadata.labels?.[key] !== undefined;
    }
    throw invalid('label', sel, `cannot parse "${t}"`);
  });
  return (o) => reqs.every((r) => r(o));
}

export function parseFieldSelector(def: ResourceDef, sel: string | undefined): Matcher {
  if (!sel) return always;
  const reqs: Matcher[] = terms(sel).map((t) => {
    const m = /^([^\s!=]+)\s*(==|=|!=)\s*(.*)$/.exec(t);
    if (!m) throw invalid('field', sel, `cannot parse "${t}"`);
    const [, field, op, value] = m as unknown as [string, string, string, string];
    const get = fieldGetter(def, field);
    if (!get) throw new ApiError(400, 'BadRequest', `"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"${Object.keys(def.fields).map((f) => `, "${f}"`).join('')}`);
    return op === '!=' ? (o) => get(o) !== value : (o) => get(o) === value;
  });
  return (o) => reqs.every((r) => r(o));
}

function fieldGetter(def: ResourceDef, field: string): ((o: KubeObject) => string) | undefined {
  if (field === 'metadata.name') return (o) => o.metadata.name ?? '';
  if (field === 'metadata.namespace') return (o) => o.metadata.namespace ?? '';
  return def.fields[field];
}
