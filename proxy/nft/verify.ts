// The periodic check: compare `nft -j list table` with the mirror. Chains are compared by name
// and rule count, sets and maps by their elements (keys and values normalised to the text the
// renderer writes); dynamic affinity maps only by existence. Any difference is drift.
import type { Mirror } from './mirror.js';

type Json = unknown;

export function normalize(v: Json): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.map(normalize).join(' . ');
  const o = v as Record<string, Json>;
  if ('concat' in o) return (o.concat as Json[]).map(normalize).join(' . ');
  if ('prefix' in o) {
    const p = o.prefix as { addr: string; len: number };
    return `${p.addr}/${p.len}`;
  }
  if ('range' in o) return (o.range as Json[]).map(normalize).join('-');
  if ('elem' in o) return normalize((o.elem as { val: Json }).val);
  if ('goto' in o) return `goto ${(o.goto as { target: string }).target}`;
  if ('jump' in o) return `jump ${(o.jump as { target: string }).target}`;
  const keys = Object.keys(o);
  if (keys.length === 1 && o[keys[0]!] === null) return keys[0]!;
  return JSON.stringify(o);
}

/** Returns human-readable differences; empty means the kernel matches the mirror. */
export function findDrift(listing: Json, mirror: Mirror, limit = 20): string[] {
  const out: string[] = [];
  const add = (s: string): void => void (out.length < limit && out.push(s));
  if (listing === undefined) return ['table missing'];
  const items = ((listing as { nftables?: Json[] }).nftables ?? []) as Record<string, Record<string, Json>>[];
  const ruleCount = new Map<string, number>();
  const kernelSets = new Map<string, Record<string, Json>>();
  for (const it of items) {
    if (it.chain) ruleCount.set(it.chain.name as string, ruleCount.get(it.chain.name as string) ?? 0);
    else if (it.rule) ruleCount.set(it.rule.chain as string, (ruleCount.get(it.rule.chain as string) ?? 0) + 1);
    else if (it.set) kernelSets.set(it.set.name as string, it.set);
    else if (it.map) kernelSets.set(it.map.name as string, it.map);
  }
  for (const [name, c] of mirror.chains) {
    const n = ruleCount.get(name);
    if (n === undefined) add(`chain ${name} missing`);
    else if (n !== c.rules.length) add(`chain ${name} has ${n} rules, want ${c.rules.length}`);
  }
  for (const name of ruleCount.keys()) if (!mirror.chains.has(name)) add(`unexpected chain ${name}`);
  for (const [name, s] of mirror.sets) {
    const k = kernelSets.get(name);
    if (!k) {
      add(`${s.kind} ${name} missing`);
      continue;
    }
    if (s.dynamic || /flags interval/.test(s.decl)) continue;
    const want = mirror.elementsOf(name);
    const got = new Map<string, string>();
    for (const e of (k.elem as Json[] | undefined) ?? []) {
      if (Array.isArray(e)) got.set(normalize(e[0]), normalize(e[1]));
      else got.set(normalize(e), '');
    }
    for (const [key, value] of want ?? []) {
      const v = got.get(key);
      if (v === undefined) add(`${name}: element ${key} missing`);
      else if (s.kind === 'map' && v !== value) add(`${name}: element ${key} is ${v}, want ${value}`);
    }
    for (const key of got.keys()) if (!want?.has(key)) add(`${name}: unexpected element ${key}`);
  }
  for (const name of kernelSets.keys()) if (!mirror.sets.has(name)) add(`unexpected set ${name}`);
  return out;
}
