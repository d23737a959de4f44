// The CNI configuration as a pure function of the Node: kubelet reports the node Ready only once a
// conflist exists, so it is written only when the node has a podCIDR, and rewritten only when the
// text changes (a rewrite makes the runtime reload).
import type { NodeInfo } from '../common/types.js';

export const CONFLIST_NAME = '10-skiff.conflist';
export const NETWORK_NAME = 'skiff';
export const BRIDGE = 'skiff0';

export interface ConflistOptions {
  readonly cniVersion: string;
  readonly mtu: number;
  readonly stateDir: string;
  readonly agentSocket: string;
  /** Chained plugins found in the CNI bin dir, in chain order. */
  readonly chain: readonly ('portmap' | 'bandwidth')[];
}

/** Undefined while the node has no podCIDR yet: no conflist keeps the node NotReady, as it should. */
export function buildConflist(node: NodeInfo | undefined, o: ConflistOptions): string | undefined {
  if (!node || node.podCIDRs.length === 0) return undefined;
  const plugins: Record<string, unknown>[] = [
    { type: 'skiff', podCIDRs: [...node.podCIDRs], mtu: o.mtu, bridge: BRIDGE, stateDir: o.stateDir, agentSocket: o.agentSocket },
  ];
  for (const p of o.chain) {
    if (p === 'portmap') plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
    if (p === 'bandwidth') plugins.push({ type: 'bandwidth', capabilities: { bandwidth: true } });
  }
  return JSON.stringify({ cniVersion: o.cniVersion, name: NETWORK_NAME, plugins }, null, 2) + '\n';
}
