// The per-pod kernel objects: a veth pair whose host end is a port of the node bridge (hairpin on,
// so a pod reaching itself through a Service VIP gets its packets back) and whose pod end becomes
// CNI_IFNAME with the address and a default route via the bridge. MACs are chosen here rather than
// read back, which saves a netlink round trip per ADD.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { CniCode, CniError } from '../spec/errors.js';
import { CommandError, ipBatch, ipJson, isNotFound } from './exec.js';
import { formatIP, parseIP, parseRange } from '../ipam/ipnet.js';
import { mark } from '../trace.js';

export const HOST_VETH_PREFIX = 'skiffc';

/** 15 bytes: the prefix plus 9 hex digits of the attachment, stable across agent restarts. */
export function hostVethName(containerID: string, ifname: string): string {
  return HOST_VETH_PREFIX + createHash('sha256').update(`${containerID}/${ifname}`).digest('hex').slice(0, 9);
}

/** 0a:58 + the IPv4 address, kubenet's convention: unique per pod IP, readable in tcpdump. */
export function macForIP(ip: string): string {
  const { family, value } = parseIP(ip);
  const low = family === 4 ? value : value & 0xffffffffn;
  const b = [0x0a, 0x58, Number((low >> 24n) & 255n), Number((low >> 16n) & 255n), Number((low >> 8n) & 255n), Number(low & 255n)];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02; // unicast, locally administered
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export interface PodLink {
  readonly hostIf: string;
  readonly hostMac: string;
  readonly podIf: string;
  readonly podMac: string;
  readonly netns: string;
  readonly mtu: number;
  readonly bridge: string;
  /** Pod addresses with prefix length, e.g. 10.244.1.5/24. */
  readonly addresses: readonly string[];
  readonly gateways: readonly string[];
}

/** The bridge's configuration lines; shared by the agent and the no-agent plugin path. */
export function bridgeLines(bridge: string, podCIDRs: readonly string[], mtu: number): string[] {
  const lines: string[] = [];
  const gw4 = podCIDRs.map(parseRange).find((r) => r.family === 4);
  const mac = gw4 ? macForIP(formatIP(gw4.gateway, 4)) : '0a:58:00:00:00:01';
  lines.push(`link add ${bridge} address ${mac} mtu ${mtu} type bridge`);
  for (const c of podCIDRs) {
    const r = parseRange(c);
    lines.push(`addr replace ${formatIP(r.gateway, r.family)}/${r.prefix} dev ${bridge}${r.family === 6 ? ' nodad' : ''}`);
  }
  lines.push(`link set ${bridge} up`);
  return lines;
}

/** Creates the bridge when it is missing (the plugin may run before or without the agent). */
export async function ensureBridge(bridge: string, podCIDRs: readonly string[], mtu: number): Promise<void> {
  // The bridge is the pods' gateway, so the node must route (the reference bridge plugin does the same).
  enableForwarding(podCIDRs.some((c) => c.includes(':')));
  const lines = bridgeLines(bridge, podCIDRs, mtu);
  try {
    await ipJson(['link', 'show', 'dev', bridge]);
    lines.shift();
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  try {
    await ipBatch(lines);
  } catch (e) {
    // Two plugins racing to create it: the loser only needs the addresses, which are idempotent.
    if (e instanceof CommandError && /File exists/.test(e.stderr)) await ipBatch(lines.slice(1));
    else throw e;
  }
}

type Rtnl = typeof import('./rtnl.js');
let rtnlLoad: Promise<Rtnl | undefined> | undefined;
/** The in-process netlink path; undefined (and iproute2 is used) if the native module cannot load. */
export function rtnl(): Promise<Rtnl | undefined> {
  // SKIFF_CNI_NETLINK=off forces iproute2 (a kernel or module that misbehaves; tests of that path).
  if (process.env.SKIFF_CNI_NETLINK === 'off') return Promise.resolve(undefined);
  return (rtnlLoad ??= import('./rtnl.js').catch(() => undefined));
}

async function createHostSide(l: PodLink): Promise<void> {
  const nl = await rtnl();
  if (nl) {
    const master = await nl.linkIndex(l.bridge);
    mark('bridge-index');
    if (master === undefined) throw new CniError(CniCode.Internal, `bridge ${l.bridge} does not exist`);
    try {
      await nl.createVeth({ hostIf: l.hostIf, hostMac: l.hostMac, podIf: l.podIf, podMac: l.podMac, mtu: l.mtu, netnsPath: l.netns, masterIndex: master });
    } catch (e) {
      if (nl.errnoOf(e) === 'EEXIST') throw await existsError(l, (e as Error).message);
      await delHostLink(l.hostIf).catch(() => undefined);
      throw new CniError(CniCode.Internal, `cannot create veth ${l.hostIf}`, (e as Error).message);
    }
    return;
  }
  try {
    await ipBatch([
      `link add ${l.hostIf} address ${l.hostMac} mtu ${l.mtu} type veth peer name ${l.podIf} address ${l.podMac} mtu ${l.mtu} netns ${l.netns}`,
      `link set ${l.hostIf} master ${l.bridge} up`,
      `link set ${l.hostIf} type bridge_slave hairpin on`,
    ]);
  } catch (e) {
    if (e instanceof CommandError && /File exists/.test(e.stderr)) throw await existsError(l, e.stderr.trim());
    throw new CniError(CniCode.Internal, `cannot create veth ${l.hostIf}`, (e as Error).message);
  }
}

async function existsError(l: PodLink, details: string): Promise<CniError> {
  const hostExists = await linkExists(l.hostIf);
  return new CniError(CniCode.Internal, hostExists ? `host interface ${l.hostIf} for this attachment already exists` : `interface ${l.podIf} already exists in ${l.netns}`, details);
}

export async function addPodLink(l: PodLink): Promise<void> {
  if (!existsSync(l.netns)) throw new CniError(CniCode.UnknownContainer, `network namespace ${l.netns} does not exist`);
  mark('netns-exists');
  await createHostSide(l);
  const nl = await rtnl();
  try {
    if (nl && (await nl.configurePodSide({ netnsPath: l.netns, podIf: l.podIf, addresses: l.addresses, gateways: l.gateways }))) return;
  } catch (e) {
    await delHostLink(l.hostIf).catch(() => undefined);
    throw new CniError(CniCode.Internal, `cannot configure ${l.podIf} in ${l.netns}`, (e as Error).message);
  }
  const lines: string[] = [];
  for (const a of l.addresses) lines.push(`addr add ${a} dev ${l.podIf}${a.includes(':') ? ' nodad' : ''}`);
  lines.push(`link set ${l.podIf} up`);
  for (const gw of l.gateways) lines.push(`route add default via ${gw} dev ${l.podIf}`);
  try {
    await ipBatch(lines, l.netns);
  } catch (e) {
    await delHostLink(l.hostIf).catch(() => undefined);
    throw new CniError(CniCode.Internal, `cannot configure ${l.podIf} in ${l.netns}`, (e as Error).message);
  }
}

export async function linkExists(name: string, netns?: string): Promise<boolean> {
  try {
    await ipJson(['link', 'show', 'dev', name], netns);
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** Deleting the host end takes the pod end with it; a missing link is success (DEL is idempotent). */
export async function delHostLink(name: string): Promise<void> {
  const nl = await rtnl();
  if (nl) {
    await nl.deleteLinkByName(name);
    return;
  }
  try {
    await ipBatch([`link del ${name}`]);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}

interface IpAddrJson {
  ifname: string;
  address?: string;
  mtu: number;
  master?: string;
  addr_info?: { local: string; prefixlen: number; family: string }[];
}

/** CHECK: the pod interface carries the expected addresses and the host end sits on the bridge. */
export async function checkPodLink(l: Pick<PodLink, 'hostIf' | 'podIf' | 'netns' | 'bridge' | 'addresses' | 'gateways'>): Promise<void> {
  if (!existsSync(l.netns)) throw new CniError(CniCode.UnknownContainer, `network namespace ${l.netns} does not exist`);
  let pod: IpAddrJson[];
  try {
    pod = await ipJson<IpAddrJson[]>(['addr', 'show', 'dev', l.podIf], l.netns);
  } catch (e) {
    throw new CniError(CniCode.Internal, `interface ${l.podIf} is missing in ${l.netns}`, (e as Error).message);
  }
  const have = new Set((pod[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
  for (const a of l.addresses) if (!have.has(a)) throw new CniError(CniCode.Internal, `interface ${l.podIf} lacks address ${a}`);
  const routes = await ipJson<{ dst: string; gateway?: string }[]>(['route', 'show', 'default', 'dev', l.podIf], l.netns);
  const routes6 = await ipJson<{ dst: string; gateway?: string }[]>(['-6', 'route', 'show', 'default', 'dev', l.podIf], l.netns);
  const gws = new Set([...routes, ...routes6].map((r) => r.gateway));
  for (const g of l.gateways) if (!gws.has(g)) throw new CniError(CniCode.Internal, `default route via ${g} is missing in ${l.netns}`);
  let host: IpAddrJson[];
  try {
    host = await ipJson<IpAddrJson[]>(['link', 'show', 'dev', l.hostIf]);
  } catch (e) {
    throw new CniError(CniCode.Internal, `host interface ${l.hostIf} is missing`, (e as Error).message);
  }
  if (host[0]?.master !== l.bridge) throw new CniError(CniCode.Internal, `host interface ${l.hostIf} is not a port of ${l.bridge}`);
}

/** Host ends of pod veths currently attached to the bridge (for GC). */
export async function bridgePorts(bridge: string): Promise<string[]> {
  try {
    const links = await ipJson<IpAddrJson[]>(['link', 'show', 'master', bridge]);
    return links.map((l) => l.ifname).filter((n) => n.startsWith(HOST_VETH_PREFIX));
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

/**
 * Turns forwarding on where it is off. /proc/sys is read-only in a non-privileged container, so
 * a value that already holds is never rewritten; returns the keys that are off and could not be set.
 */
export function enableForwarding(ipv6: boolean): string[] {
  const keys = ['net/ipv4/ip_forward', ...(ipv6 ? ['net/ipv6/conf/all/forwarding'] : [])];
  return keys.filter((k) => !ensureSysctl(k, '1'));
}

export function ensureSysctl(key: string, value: string): boolean {
  const path = `/proc/sys/${key}`;
  try {
    if (readFileSync(path, 'utf8').trim() === value) return true;
    writeFileSync(path, value);
    return true;
  } catch {
    return false;
  }
}
