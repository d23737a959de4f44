// The desired state of a full sync, computed Service by Service while the dataplane iterates it,
// so the first elements reach nft while later Services are still being computed (at 10,000
// Services that computation is a quarter of a cold full sync). Each key is computed once.
import type { ServicePort } from './model.js';

export class ComputedServices implements ReadonlyMap<string, readonly ServicePort[]> {
  private readonly keyList: ReadonlySet<string>;
  private readonly done = new Map<string, readonly ServicePort[]>();

  /** `keys` is kept, not copied, when it is a Set: the caller hands it over. */
  constructor(
    keys: Iterable<string>,
    private readonly compute: (key: string) => readonly ServicePort[],
  ) {
    this.keyList = keys instanceof Set ? keys : new Set(keys);
  }

  /** Every key's ports, [] for the ones that have none (computing whatever is left). */
  all(): ReadonlyMap<string, readonly ServicePort[]> {
    for (const k of this.keyList) this.portsOf(k);
    return this.done;
  }

  private portsOf(key: string): readonly ServicePort[] {
    let p = this.done.get(key);
    if (p === undefined) this.done.set(key, (p = this.compute(key)));
    return p;
  }

  // ReadonlyMap: keys without ports are absent, as in a plain map of the desired state.
  get(key: string): readonly ServicePort[] | undefined {
    if (!this.keyList.has(key)) return undefined;
    const p = this.portsOf(key);
    return p.length ? p : undefined;
  }
  has(key: string): boolean {
    return this.get(key) !== undefined;
  }
  get size(): number {
    let n = 0;
    for (const p of this.all().values()) if (p.length) n++;
    return n;
  }
  *entries(): MapIterator<[string, readonly ServicePort[]]> {
    for (const k of this.keyList) {
      const p = this.portsOf(k);
      if (p.length) yield [k, p];
    }
  }
  *keys(): MapIterator<string> {
    for (const [k] of this.entries()) yield k;
  }
  *values(): MapIterator<readonly ServicePort[]> {
    for (const [, p] of this.entries()) yield p;
  }
  forEach(fn: (value: readonly ServicePort[], key: string, map: ReadonlyMap<string, readonly ServicePort[]>) => void): void {
    for (const [k, p] of this.entries()) fn(p, k, this);
  }
  [Symbol.iterator](): MapIterator<[string, readonly ServicePort[]]> {
    return this.entries();
  }
}
