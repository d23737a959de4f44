// Address arithmetic on bigints so IPv4 and IPv6 share one code path.
import { bigintToIp, familyOf, ipToBigint } from '../../common/ipaddr.js';

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
  const family = familyOf(s);
  if (family === undefined) throw new Error(`not an IP address: ${s}`);
  return { family, value: ipToBigint(s) };
}

export function formatIP(v: bigint, family: 4 | 6): string {
  return bigintToIp(v, family);
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
