// IP addresses as bigints, so IPv4 and IPv6 share one code path in every component that does
// address arithmetic (IPAM ranges in cni/, ipBlock intervals in policy/).
import { isIP } from 'node:net';

export type Family = 4 | 6;

export function familyOf(ip: string): Family | undefined {
  const f = isIP(ip);
  return f === 4 ? 4 : f === 6 ? 6 : undefined;
}

/** The address as a number; the caller has checked it with familyOf. */
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

/** The address in network byte order (4 or 16 bytes), as netlink keys and attributes carry it. */
export function bigintToBytes(n: bigint, family: Family): Buffer {
  const len = family === 4 ? 4 : 16;
  const b = Buffer.alloc(len);
  for (let i = len - 1; i >= 0; i--, n >>= 8n) b[i] = Number(n & 0xffn);
  return b;
}

/** An address in network byte order (4 or 16 bytes, as packets and netlink carry it) as text. */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new Error(`an address has 4 or 16 bytes, not ${b.length}`);
  return bigintToIp(BigInt(`0x${Buffer.from(b.buffer, b.byteOffset, 16).toString('hex')}`), 6);
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
