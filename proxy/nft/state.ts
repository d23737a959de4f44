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
}

/** The declaration as nft reads it: `add set ... { <this> }`. */
export function declOf(s: SetState): string {
  return s.capacity === undefined ? s.decl : `${s.decl} size ${s.capacity} ;`;
}

/** A fixed size for about n elements: room to grow by a quarter and then some before a resize. */
export function capacityFor(n: number): number {
  return 2 ** Math.max(12, Math.ceil(Math.log2(n * 1.25 + 256)));
}

export interface TableState {
  readonly chains: Map<string, ChainState>;
  readonly sets: Map<string, SetState>;
  /** set name -> key -> value ("" for plain sets). */
  readonly elements: Map<string, Map<string, string> | ElementList>;
}

export function emptyTable(): TableState {
  return { chains: new Map(), sets: new Map(), elements: new Map() };
}

export function addElement(t: TableState, set: string, key: string, value = ''): void {
  elementsOf(t, set).set(key, value);
}

/** The set's element map in t, created on first use (for loops adding many elements). */
export function elementsOf(t: TableState, set: string): Map<string, string> {
  const m = t.elements.get(set);
  if (m instanceof Map) return m;
  if (m) throw new Error(`${set} holds an ElementList`);
  const fresh = new Map<string, string>();
  t.elements.set(set, fresh);
  return fresh;
}

/** Lookups beyond this many elements go through an index built on first use. */
const SCAN_LIMIT = 16;

/**
 * Elements whose keys are distinct by construction (a port's endpoints: `mark . index`), as one
 * flat key, value, key, value array. A Map per port was a large part of a full sync's garbage;
 * lookups are only needed when a partial sync diffs a port's old and new fragment.
 */
export class ElementList implements ReadonlyMap<string, string> {
  private readonly kv: string[] = [];
  private index: Map<string, string> | undefined;

  /** While rendering only: the list is not changed after it leaves the renderer. */
  push(key: string, value: string): void {
    this.kv.push(key, value);
  }
  get size(): number {
    return this.kv.length >> 1;
  }
  get(key: string): string | undefined {
    const kv = this.kv;
    if (kv.length > 2 * SCAN_LIMIT) return (this.index ??= new Map(this)).get(key);
    for (let i = 0; i < kv.length; i += 2) if (kv[i] === key) return kv[i + 1];
    return undefined;
  }
  has(key: string): boolean {
    return this.get(key) !== undefined;
  }
  forEach(fn: (value: string, key: string, map: ReadonlyMap<string, string>) => void): void {
    const kv = this.kv;
    for (let i = 0; i < kv.length; i += 2) fn(kv[i + 1]!, kv[i]!, this);
  }
  *entries(): MapIterator<[string, string]> {
    const kv = this.kv;
    for (let i = 0; i < kv.length; i += 2) yield [kv[i]!, kv[i + 1]!];
  }
  *keys(): MapIterator<string> {
    for (let i = 0; i < this.kv.length; i += 2) yield this.kv[i]!;
  }
  *values(): MapIterator<string> {
    for (let i = 1; i < this.kv.length; i += 2) yield this.kv[i]!;
  }
  [Symbol.iterator](): MapIterator<[string, string]> {
    return this.entries();
  }
}

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
