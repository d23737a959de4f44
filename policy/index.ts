// `createPolicy`: NetworkPolicy for this node's pods, the agent's fourth component. It needs the
// policy watch kinds (the agent adds them while policy.enabled) and listens to the CNI's pod hooks
// so a new pod meets its policy before its first packet. cleanup() removes the table.
import { readFileSync, writeFileSync } from 'node:fs';
import type { AgentDeps } from '../common/agent-deps.js';
import type { Component } from '../common/component.js';
import { NftSession } from '../common/nft/session.js';
import { PolicyDataplane } from './dataplane.js';
import { netlinkElements, type ElementWriter } from './setelem.js';
import { execRunner, type Runner } from './exec.js';
import type { FqdnFeed } from './fqdn.js';
import { PolicySyncer } from './syncer.js';

export interface PolicyOptions {
  /** Runs nft, conntrack and ip; tests pass one that enters a namespace. */
  readonly run?: Runner;
  readonly attachTimeoutMs?: number;
  /** FQDN egress: the feed the agent also hands to DNS (fqdn.ts). */
  readonly fqdn?: FqdnFeed;
  /** Writes set elements; default: over netlink in this process's namespace, unless `run` enters another (then nft). */
  readonly elements?: ElementWriter;
}

export function createPolicy(deps: AgentDeps, opts: PolicyOptions = {}): Component {
  const run = opts.run ?? execRunner();
  const log = deps.log.child({ component: 'policy' });
  // A caller's runner may enter a namespace this process's netlink socket (and `nft -i`) would not reach.
  const elements = opts.elements ?? (opts.run ? undefined : netlinkElements());
  const dataplane = new PolicyDataplane(run, {
    ...(elements ? { elements, generation: () => elements.generation() } : {}),
    ...(opts.run ? {} : { session: new NftSession(['nft', '-i'], { errorCode: 'ERR_POLICY_COMMAND' }) }),
  });
  return {
    name: 'policy',
    async run(signal) {
      ensureBridgeNetfilter(log);
      const syncer = new PolicySyncer({ cache: deps.cache, config: deps.config, log, health: deps.health, dataplane, run, fqdn: opts.fqdn, ...(opts.attachTimeoutMs ? { attachTimeoutMs: opts.attachTimeoutMs } : {}) });
      const unlisten = deps.podHooks?.listen(syncer);
      try {
        await syncer.run(signal);
      } finally {
        unlisten?.();
        dataplane.close();
      }
    },
    async cleanup() {
      await dataplane.cleanup();
    },
  };
}

/**
 * Pods on one node talk across the bridge; only with br_netfilter's call-iptables switches on do
 * those frames pass the inet forward hook where policy is enforced. On by default where the
 * module is loaded; a node without it enforces policy between nodes only, which must be loud.
 * Through /proc (the agent's image has no sysctl binary); the agent runs in the node's namespace.
 */
function ensureBridgeNetfilter(log: AgentDeps['log']): void {
  for (const name of ['bridge-nf-call-iptables', 'bridge-nf-call-ip6tables']) {
    const path = `/proc/sys/net/bridge/${name}`;
    try {
      if (readFileSync(path, 'utf8').trim() !== '1') writeFileSync(path, '1');
    } catch (e) {
      log.error({ sysctl: `net.bridge.${name}`, err: (e as Error).message }, 'br_netfilter is not available: NetworkPolicy is NOT enforced between pods of this node (load the br_netfilter module)');
    }
  }
}
