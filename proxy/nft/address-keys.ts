// The mirror's copy of a plain set's keys (mirror.ts), which are mostly one IPv4 address: the
// cluster IPs, and the hairpin set's (SetState.twice: held once). At 50,000 Services the hairpin
// set alone holds ~250,000 keys, and inserting fresh address strings into a JS Map was the largest
// single cost of the mirror's load in a full sync (hashing each new string, probing and regrowing a
// table of that size on the V8 heap). Canonical dotted-quad IPv4 keys live here as numbers in an
// open-addressing table outside the heap; any other key (IPv6, a CIDR, text this does not parse)
// goes to an ordinary Set, so the class behaves as a Map<string, ""> for every key.
import { ipv4String, ipv4Word } from '../../common/watch/packed-endpoints.js';

/** A parsed key's slot is free, holds a key, or held one that was deleted (probing goes on past it). */
const FREE = 0;
const FULL = 1;
const GONE = 2;

const MIN_BITS = 4;

/**
 * The key as an unsigned 32-bit number when it is a dotted quad in its one canonical spelling (so
 * the number turns back into the same text), -1 for anything else.
 */
function addressOf(key: string): number {
  const w = ipv4Word(key);
  return w === undefined ? -1 : w >>> 0;
}

export class AddressKeys implements Map<string, string> {
  private bits = MIN_BITS;
  private keys32 = new Uint32Array(1 << MIN_BITS);
  private state = new Uint8Array(1 << MIN_BITS);
  /** Parsed keys held. */
  private held = 0;
  /** Slots that are FULL or GONE: the table grows (or is rebuilt) before they fill it. */
  private used = 0;
  private readonly others = new Set<string>();

  get size(): number {
    return this.held + this.others.size;
  }

  get [Symbol.toStringTag](): string {
    return 'AddressKeys';
  }

  get(key: string): string | undefined {
    const v = addressOf(key);
    const held = v < 0 ? this.others.has(key) : this.find(v) >= 0;
    return held ? '' : undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** A plain set's: every value is "". */
  set(key: string, value: string): this {
    if (value !== '') throw new Error(`AddressKeys holds a plain set's keys, not the value ${JSON.stringify(value)} of ${key}`);
    const v = addressOf(key);
    if (v < 0) {
      this.others.add(key);
      return this;
    }
    if (this.find(v) >= 0) return this;
    if ((this.used + 1) * 4 > this.keys32.length * 3) this.rebuild(this.held + 1);
    const mask = this.keys32.length - 1;
    let i = slotOf(v, this.bits);
    while (this.state[i] === FULL) i = (i + 1) & mask;
    if (this.state[i] === FREE) this.used++;
    this.keys32[i] = v;
    this.state[i] = FULL;
    this.held++;
    return this;
  }

  delete(key: string): boolean {
    const v = addressOf(key);
    if (v < 0) return this.others.delete(key);
    const i = this.find(v);
    if (i < 0) return false;
    this.state[i] = GONE;
    this.held--;
    return true;
  }

  clear(): void {
    this.bits = MIN_BITS;
    this.keys32 = new Uint32Array(1 << MIN_BITS);
    this.state = new Uint8Array(1 << MIN_BITS);
    this.held = 0;
    this.used = 0;
    this.others.clear();
  }

  *keys(): MapIterator<string> {
    const { keys32, state } = this;
    for (let i = 0; i < state.length; i++) if (state[i] === FULL) yield ipv4String(keys32[i]!);
    yield* this.others;
  }

  *entries(): MapIterator<[string, string]> {
    for (const k of this.keys()) yield [k, ''];
  }

  *values(): MapIterator<string> {
    for (let i = this.size; i > 0; i--) yield '';
  }

  [Symbol.iterator](): MapIterator<[string, string]> {
    return this.entries();
  }

  forEach(fn: (value: string, key: string, map: Map<string, string>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }

  private find(v: number): number {
    const { keys32, state } = this;
    const mask = keys32.length - 1;
    for (let i = slotOf(v, this.bits); state[i] !== FREE; i = (i + 1) & mask) if (state[i] === FULL && keys32[i] === v) return i;
    return -1;
  }

  /** A table for `n` keys, half full, without the deleted slots (grown, or rebuilt after many deletions). */
  private rebuild(n: number): void {
    let bits = MIN_BITS;
    while (1 << bits < 2 * n) bits++;
    const oldKeys = this.keys32;
    const oldState = this.state;
    this.bits = bits;
    this.keys32 = new Uint32Array(1 << bits);
    this.state = new Uint8Array(1 << bits);
    this.used = this.held;
    const mask = (1 << bits) - 1;
    for (let j = 0; j < oldState.length; j++) {
      if (oldState[j] !== FULL) continue;
      const v = oldKeys[j]!;
      let i = slotOf(v, bits);
      while (this.state[i] !== FREE) i = (i + 1) & mask;
      this.keys32[i] = v;
      this.state[i] = FULL;
    }
  }
}

/** Fibonacci hashing: consecutive addresses (a pod CIDR's) spread over the table. */
function slotOf(v: number, bits: number): number {
  return Math.imul(v, 0x9e3779b1) >>> (32 - bits);
}
