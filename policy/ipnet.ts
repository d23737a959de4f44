// Address arithmetic for ipBlocks: CIDRs as closed [lo, hi] bigint intervals, so `except` is a
// subtraction and a rule's blocks are one sorted, disjoint list that an nft interval set takes
// without overlaps (the kernel refuses overlapping interval elements).
import { isIP } from 'node:net';

export type Family = 4 | 6;

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

export function familyOf(ip: string): Family | undefined {
  const f = isIP(ip);
  return f === 4 ? 4 : f === 6 ? 6 : undefined;
}

export function ipToBigint(ip: string): bigint {
  if (isIP(ip) === 4) return ip.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n);
  let [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = (s: string): string => {
    const m = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
    if (!m) return s;
    const n = ipToBigint(m[1]!);
    return s.slice(0, m.index) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  };
  head = v4(head!);
  if (tail !== undefined) tail = v4(tail);
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n);
}

export function bigintToIp(n: bigint, family: Family): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((n >> s) & 0xffffn).toString(16));
  // RFC 5952: the longest run (of two or more) of zero groups becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

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
