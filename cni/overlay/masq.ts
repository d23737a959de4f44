// The overlay's nft table. Masquerade for traffic leaving the cluster: a pod's source address is rewritten only when the
// destination is neither a pod (cluster CIDR) nor a node, so pod-to-pod and pod-to-node keep the
// pod address (the flannel contract). The table is replaced whole in one nft transaction.
import { isIP } from 'node:net';

export const MASQ_TABLE = 'skiff-masq';

export interface MasqInput {
  readonly clusterCIDRs: readonly string[];
  readonly nodeIPs: readonly string[];
  readonly vxlanPort: number;
  /** Off: only the tunnel notrack rules remain. */
  readonly masquerade: boolean;
}

function elements(items: readonly string[]): string {
  return items.length ? ` elements = { ${items.join(', ')} };` : '';
}

export function masqRuleset(m: MasqInput): string {
  const c4 = m.clusterCIDRs.filter((c) => isIP(c.split('/')[0]!) === 4);
  const c6 = m.clusterCIDRs.filter((c) => isIP(c.split('/')[0]!) === 6);
  const n4 = [...new Set(m.nodeIPs.filter((a) => isIP(a) === 4))].sort();
  const n6 = [...new Set(m.nodeIPs.filter((a) => isIP(a) === 6))].sort();
  return [
    `table inet ${MASQ_TABLE}`,
    `delete table inet ${MASQ_TABLE}`,
    `table inet ${MASQ_TABLE} {`,
    `  set cluster4 { type ipv4_addr; flags interval;${elements(c4)} }`,
    `  set cluster6 { type ipv6_addr; flags interval;${elements(c6)} }`,
    `  set nodes4 { type ipv4_addr;${elements(n4)} }`,
    `  set nodes6 { type ipv6_addr;${elements(n6)} }`,
    // The outer VXLAN packets are node-to-node UDP that nothing NATs: skipping conntrack for
    // them saves two lookups per packet on each side (the inner packets stay tracked for Services).
    `  chain tunnel-prerouting {`,
    `    type filter hook prerouting priority raw; policy accept;`,
    `    udp dport ${m.vxlanPort} notrack`,
    `  }`,
    `  chain tunnel-output {`,
    `    type filter hook output priority raw; policy accept;`,
    `    udp dport ${m.vxlanPort} notrack`,
    `  }`,
    ...(m.masquerade
      ? [
          `  chain postrouting {`,
          `    type nat hook postrouting priority srcnat; policy accept;`,
          `    ip saddr @cluster4 ip daddr != @cluster4 ip daddr != @nodes4 masquerade fully-random`,
          `    ip6 saddr @cluster6 ip6 daddr != @cluster6 ip6 daddr != @nodes6 masquerade fully-random`,
          `  }`,
        ]
      : []),
    `}`,
    '',
  ].join('\n');
}

export function deleteMasq(): string {
  return `table inet ${MASQ_TABLE}\ndelete table inet ${MASQ_TABLE}\n`;
}

/**
 * One node's addresses joining or leaving the node sets, as set element commands: a Node event
 * then costs nft a few elements, not a re-parse of the whole table with every node's address.
 */
export function masqElementOps(added: readonly string[], removed: readonly string[]): string {
  const lines: string[] = [];
  for (const [verb, ips] of [['delete', removed], ['add', added]] as const) {
    const v4 = ips.filter((a) => isIP(a) === 4);
    const v6 = ips.filter((a) => isIP(a) === 6);
    if (v4.length) lines.push(`${verb} element inet ${MASQ_TABLE} nodes4 { ${v4.join(', ')} }`);
    if (v6.length) lines.push(`${verb} element inet ${MASQ_TABLE} nodes6 { ${v6.join(', ')} }`);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}
