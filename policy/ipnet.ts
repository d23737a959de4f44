// Address arithmetic for ipBlocks: CIDRs as closed [lo, hi] bigint intervals, so `except` is a
// subtraction and a rule's blocks are one sorted, disjoint list that an nft interval set takes
// without overlaps (the kernel refuses overlapping interval elements).
import { bigintToIp, familyOf, ipToBigint, type Family } from '../common/ipaddr.js';

export { bigintToIp, familyOf, ipToBigint, type Family };

export interface Interval {
  readonly lo: bigint;
  readonly hi: bigint;
}

export interface Cidr {
  readonly family: Family;
  readonly lo: bigint;
  readonly hi: bigint;
  readonly prefix: number;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

/** Parses "a.b.c.d/n" or "x::/n"; undefined when malformed. Host bits set are accepted (as the API does) and cleared. */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = s.slice(0, slash);
  const family = familyOf(ip);
  const bitsText = s.slice(slash + 1);
  if (!family || !/^\d{1,3}$/.test(bitsText)) return undefined;
  const prefix = Number(bitsText);
  const bits = BITS[family];
  if (prefix > bits) return undefined;
  const size = 1n << BigInt(bits - prefix);
  const lo = (ipToBigint(ip) / size) * size;
  return { family, lo, hi: lo + size - 1n, prefix };
}

/** Sorted, disjoint, merged (adjacent intervals join). */
export function normalize(list: readonly Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const out: Interval[] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    if (last && iv.lo <= last.hi + 1n) {
      if (iv.hi > last.hi) out[out.length - 1] = { lo: last.lo, hi: iv.hi };
    } else out.push(iv);
  }
  return out;
}

/** a minus b; both normalized. */
export function subtract(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const iv of a) {
    let lo = iv.lo;
    for (const cut of b) {
      if (cut.hi < lo || cut.lo > iv.hi) continue;
      if (cut.lo > lo) out.push({ lo, hi: cut.lo - 1n });
      lo = cut.hi + 1n;
      if (lo > iv.hi) break;
    }
    if (lo <= iv.hi) out.push({ lo, hi: iv.hi });
  }
  return out;
}

/** The fewest CIDRs covering exactly [lo, hi], as text. */
export function intervalToCidrs(iv: Interval, family: Family): string[] {
  const bits = BITS[family];
  const out: string[] = [];
  let lo = iv.lo;
  while (lo <= iv.hi) {
    let size = 0;
    while (size < bits && (lo & ((1n << BigInt(size + 1)) - 1n)) === 0n && lo + (1n << BigInt(size + 1)) - 1n <= iv.hi) size++;
    out.push(`${bigintToIp(lo, family)}/${bits - size}`);
    lo += 1n << BigInt(size);
  }
  return out;
}

export function contains(list: readonly Interval[], n: bigint): boolean {
  for (const iv of list) if (n >= iv.lo && n <= iv.hi) return true;
  return false;
}
