// A table as data: chains with their rule text, set/map declarations and elements. The desired
// table, each Service's fragment and the in-memory mirror of what the kernel holds share this
// shape, so a sync is a diff of two of them rendered as one nft transaction.

export interface ChainState {
  /** Base-chain declaration such as "type nat hook output priority -100 ;". */
  readonly hook?: string;
  readonly rules: readonly string[];
  /** Used by several Service ports (the shared tails): created with the first, deleted with the last. */
  readonly shared?: boolean;
}

export interface SetState {
  /** The body between braces, e.g. "type ipv4_addr ; flags interval ;". */
  readonly decl: string;
  readonly kind: 'set' | 'map';
  /** Filled from the packet path (affinity): never flushed by a full sync, elements not tracked. */
  readonly dynamic?: boolean;
  /**
   * `size` of the kernel set, chosen at a full sync from the expected count with headroom: a
   * fixed-size hash loads without resizing, but the kernel refuses elements beyond it.
   */
  readonly capacity?: number;
  /**
   * Each key has one owner by construction (the endpoint maps: keys start with the port's own
   * slot), so the mirror keeps the owners' maps instead of copying ~100,000 elements per full sync.
   */
  readonly unique?: boolean;
  /**
   * The key is a concatenation of one value with itself (the hairpin set's `ip . ip`): the
   * mirror and fragments hold the value once, and it is written twice only on the way out
   * (twiceKey, the element encoder), so a full sync builds no key string per endpoint.
   */
  readonly twice?: boolean;
}

/** The key as nft reads it, for a set whose keys are held once (SetState.twice). */
export function twiceKey(key: string): string {
  return `${key} . ${key}`;
}

/** The declaration as nft reads it: `add set ... { <this> }`. */
export function declOf(s: SetState): string {
  return s.capacity === undefined ? s.decl : `${s.decl} size ${s.capacity} ;`;
}

/** A fixed size for about n elements: room to grow by a quarter and then some before a resize. */
export function capacityFor(n: number): number {
  return 2 ** Math.max(12, Math.ceil(Math.log2(n * 1.25 + 256)));
}

/**
 * A table, or one Service port's fragment of it. Fragments are what a full sync keeps per port
 * (10,000 of them at 10,000 Services), so they hold no empty Map and their elements sit in flat
 * lists: Maps were a third of what a full sync left on the heap for the GC to copy.
 */
export interface TableState {
  readonly chains: Map<string, ChainState>;
  /** Shared and empty until addSet gives the table its own (most fragments declare no set). */
  sets: ReadonlyMap<string, SetState>;
  /** set name -> key -> value ("" for plain sets). */
  readonly elements: Map<string, ReadonlyMap<string, string>>;
}

const NO_SETS: ReadonlyMap<string, SetState> = new Map();

export function emptyTable(): TableState {
  return { chains: new Map(), sets: NO_SETS, elements: new Map() };
}

export function addSet(t: TableState, name: string, s: SetState): void {
  if (t.sets === NO_SETS) t.sets = new Map();
  (t.sets as Map<string, SetState>).set(name, s);
}

export function addElement(t: TableState, set: string, key: string, value = ''): void {
  elementsOf(t, set).set(key, value);
}

/** The set's element list in t, created on first use (for loops adding many elements). */
export function elementsOf(t: TableState, set: string): ElementList {
  const m = t.elements.get(set);
  if (m instanceof ElementList) return m;
  if (m) throw new Error(`${set} is not an ElementList`);
  const fresh = new ElementList();
  t.elements.set(set, fresh);
  return fresh;
}

/** Lookups beyond this many elements go through an index built on first use. */
const SCAN_LIMIT = 16;

/**
 * A set's elements as one flat key, value, key, value array: a fragment holds a handful (its
 * endpoints, its cluster IP), and a Map per set was a large part of a full sync's heap. Lookups
 * are only needed when a partial sync diffs a port's old and new fragment. A port's endpoints
 * are keyed by consecutive numbers (pushRange): then only the values are kept and the keys are
 * written out when read, which saves a string per endpoint for as long as the mirror holds them.
 */
export class ElementList implements ReadonlyMap<string, string> {
  private kv: string[] = EMPTY_KV;
  /** key -> position of its key in kv. */
  private index: Map<string, number> | undefined;
  /** >= 0: kv holds only values, the i-th keyed String(base + i). */
  private base = -1;

  /** A key not in the list yet (distinct by construction, such as a port's endpoint indexes). */
  push(key: string, value: string): void {
    this.unrange();
    if (this.kv === EMPTY_KV) {
      this.kv = [key, value];
      return;
    }
    this.index?.set(key, this.kv.length);
    this.kv.push(key, value);
  }
  /** push() for a flat key, value, ... array, which the list may keep as it is. */
  pushAll(kv: string[]): void {
    if (this.kv === EMPTY_KV && !this.index) this.kv = kv;
    else for (let i = 0; i < kv.length; i += 2) this.push(kv[i]!, kv[i + 1]!);
  }
  /** push() of values keyed base, base + 1, ..., which the list may keep as it is. */
  pushRange(base: number, values: string[]): void {
    if (this.kv === EMPTY_KV && !this.index && values.length) {
      this.base = base;
      this.kv = values;
    } else for (let i = 0; i < values.length; i++) this.push(String(base + i), values[i]!);
  }
  /** Back to key, value pairs (another push into a ranged list; rare). */
  private unrange(): void {
    if (this.base < 0) return;
    const kv: string[] = [];
    for (let i = 0; i < this.kv.length; i++) kv.push(String(this.base + i), this.kv[i]!);
    this.kv = kv;
    this.base = -1;
  }
  /** Adds or overwrites, keeping the key's first position (a Map's set). */
  set(key: string, value: string): this {
    this.unrange();
    const at = this.find(key);
    if (at < 0) this.push(key, value);
    else this.kv[at + 1] = value;
    return this;
  }
  get size(): number {
    return this.base < 0 ? this.kv.length >> 1 : this.kv.length;
  }
  get(key: string): string | undefined {
    if (this.base >= 0) {
      const i = Number(key) - this.base;
      return Number.isInteger(i) && i >= 0 && i < this.kv.length && String(this.base + i) === key ? this.kv[i] : undefined;
    }
    const at = this.find(key);
    return at < 0 ? undefined : this.kv[at + 1];
  }
  private find(key: string): number {
    const kv = this.kv;
    if (kv.length > 2 * SCAN_LIMIT) {
      if (!this.index) {
        this.index = new Map();
        for (let i = 0; i < kv.length; i += 2) this.index.set(kv[i]!, i);
      }
      return this.index.get(key) ?? -1;
    }
    for (let i = 0; i < kv.length; i += 2) if (kv[i] === key) return i;
    return -1;
  }
  has(key: string): boolean {
    return this.get(key) !== undefined;
  }
  /**
   * The first key (an owner's name in the mirror, see Mirror.owned), without an iterator; a ranged
   * list's as the number it is, so no string is made for it.
   */
  firstKey(): string | number | undefined {
    if (this.kv.length === 0) return undefined;
    return this.base >= 0 ? this.base : this.kv[0];
  }
  /**
   * The keys and values alternating, when the list holds them so (not a range): a full sync
   * walks ~1,000,000 elements at 50,000 Services, and the entries() iterator made an array for each.
   */
  flat(): readonly string[] | undefined {
    return this.base < 0 ? this.kv : undefined;
  }
  /**
   * Each element with a ranged list's keys as numbers (base + i), not strings: the encoder takes
   * them as they are (a full sync's ~500,000 endpoint keys at 50,000 Services).
   */
  forEachRaw(fn: (value: string, key: string | number) => void): void {
    const kv = this.kv;
    if (this.base >= 0) for (let i = 0; i < kv.length; i++) fn(kv[i]!, this.base + i);
    else for (let i = 0; i < kv.length; i += 2) fn(kv[i + 1]!, kv[i]!);
  }
  forEach(fn: (value: string, key: string, map: ReadonlyMap<string, string>) => void): void {
    const kv = this.kv;
    if (this.base >= 0) for (let i = 0; i < kv.length; i++) fn(kv[i]!, String(this.base + i), this);
    else for (let i = 0; i < kv.length; i += 2) fn(kv[i + 1]!, kv[i]!, this);
  }
  *entries(): MapIterator<[string, string]> {
    const kv = this.kv;
    if (this.base >= 0) for (let i = 0; i < kv.length; i++) yield [String(this.base + i), kv[i]!];
    else for (let i = 0; i < kv.length; i += 2) yield [kv[i]!, kv[i + 1]!];
  }
  *keys(): MapIterator<string> {
    for (const [k] of this.entries()) yield k;
  }
  *values(): MapIterator<string> {
    for (const [, v] of this.entries()) yield v;
  }
  [Symbol.iterator](): MapIterator<[string, string]> {
    return this.entries();
  }
}

const EMPTY_KV: string[] = [];

export function sameRules(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function sameElements(a: ReadonlyMap<string, string> | undefined, b: ReadonlyMap<string, string> | undefined): boolean {
  const an = a?.size ?? 0;
  if (an !== (b?.size ?? 0)) return false;
  if (an === 0) return true;
  for (const [k, v] of a!) if (b!.get(k) !== v) return false;
  return true;
}
