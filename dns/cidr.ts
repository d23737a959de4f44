// Address-in-prefix tests for the source ACL and for deciding which reverse names are ours.
// Addresses become BigInts once per call; the lists are short (a handful of CIDRs).
import { isIPv4, isIPv6 } from 'node:net';
import { ipv6Groups } from './wire/encode.js';

export interface Prefix {
  readonly v6: boolean;
  readonly base: bigint;
  readonly mask: bigint;
}

export function ipToBigInt(ip: string): { v6: boolean; n: bigint } | undefined {
  if (ip.startsWith('::ffff:') && isIPv4(ip.slice(7))) ip = ip.slice(7);
  if (isIPv4(ip)) {
    const [a, b, c, d] = ip.split('.').map(Number) as [number, number, number, number];
    return { v6: false, n: BigInt(((a << 24) >>> 0) + (b << 16) + (c << 8) + d) };
  }
  if (isIPv6(ip)) {
    let n = 0n;
    for (const g of ipv6Groups(ip.split('%')[0]!)) n = (n << 16n) | BigInt(g);
    return { v6: true, n };
  }
  return undefined;
}

export function parsePrefix(cidr: string): Prefix {
  const [addr, bitsText] = cidr.split('/');
  const a = ipToBigInt(addr ?? '');
  if (!a) throw new Error(`bad CIDR ${cidr}`);
  const width = a.v6 ? 128n : 32n;
  const bits = BigInt(bitsText === undefined ? width : Number(bitsText));
  const all = (1n << width) - 1n;
  const mask = all ^ ((1n << (width - bits)) - 1n);
  return { v6: a.v6, base: a.n & mask, mask };
}

export class PrefixSet {
  private readonly prefixes: Prefix[];
  constructor(cidrs: readonly string[]) {
    this.prefixes = cidrs.map(parsePrefix);
  }
  has(ip: string): boolean {
    const a = ipToBigInt(ip);
    if (!a) return false;
    for (const p of this.prefixes) if (p.v6 === a.v6 && (a.n & p.mask) === p.base) return true;
    return false;
  }
}

/** One spelling per address (RFC 5952 for IPv6), so map keys from the API and from PTR names agree. */
export function normalizeIP(ip: string): string {
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip)) return ip;
  const g = ipv6Groups(ip);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** The address a reverse name stands for, or undefined when it is not a full in-addr/ip6.arpa name. */
export function reverseToIP(qname: string): string | undefined {
  if (qname.endsWith('.in-addr.arpa')) {
    const parts = qname.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) < 256)) return undefined;
    return parts.reverse().map(Number).join('.');
  }
  if (qname.endsWith('.ip6.arpa')) {
    const parts = qname.slice(0, -'.ip6.arpa'.length).split('.');
    if (parts.length !== 32 || !parts.every((p) => /^[0-9a-f]$/.test(p))) return undefined;
    const hex = parts.reverse().join('');
    const groups: string[] = [];
    for (let i = 0; i < 32; i += 4) groups.push(hex.slice(i, i + 4));
    return normalizeIP(groups.join(':'));
  }
  return undefined;
}
