// One-time (per podCIDR) node preparation: forwarding, the bridge, the VXLAN device, and the CNI
// chain's version. Separate from the per-sync peer work so a peer change never touches these.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isIP } from 'node:net';
import type { NodeInfo } from '../../common/types.js';
import { BRIDGE } from '../conflist.js';
import { SkiffError } from '../../common/errors.js';
import { ipBatch, ipJson, isNotFound, run } from '../plugin/exec.js';
import { bridgeLines, enableForwarding, ensureSysctl } from '../plugin/netdev.js';
import { highestCommon, SUPPORTED_VERSIONS } from '../spec/version.js';
import { vtepAddress } from './peers.js';
import { detectUnderlay, VXLAN_OVERHEAD_V4, type Underlay } from './underlay.js';
import { ensureVxlan, VXLAN_DEV } from './vxlan.js';

export interface NodeSetup {
  readonly podCIDRs: readonly string[];
  readonly underlay: Underlay;
  readonly mtu: number;
  readonly vtepMac: string;
  readonly vtepIP: string;
  /** False when the kernel has the VXLAN checksum bug and ethtool is missing to work around it. */
  readonly checksumWorkaround: boolean;
  /** Forwarding sysctls that are off and could not be set (read-only /proc/sys). */
  readonly forwardingOff: readonly string[];
  /** With direct routing: rp_filter sysctls that could not be made loose. */
  readonly rpFilterUnset: readonly string[];
}

export function internalIPv4(n: NodeInfo): string | undefined {
  return n.addresses.find((a) => a.type === 'InternalIP' && isIP(a.address) === 4)?.address;
}

export async function setupNode(self: NodeInfo, o: { mtu: number; vni: number; port: number; ipv6: boolean; directRouting: boolean }): Promise<NodeSetup> {
  const ip = internalIPv4(self);
  if (!ip) throw new SkiffError('ERR_CNI_NODE_IP', `node ${self.name} has no IPv4 InternalIP`);
  const underlay = await detectUnderlay(ip);
  if (!underlay) throw new SkiffError('ERR_CNI_UNDERLAY', `no interface holds the node IP ${ip}`);
  const mtu = o.mtu > 0 ? o.mtu : underlay.mtu - VXLAN_OVERHEAD_V4;
  const forwardingOff = enableForwarding(o.ipv6 || self.podCIDRs.some((c) => c.includes(':')));
  await ensureBridgeConfigured(self.podCIDRs, mtu);
  const v4 = self.podCIDRs.find((c) => isIP(c.split('/')[0]!) === 4);
  if (!v4) throw new SkiffError('ERR_CNI_PODCIDR', `node ${self.name} has no IPv4 podCIDR for the overlay`);
  const vtepIP = vtepAddress(v4);
  const vtepIPs = self.podCIDRs.map(vtepAddress);
  const vx = await ensureVxlan({ vni: o.vni, port: o.port, underlay: underlay.ifname, localIP: ip, mtu, vtepIPs });
  const rpFilterUnset = o.directRouting ? looseReversePath(underlay.ifname) : [];
  return { podCIDRs: self.podCIDRs, underlay, mtu, vtepMac: vx.mac, vtepIP, checksumWorkaround: vx.checksumOk, forwardingOff, rpFilterUnset };
}

/**
 * Direct routing sends pod traffic to a peer on the underlay and receives the peer's on it. When
 * both nodes of a pair route the same way, strict reverse-path filtering passes (the route back to
 * the sender's pod leaves by the interface the packet came in on). It does not for a moment while
 * a pair switches (one node already direct, the other still on VXLAN: a packet comes in on one
 * device while the route back uses the other), nor for good when the two nodes judge the subnet
 * differently (a /24 here, a /16 there). Loose mode (2) still drops sources with no route at all.
 * The effective value is the larger of conf/all and conf/<dev>, so the device's 2 always wins.
 * IPv6 has no rp_filter sysctl. Returns the keys that could not be set.
 */
function looseReversePath(underlay: string): string[] {
  const keys = [underlay, VXLAN_DEV].map((dev) => `net/ipv4/conf/${dev}/rp_filter`);
  return keys.filter((k) => !ensureSysctl(k, '2'));
}

/** The bridge with the gateway addresses, created or brought in line (MTU, addresses) in place. */
async function ensureBridgeConfigured(podCIDRs: readonly string[], mtu: number): Promise<void> {
  const lines = bridgeLines(BRIDGE, podCIDRs, mtu);
  try {
    await ipJson(['link', 'show', 'dev', BRIDGE]);
    lines[0] = `link set ${BRIDGE} mtu ${mtu}`;
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  await ipBatch(lines);
}

/** The newest spec version that skiff and every chained plugin found in binDir all speak. */
export async function chainVersion(binDir: string): Promise<{ chain: ('portmap' | 'bandwidth')[]; cniVersion: string }> {
  const chain: ('portmap' | 'bandwidth')[] = [];
  const lists: string[][] = [[...SUPPORTED_VERSIONS]];
  for (const p of ['portmap', 'bandwidth'] as const) {
    const bin = join(binDir, p);
    if (!existsSync(bin)) continue;
    try {
      const out = await runWithEnv(bin, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
      const v = (JSON.parse(out) as { supportedVersions?: string[] }).supportedVersions;
      if (Array.isArray(v)) {
        lists.push(v);
        chain.push(p);
      }
    } catch {
      /* a plugin that cannot answer VERSION is left out of the chain */
    }
  }
  return { chain, cniVersion: highestCommon(lists) ?? '1.0.0' };
}

function runWithEnv(bin: string, env: Record<string, string>, input: string): Promise<string> {
  return run(['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), bin], input);
}
