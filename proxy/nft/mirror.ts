// The in-memory mirror of the table skiff last wrote. Normal syncs never read the ruleset back:
// they diff a Service's old and new fragments against this mirror and emit only changed chains
// and element adds/deletes. Elements are reference-counted because Services share some of them
// (a cluster IP with several ports, a pod IP behind several Services in the hairpin set).
import { AddressKeys } from './address-keys.js';
import type { ElementChunk } from './elements.js';
import { declOf, ElementList, sameElements, sameRules, twiceKey, type ChainState, type SetState, type TableState } from './state.js';

/** nft parses a few hundred elements per command slightly faster than thousands (measured). */
const ELEMENTS_PER_COMMAND = 500;

const PHASES = ['addSet', 'addChain', 'rules', 'flushSet', 'delElem', 'addElem', 'delChain', 'delSet'] as const;
type Phase = (typeof PHASES)[number];

/** One nft transaction being built; phases keep references valid (objects exist before use). */
export class Txn {
  private readonly lines = new Map<Phase, string[]>(PHASES.map((p) => [p, []]));
  private readonly elemAdds = new Map<string, string[]>();
  private readonly elemDels = new Map<string, string[]>();
  private readonly chainDels = new Set<string>();
  /** Sets whose keys are held once and written twice (SetState.twice). */
  readonly twice = new Set<string>();
  constructor(private readonly prefix: string) {}

  push(phase: Phase, line: string): void {
    this.lines.get(phase)!.push(line);
  }
  /** value "" for a set's element. */
  addElem(set: string, key: string, value: string): void {
    let a = this.elemAdds.get(set);
    if (!a) this.elemAdds.set(set, (a = []));
    a.push(key, value);
  }
  delElem(set: string, key: string): void {
    let a = this.elemDels.get(set);
    if (!a) this.elemDels.set(set, (a = []));
    a.push(key);
  }
  /** Chain deletions go last (after the elements that jump there), and can be withdrawn. */
  deleteChain(name: string): void {
    this.chainDels.add(name);
  }
  undelete(name: string): boolean {
    return this.chainDels.delete(name);
  }
  get empty(): boolean {
    return this.elemAdds.size === 0 && this.elemDels.size === 0 && this.chainDels.size === 0 && [...this.lines.values()].every((l) => l.length === 0);
  }

  /**
   * A transaction of element changes only (what most Service and endpoint updates are), for a
   * netlink batch (elements.ts). Undefined when it also changes chains, rules or sets.
   */
  elementChanges(): ElementChunk | undefined {
    if (this.chainDels.size > 0 || [...this.lines.values()].some((l) => l.length > 0)) return undefined;
    return { targets: [], deletes: this.elemDels, items: this.elemAdds, twice: this.twice };
  }

  text(): string {
    const out: string[] = [];
    const elems = (verb: string, m: Map<string, string[]>, pairs: boolean): void => {
      for (const [set, a] of m) {
        const key = this.twice.has(set) ? twiceKey : (k: string): string => k;
        const items = pairs ? a.flatMap((k, i) => (i % 2 ? [] : [a[i + 1] === '' ? key(k) : `${key(k)} : ${a[i + 1]}`])) : a.map(key);
        for (let i = 0; i < items.length; i += ELEMENTS_PER_COMMAND) out.push(`${verb} element ${this.prefix} ${set} { ${items.slice(i, i + ELEMENTS_PER_COMMAND).join(', ')} }`);
      }
    };
    for (const p of PHASES) {
      if (p === 'delElem') elems('delete', this.elemDels, false);
      else if (p === 'addElem') elems('add', this.elemAdds, true);
      else if (p === 'delChain') {
        // Flushed first: a chain still jumped to by another chain deleted in the same batch is busy.
        for (const c of this.chainDels) out.push(`flush chain ${this.prefix} ${c}`);
        for (const c of this.chainDels) out.push(`delete chain ${this.prefix} ${c}`);
      }
      else out.push(...this.lines.get(p)!);
    }
    return out.length ? out.join('\n') + '\n' : '';
  }
}

export class Mirror {
  readonly chains = new Map<string, ChainState>();
  readonly sets = new Map<string, SetState>();
  /**
   * set -> key -> value; the values shared by several owners also count in `shared`. A `unique`
   * set has an empty map here (keeping the sets' order) and its elements in `owned`.
   */
  private readonly elements = new Map<string, Map<string, string>>();
  /**
   * `unique` set -> the owners' element maps (never changed after they are handed over), each
   * under its first key: keys have one owner, so that names the owner, and an owner's old map
   * leaves by content (the dataplane renders it again) rather than by identity.
   */
  private readonly owned = new Map<string, OwnedElements>();
  /** set -> key -> owners beyond the first; kept apart so the common single-owner case allocates nothing. */
  private readonly shared = new Map<string, Map<string, number>>();
  /** Shared chain -> number of fragments using it. */
  private readonly chainRefs = new Map<string, number>();
  /**
   * What load() needs of a set, found once rather than per fragment (~7 sets in each of 50,000);
   * dropped whenever a declaration changes.
   */
  private readonly loading = new Map<string, LoadTarget>();

  /** "ip skiff" */
  constructor(readonly prefix: string) {}

  clear(): void {
    this.chains.clear();
    this.sets.clear();
    this.elements.clear();
    this.loading.clear();
    this.owned.clear();
    this.shared.clear();
    this.chainRefs.clear();
  }

  /**
   * Adds a fragment without a transaction (building the state a full sync writes). `onElement`
   * sees each element the mirror did not hold yet, and each whose value an owner overrode.
   */
  load(frag: TableState, onElement?: ElementSink): void {
    for (const [n, c] of frag.chains) {
      if (c.shared) this.chainRefs.set(n, (this.chainRefs.get(n) ?? 0) + 1);
      this.chains.set(n, c);
    }
    for (const [n, s] of frag.sets) this.sets.set(n, s);
    if (frag.sets.size > 0) this.loading.clear();
    // The single-owner case inline: a full sync adds ~130,000 elements at 10,000 Services.
    for (const [set, m] of frag.elements) {
      const { mine, own, plain } = this.loadTarget(set);
      if (own) {
        own.add(m);
        if (!onElement) continue;
        if (m instanceof ElementList) m.forEachRaw((v, k) => onElement(set, k, v, false));
        else m.forEach((v, k) => onElement(set, k, v, false));
        continue;
      }
      const kv = m instanceof ElementList ? m.flat() : undefined;
      if (!kv) {
        for (const [k, v] of m) this.loadOne(mine, set, k, v, onElement);
        continue;
      }
      if (!plain) {
        for (let i = 0; i < kv.length; i += 2) this.loadOne(mine, set, kv[i]!, kv[i + 1]!, onElement);
        continue;
      }
      // A plain set's values are all "": setting a held key changes nothing, so one hash lookup
      // tells a new key (the size grew) from another owner's (~550,000 at 50,000 Services).
      for (let i = 0; i < kv.length; i += 2) {
        const k = kv[i]!;
        const before = mine.size;
        mine.set(k, '');
        if (mine.size !== before) onElement?.(set, k, '', false);
        else this.incRef(set, k, '');
      }
    }
  }

  private loadTarget(set: string): LoadTarget {
    let t = this.loading.get(set);
    if (t) return t;
    const mine = this.elementMap(set);
    t = { mine, own: this.ownedOf(set), plain: this.sets.get(set)?.kind === 'set' };
    this.loading.set(set, t);
    return t;
  }

  private loadOne(mine: Map<string, string>, set: string, k: string, v: string, onElement: ElementSink | undefined): void {
    // One lookup for the common case; values are never undefined.
    if (mine.get(k) === undefined) {
      mine.set(k, v);
      if (onElement) onElement(set, k, v, false);
      return;
    }
    const r = this.incRef(set, k, v);
    if (r === CHANGED && onElement) onElement(set, k, v, true);
  }

  /** Names of the sets holding elements, in the order they first got one. */
  elementSets(): IterableIterator<string> {
    return this.elements.keys();
  }

  /** The set's elements (key -> value, "" in plain sets) as nft writes them; a copy for a `unique` or `twice` set. */
  elementsOf(set: string): ReadonlyMap<string, string> | undefined {
    if (!this.owned.has(set) && !this.isTwice(set)) return this.elements.get(set);
    if (!this.elements.has(set)) return undefined;
    return new Map(this.entriesOf(set));
  }

  /** The set's keys are held once and written twice (SetState.twice). */
  isTwice(set: string): boolean {
    return this.sets.get(set)?.twice === true;
  }

  /** Number of elements in a set. */
  sizeOf(set: string): number {
    return this.owned.get(set)?.size ?? this.elements.get(set)?.size ?? 0;
  }

  /** Every element of a set as nft writes it, without copying. */
  *entriesOf(set: string): IterableIterator<[string, string]> {
    const own = this.owned.get(set);
    if (!own) {
      const m = this.elements.get(set);
      if (!m) return;
      if (!this.isTwice(set)) yield* m;
      else for (const [k, v] of m) yield [twiceKey(k), v];
      return;
    }
    for (const m of own.maps.values()) yield* m;
  }

  /** Sets holding more elements than their kernel size allows (after a partial sync grew them). */
  overfull(): string[] {
    const out: string[] = [];
    for (const [name, s] of this.sets) if (s.capacity !== undefined && this.sizeOf(name) > s.capacity) out.push(name);
    return out;
  }

  /** Drops the fixed sizes: the next fullText declares sets that grow as needed. */
  unsize(): void {
    this.loading.clear();
    for (const [name, s] of this.sets) {
      if (s.capacity !== undefined) this.sets.set(name, { kind: s.kind, decl: s.decl, ...(s.dynamic ? { dynamic: true } : {}), ...(s.unique ? { unique: true } : {}), ...(s.twice ? { twice: true } : {}) });
    }
  }

  /** The whole mirror as one transaction that replaces the table atomically. */
  fullText(): string {
    const p = this.prefix;
    const out = [`add table ${p}`, `delete table ${p}`, `add table ${p} { comment "skiff service proxy" ; }`];
    for (const [n, s] of this.sets) out.push(`add ${s.kind} ${p} ${n} { ${declOf(s)} }`);
    for (const [n, c] of this.chains) out.push(c.hook ? `add chain ${p} ${n} { ${c.hook} }` : `add chain ${p} ${n}`);
    for (const [n, c] of this.chains) for (const r of c.rules) out.push(`add rule ${p} ${n} ${r}`);
    for (const set of this.elements.keys()) {
      const isMap = this.sets.get(set)?.kind === 'map';
      // Built by appending: the full table has ~130,000 elements at 10,000 Services.
      let line = '';
      let n = 0;
      for (const [k, v] of this.entriesOf(set)) {
        line += n === 0 ? `add element ${p} ${set} { ` : ', ';
        line += isMap ? `${k} : ${v}` : k;
        if (++n === ELEMENTS_PER_COMMAND) {
          out.push(line + ' }');
          line = '';
          n = 0;
        }
      }
      if (n > 0) out.push(line + ' }');
    }
    return out.join('\n') + '\n';
  }

  /** Moves the mirror from `old` to `next` for one owner and records the kernel commands in txn. */
  replace(old: TableState | undefined, next: TableState | undefined, txn: Txn): void {
    const p = this.prefix;
    const o = old ?? EMPTY;
    const n = next ?? EMPTY;
    if (n.sets.size > 0 || o.sets.size > 0) this.loading.clear();
    for (const [name, s] of n.sets) {
      if (!o.sets.has(name)) txn.push('addSet', `add ${s.kind} ${p} ${name} { ${declOf(s)} }`);
      this.sets.set(name, s);
    }
    for (const [name, c] of n.chains) {
      const prev = o.chains.get(name);
      if (c.shared) {
        // A shared chain's rules are fixed by its name: only its first user creates it, and a
        // deletion queued earlier in this transaction (its last user left) is simply withdrawn.
        if (prev) continue;
        const refs = this.chainRefs.get(name) ?? 0;
        this.chainRefs.set(name, refs + 1);
        if (refs > 0) continue;
        this.chains.set(name, c);
        if (txn.undelete(name)) continue;
      }
      if (!prev) txn.push('addChain', `add chain ${p} ${name}`);
      else if (sameRules(prev.rules, c.rules)) continue;
      else txn.push('rules', `flush chain ${p} ${name}`);
      for (const r of c.rules) txn.push('rules', `add rule ${p} ${name} ${r}`);
      this.chains.set(name, c);
    }
    for (const [name, c] of o.chains) {
      if (n.chains.has(name)) continue;
      if (c.shared) {
        const refs = (this.chainRefs.get(name) ?? 1) - 1;
        if (refs > 0) {
          this.chainRefs.set(name, refs);
          continue;
        }
        this.chainRefs.delete(name);
      }
      txn.deleteChain(name);
      this.chains.delete(name);
    }
    // Stored affinity indexes point into the old endpoint list: forget them when it changes.
    if (!sameAffinityEndpoints(o, n)) {
      for (const [name, s] of n.sets) if (s.dynamic && o.sets.has(name)) txn.push('flushSet', `flush ${s.kind} ${p} ${name}`);
    }
    for (const name of o.sets.keys()) {
      if (n.sets.has(name)) continue;
      txn.push('delSet', `delete ${o.sets.get(name)!.kind} ${p} ${name}`);
      this.sets.delete(name);
    }
    for (const set of o.elements.keys()) if (this.isTwice(set)) txn.twice.add(set);
    for (const set of n.elements.keys()) if (this.isTwice(set)) txn.twice.add(set);
    for (const [set, m] of o.elements) {
      const nm = n.elements.get(set);
      if (this.ownedOf(set)) {
        this.disown(set, m, nm, txn);
        continue;
      }
      for (const [k, v] of m) if (nm?.get(k) !== v) this.decRef(set, k, txn);
    }
    for (const [set, m] of n.elements) {
      const om = o.elements.get(set);
      const own = this.ownedOf(set);
      if (own) {
        if (!this.elements.has(set)) this.elements.set(set, new Map());
        own.add(m);
        for (const [k, v] of m) if (om?.get(k) !== v) txn.addElem(set, k, v);
        continue;
      }
      for (const [k, v] of m) if (om?.get(k) !== v) this.incRef(set, k, v, txn);
    }
  }

  /** The owned elements of a `unique` set (undefined for others), created on first use. */
  private ownedOf(set: string): OwnedElements | undefined {
    let own = this.owned.get(set);
    if (own || !this.sets.get(set)?.unique) return own;
    this.owned.set(set, (own = new OwnedElements()));
    return own;
  }

  /** An owner's old map leaves a `unique` set; keys it no longer has (or whose value changed) are deleted. */
  private disown(set: string, old: ReadonlyMap<string, string>, next: ReadonlyMap<string, string> | undefined, txn: Txn): void {
    if (!this.owned.get(set)!.remove(old)) return;
    for (const [k, v] of old) {
      const nv = next?.get(k);
      // A changed value is deleted and added (the add comes from the new map).
      if (nv !== v) txn.delElem(set, k);
    }
  }

  /** The set's element map, created on first use (a plain set's keys in AddressKeys: most are addresses). */
  private elementMap(set: string): Map<string, string> {
    let m = this.elements.get(set);
    if (m) return m;
    m = this.sets.get(set)?.kind === 'set' ? new AddressKeys() : new Map<string, string>();
    this.elements.set(set, m);
    return m;
  }

  private incRef(set: string, key: string, value: string, txn?: Txn): Added {
    const m = this.elementMap(set);
    const prev = m.get(key);
    if (prev === undefined) {
      m.set(key, value);
      txn?.addElem(set, key, value);
      return NEW;
    }
    let sh = this.shared.get(set);
    if (!sh) this.shared.set(set, (sh = new Map()));
    sh.set(key, (sh.get(key) ?? 0) + 1);
    if (prev === value) return SAME;
    // Two owners disagree (e.g. a duplicated cluster IP); the latest write wins.
    m.set(key, value);
    txn?.delElem(set, key);
    txn?.addElem(set, key, value);
    return CHANGED;
  }

  private decRef(set: string, key: string, txn: Txn): void {
    const m = this.elements.get(set);
    if (!m || !m.has(key)) return;
    const sh = this.shared.get(set);
    const extra = sh?.get(key);
    if (extra !== undefined) {
      if (extra > 1) sh!.set(key, extra - 1);
      else sh!.delete(key);
      return;
    }
    m.delete(key);
    txn.delElem(set, key);
  }
}

interface LoadTarget {
  readonly mine: Map<string, string>;
  readonly own: OwnedElements | undefined;
  /** A set, not a map: every value is "". */
  readonly plain: boolean;
}

class OwnedElements {
  /**
   * Under each owner's first key, a number for a ranged list (no string per owner). An owner's map
   * leaves in the form it came in: a port's fragment is rendered the same way from the same input.
   */
  readonly maps = new Map<string | number, ReadonlyMap<string, string>>();
  size = 0;

  add(m: ReadonlyMap<string, string>): void {
    const first = ownerKey(m);
    if (first === undefined) return;
    const prev = this.maps.get(first);
    if (prev) this.size -= prev.size;
    this.maps.set(first, m);
    this.size += m.size;
  }
  /** False when no owner's map starts with the same key. */
  remove(m: ReadonlyMap<string, string>): boolean {
    const first = ownerKey(m);
    const prev = first === undefined ? undefined : this.maps.get(first);
    if (!prev) return false;
    this.maps.delete(first!);
    this.size -= prev.size;
    return true;
  }
}

/** A map's first key; a ranged list's is its number (no string made for it). */
function ownerKey(m: ReadonlyMap<string, string>): string | number | undefined {
  if (m instanceof ElementList) return m.firstKey();
  for (const k of m.keys()) return k;
  return undefined;
}

const EMPTY: TableState = { chains: new Map(), sets: new Map(), elements: new Map() };

const SAME = 0;
const NEW = 1;
const CHANGED = 2;
type Added = typeof SAME | typeof NEW | typeof CHANGED;

/**
 * Receives elements as a full sync builds the mirror; `replaced` when it overrides an earlier
 * value. A number key is an endpoint map's `slot | index` (never `replaced`), as nft writes it in decimal.
 */
export type ElementSink = (set: string, key: string | number, value: string, replaced: boolean) => void;

/** The map affinity ports' endpoints live in carries a generation suffix; a fragment holds at most one. */
function sameAffinityEndpoints(o: TableState, n: TableState): boolean {
  const pick = (t: TableState): ReadonlyMap<string, string> | undefined => {
    for (const [name, m] of t.elements) if (name.startsWith('endpoint-pairs')) return m;
    return undefined;
  };
  return sameElements(pick(o), pick(n));
}
