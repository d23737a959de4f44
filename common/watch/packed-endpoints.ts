// A slice's endpoints as the watch cache holds them. Endpoints are most of the cache at scale
// (500,000 at 50,000 Services), and as objects each cost about 160 bytes: the EndpointInfo, a
// one-element addresses array and the address string. Packed, the usual endpoint (one address,
// no hostname, no hints) is two numbers in one array per slice: its IPv4 address as an integer
// (or the index of its address string), and a word of its conditions and the indexes of its node
// and zone in the slice's table of strings. Anything else is kept as the EndpointInfo itself.
// Readers iterate (`for (const ep of s.endpoints)`) and get each endpoint built on the way, so
// nothing holds them all at steady state.
import type { EndpointInfo, EndpointList } from '../types.js';

const READY = 1;
const SERVING = 2;
const TERMINATING = 4;
/** The address word is an IPv4 address as int32; otherwise it indexes the string table. */
const V4 = 8;
/** The address word indexes `others`: an endpoint of another shape, kept whole. */
const OTHER = 16;
const INDEX_BITS = 12;
const INDEX_MAX = (1 << INDEX_BITS) - 1;
const NODE_SHIFT = 5;
const ZONE_SHIFT = NODE_SHIFT + INDEX_BITS;

export const ENDPOINT_READY = READY;
export const ENDPOINT_SERVING = SERVING;
export const ENDPOINT_TERMINATING = TERMINATING;
/** conditionsAt's answer for an endpoint kept whole. */
export const ENDPOINT_WHOLE = -1;

const NO_STRINGS: readonly string[] = Object.freeze([]);
const NO_OTHERS: readonly EndpointInfo[] = Object.freeze([]);

export class PackedEndpoints implements EndpointList {
  private constructor(
    readonly length: number,
    /** Two per endpoint: address word, then flags and string-table indexes (1-based, 0 = none). */
    private readonly words: readonly number[],
    private readonly strings: readonly string[],
    private readonly others: readonly EndpointInfo[],
  ) {}

  /** Packs a converted slice's endpoints (the converter's output; order kept). */
  static of(endpoints: readonly EndpointInfo[]): PackedEndpoints {
    // Sized once: a grown array keeps up to half again its length as spare room.
    const words: number[] = new Array<number>(2 * endpoints.length);
    const strings: string[] = [];
    const index = new Map<string, number>();
    const others: EndpointInfo[] = [];
    const indexOf = (s: string | undefined): number => {
      if (s === undefined) return 0;
      let i = index.get(s);
      if (i === undefined) {
        if (strings.length >= INDEX_MAX) return -1;
        strings.push(s);
        index.set(s, (i = strings.length));
      }
      return i;
    };
    for (let i = 0; i < endpoints.length; i++) {
      const ep = endpoints[i]!;
      const flags = (ep.ready ? READY : 0) | (ep.serving ? SERVING : 0) | (ep.terminating ? TERMINATING : 0);
      const address = ep.addresses.length === 1 ? ep.addresses[0]! : undefined;
      const v4 = address === undefined ? undefined : ipv4Word(address);
      const node = indexOf(ep.nodeName);
      const zone = indexOf(ep.zone);
      const addr = address === undefined || v4 !== undefined ? 0 : indexOf(address);
      if (address === undefined || ep.hostname !== undefined || ep.hintsForZones !== undefined || node < 0 || zone < 0 || addr < 0) {
        others.push(ep);
        words[2 * i] = others.length - 1;
        words[2 * i + 1] = flags | OTHER;
        continue;
      }
      words[2 * i] = v4 ?? addr;
      words[2 * i + 1] = flags | (v4 === undefined ? 0 : V4) | (node << NODE_SHIFT) | (zone << ZONE_SHIFT);
    }
    return new PackedEndpoints(endpoints.length, words, strings.length === 0 ? NO_STRINGS : strings, others.length === 0 ? NO_OTHERS : others);
  }

  /** The i-th endpoint, built anew (or the kept object, for one of another shape). */
  at(i: number): EndpointInfo | undefined {
    if (i < 0 || i >= this.length) return undefined;
    const a = this.words[2 * i]!;
    const w = this.words[2 * i + 1]!;
    if (w & OTHER) return this.others[a];
    const addresses = [w & V4 ? ipv4String(a) : this.strings[a - 1]!];
    const ready = (w & READY) !== 0;
    const serving = (w & SERVING) !== 0;
    const terminating = (w & TERMINATING) !== 0;
    const node = (w >>> NODE_SHIFT) & INDEX_MAX;
    const zone = (w >>> ZONE_SHIFT) & INDEX_MAX;
    // The same literal shapes as the converter builds (common/watch/convert.ts endpointOf).
    if (zone === 0) return node === 0 ? { addresses, ready, serving, terminating } : { addresses, ready, serving, terminating, nodeName: this.strings[node - 1]! };
    if (node !== 0) return { addresses, ready, serving, terminating, nodeName: this.strings[node - 1]!, zone: this.strings[zone - 1]! };
    return { addresses, ready, serving, terminating, zone: this.strings[zone - 1]! };
  }

  // Readers of only the address, conditions and node of each endpoint (the proxy's desired state:
  // 500,000 endpoints at 50,000 Services) read them here instead of building every endpoint.

  /** The i-th endpoint's ENDPOINT_READY | ENDPOINT_SERVING | ENDPOINT_TERMINATING, or ENDPOINT_WHOLE for one of another shape (read it with at()). */
  conditionsAt(i: number): number {
    const w = this.words[2 * i + 1]!;
    return w & OTHER ? ENDPOINT_WHOLE : w & (READY | SERVING | TERMINATING);
  }

  /** Whether the i-th endpoint (not a whole one) is a dotted-quad IPv4 address. */
  isIPv4At(i: number): boolean {
    return (this.words[2 * i + 1]! & V4) !== 0;
  }

  /** The i-th endpoint's one address (not a whole one's). */
  addressAt(i: number): string {
    const a = this.words[2 * i]!;
    return this.words[2 * i + 1]! & V4 ? ipv4String(a) : this.strings[a - 1]!;
  }

  /** The i-th endpoint's node (not a whole one's), undefined when the slice did not say. */
  nodeNameAt(i: number): string | undefined {
    const node = (this.words[2 * i + 1]! >>> NODE_SHIFT) & INDEX_MAX;
    return node === 0 ? undefined : this.strings[node - 1];
  }

  [Symbol.iterator](): Iterator<EndpointInfo> {
    let i = 0;
    return {
      next: (): IteratorResult<EndpointInfo> => (i < this.length ? { done: false, value: this.at(i++)! } : { done: true, value: undefined }),
    };
  }
}

/** A dotted-quad IPv4 address in its one canonical spelling as int32, or undefined for anything else. */
export function ipv4Word(s: string): number | undefined {
  if (s.length < 7 || s.length > 15) return undefined;
  let word = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return undefined;
      word = (word << 8) | octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      // A leading zero would not come back the same from ipv4String.
      if (digits > 0 && octet === 0) return undefined;
      octet = octet * 10 + (c - 48);
      if (octet > 255 || ++digits > 3) return undefined;
    } else {
      return undefined;
    }
  }
  if (dots !== 3 || digits === 0) return undefined;
  return (word << 8) | octet;
}

export function ipv4String(w: number): string {
  return `${(w >>> 24) & 255}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}`;
}
