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
  readonly elements: Map<string, Map<string, string>>;
}

export function emptyTable(): TableState {
  return { chains: new Map(), sets: new Map(), elements: new Map() };
}

export function addElement(t: TableState, set: string, key: string, value = ''): void {
  let m = t.elements.get(set);
  if (!m) t.elements.set(set, (m = new Map()));
  m.set(key, value);
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
