// Address arithmetic on bigints so IPv4 and IPv6 share one code path.
import { isIP } from 'node:net';

export interface IPRange {
  readonly family: 4 | 6;
  readonly cidr: string;
  readonly network: bigint;
  readonly prefix: number;
  /** First address handed to pods (the one after the gateway). */
  readonly first: bigint;
  /** Last address handed to pods (the IPv4 broadcast and the IPv6 last address are skipped). */
  readonly last: bigint;
  readonly gateway: bigint;
}

export function parseIP(s: string): { family: 4 | 6; value: bigint } {
  const fam = isIP(s);
  if (fam === 4) {
    const v = s.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
    return { family: 4, value: v };
  }
  if (fam === 6) {
    let text = s;
    // An embedded dotted quad (::ffff:1.2.3.4) becomes two hex groups.
    const m = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
    if (m) {
      const v4 = parseIP(m[1]!).value;
      text = text.slice(0, m.index) + `${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
    }
    const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    const v = groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
    return { family: 6, value: v };
  }
  throw new Error(`not an IP address: ${s}`);
}

export function formatIP(v: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => ((v >> s) & 255n).toString()).join('.');
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups, as RFC 5952 asks.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export function parseRange(cidr: string): IPRange {
  const [addr, bitsText] = cidr.split('/');
  const { family, value } = parseIP(addr!);
  const prefix = Number(bitsText);
  const width = family === 4 ? 32 : 128;
  const size = 1n << BigInt(width - prefix);
  const network = value & ~(size - 1n) & ((1n << BigInt(width)) - 1n);
  return { family, cidr: `${formatIP(network, family)}/${prefix}`, network, prefix, gateway: network + 1n, first: network + 2n, last: network + size - 2n };
}

export function contains(r: IPRange, ip: bigint): boolean {
  return ip >= r.network && ip <= r.last + 1n;
}
