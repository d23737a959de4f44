// Reading raw API JSON field by field: each helper names the field it failed on, so a malformed
// object is reported with its path and skipped (see convert.ts).
import type { Protocol } from '../types.js';

export class ConvertError extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'ConvertError';
  }
}

export type Json = Record<string, unknown>;

export function protocol(v: unknown, field: string): Protocol {
  const p = optStr(v, field) ?? 'TCP';
  if (p !== 'TCP' && p !== 'UDP' && p !== 'SCTP') throw new ConvertError(field, `unknown protocol "${p}"`);
  return p;
}

// Optional fields are left out rather than set to undefined, so deep equality between two
// conversions of the same object never depends on how a field went missing. Copying the defined
// keys (instead of `delete`) keeps V8's fast object shapes: 100,000 endpoints notice.
export function defined<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const k in o) if (o[k] !== undefined) out[k] = o[k];
  return out as T;
}

export function fail(field: string, reason: string): never {
  throw new ConvertError(field, reason);
}
export function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
export function obj(v: unknown, field: string): Json {
  if (v === undefined || v === null) return {};
  return isObj(v) ? v : fail(field, 'must be an object');
}
export function arr(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : fail(field, 'must be a list');
}
export function str(v: unknown, field: string): string {
  return typeof v === 'string' ? v : fail(field, v === undefined ? 'missing' : 'must be a string');
}
export function optStr(v: unknown, field: string): string | undefined {
  return v === undefined || v === null ? undefined : str(v, field);
}
export function optInt(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  return Number.isInteger(v) ? (v as number) : fail(field, 'must be an integer');
}
export function int(v: unknown, field: string): number {
  return optInt(v, field) ?? fail(field, 'missing');
}
export function optBool(v: unknown, field: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  return typeof v === 'boolean' ? v : fail(field, 'must be a boolean');
}
export function strArr(v: unknown, field: string): string[] {
  return arr(v, field).map((s, i) => str(s, `${field}[${i}]`));
}
export function strMap(v: unknown, field: string): Record<string, string> {
  const o = obj(v, field);
  for (const [k, s] of Object.entries(o)) if (typeof s !== 'string') fail(`${field}.${k}`, 'must be a string');
  return o as Record<string, string>;
}

/**
 * Equal values share one copy. Pods of one workload carry the same labels and ports, every pod
 * and endpoint repeats its node name and zone, slices of a Service repeat its ports; JSON gives
 * each object its own copies. Sharing them keeps 150,000 pods near half the heap
 * (bench/policy-pods.ts). The table is only a cache: when it fills it starts over, and values
 * already shared stay correct.
 */
export class Interner<T> {
  private table = new Map<string, T>();
  constructor(private readonly max: number) {}
  get(key: string, value: T): T {
    const hit = this.table.get(key);
    if (hit !== undefined) return hit;
    if (this.table.size >= this.max) this.table = new Map();
    this.table.set(key, value);
    return value;
  }
}
