// IPv4 arithmetic for the sandbox's two allocators: node pod CIDRs carved from the cluster CIDR
// (like kube-controller-manager's node IPAM) and Service cluster IPs from the service CIDR.

export function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  readonly base: number;
  readonly bits: number;
  readonly size: number;
}

export function parseCidr(cidr: string): Cidr {
  const [ip, b] = cidr.split('/');
  const bits = Number(b);
  if (!ip || !Number.isInteger(bits) || bits < 0 || bits > 32) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const size = 2 ** (32 - bits);
  const base = ipToInt(ip) - (ipToInt(ip) % size);
  return { base, bits, size };
}

export function cidrContains(c: Cidr, ip: string): boolean {
  const n = ipToInt(ip);
  return n >= c.base && n < c.base + c.size;
}

/** The index-th subnet of `mask` bits inside the cluster CIDR. */
export function subnetAt(cluster: string, mask: number, index: number): string {
  const c = parseCidr(cluster);
  const size = 2 ** (32 - mask);
  if (mask < c.bits || (index + 1) * size > c.size) throw new Error(`cluster CIDR ${cluster} has no /${mask} number ${index}`);
  return `${intToIp(c.base + index * size)}/${mask}`;
}

/** Lowest /mask subnets of the cluster CIDR not in `used`, one per request, in order. */
export function allocatePodCIDRs(cluster: string, mask: number, used: Iterable<string>, count: number): string[] {
  const taken = new Set(used);
  const total = 2 ** (mask - parseCidr(cluster).bits);
  const out: string[] = [];
  for (let i = 0; i < total && out.length < count; i++) {
    const s = subnetAt(cluster, mask, i);
    if (!taken.has(s)) out.push(s);
  }
  if (out.length < count) throw new Error(`cluster CIDR ${cluster} is out of /${mask} subnets`);
  return out;
}

/**
 * Picks a free cluster IP. Like the real allocator, the bottom of the range (the first 1/16, at least
 * 16 and at most 256 addresses) is left to Services that ask for a fixed IP, such as kube-dns at .10.
 */
export function allocateServiceIP(serviceCIDR: string, used: ReadonlySet<string>, pick: (n: number) => number = (n) => Math.floor(Math.random() * n)): string | undefined {
  const c = parseCidr(serviceCIDR);
  const first = c.base + 1;
  const count = c.size - 2; // no network, no broadcast address
  const reserved = Math.min(256, Math.max(16, Math.floor(c.size / 16)));
  const dynamic = count - reserved;
  const start = pick(dynamic);
  for (let i = 0; i < dynamic; i++) {
    const ip = intToIp(first + reserved + ((start + i) % dynamic));
    if (!used.has(ip)) return ip;
  }
  return undefined;
}

/** Whether the address is usable as a cluster IP: inside the CIDR, neither network nor broadcast. */
export function isServiceIPInRange(serviceCIDR: string, ip: string): boolean {
  const c = parseCidr(serviceCIDR);
  let n: number;
  try {
    n = ipToInt(ip);
  } catch {
    return false;
  }
  return n > c.base && n < c.base + c.size - 1;
}
