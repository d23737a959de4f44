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
import { execConntrack, withFallback, type ConntrackTable } from './conntrack.js';
import { netlinkConntrack } from './ctnetlink.js';
import { logDeniedConnections } from './denied-log.js';
import type { OpenSocket } from '../common/nft/batch.js';

export interface PolicyOptions {
  /** Runs nft, conntrack and ip; tests pass one that enters a namespace. */
  readonly run?: Runner;
  readonly attachTimeoutMs?: number;
  /** FQDN egress: the feed the agent also hands to DNS (fqdn.ts). */
  readonly fqdn?: FqdnFeed;
  /** Writes set elements; default: over netlink in this process's namespace, unless `run` enters another (then nft). */
  readonly elements?: ElementWriter;
  /** Where policy.logDenied reads the denied connections' NFLOG group: a socket in the node's namespace (default: this process's). */
  readonly openNetfilter?: OpenSocket;
}

/**
 * Strict mode's conntrack access: ctnetlink on a socket `open` makes (default: this process's
 * namespace), conntrack(8) through `run` if the kernel refuses it.
 */
export function strictConntrack(run: Runner, log: AgentDeps['log'], open?: Parameters<typeof netlinkConntrack>[0]): ConntrackTable & { close(): void } {
  const nl = netlinkConntrack(open);
  const table = withFallback(nl, execConntrack(run), (e, forGood) => log.warn({ err: e.message, forGood }, 'strict mode: ctnetlink failed; using conntrack(8)'));
  return { ...table, close: () => nl.close() };
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
      // Like the element writer: a caller's runner that enters a namespace gets conntrack(8) there.
      const conntrack = opts.run ? undefined : strictConntrack(run, log);
      const syncer = new PolicySyncer({ cache: deps.cache, config: deps.config, log, health: deps.health, dataplane, run, fqdn: opts.fqdn, ...(conntrack ? { conntrack } : {}), ...(opts.attachTimeoutMs ? { attachTimeoutMs: opts.attachTimeoutMs } : {}) });
      const unlisten = deps.podHooks?.listen(syncer);
      // Before the first sync, so the first denied connection is read. A refusal costs the log only.
      const denied = deps.config.policy.logDenied
        ? await logDeniedConnections(deps.cache, log, opts.openNetfilter).catch((e: unknown) => void log.error({ err: (e as Error).message }, 'policy.logDenied: cannot read the denied connections (NFLOG); they are dropped and counted, not logged'))
        : undefined;
      try {
        await syncer.run(signal);
      } finally {
        unlisten?.();
        denied?.close();
        await syncer.settled();
        conntrack?.close();
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
