// `createProxy`: the kube-proxy replacement. Picks the backend from config.proxy.backend, removes
// whatever the other backend left behind, and runs the sync loop.
import type { AgentDeps } from '../common/agent-deps.js';
import type { Component } from '../common/component.js';
import { splitHostPort } from '../common/http.js';
import { compactHeapSoon } from '../common/memory.js';
import type { Dataplane } from './dataplane.js';
import { execRunner, type Runner } from './exec.js';
import { IptablesDataplane } from './iptables/dataplane.js';
import type { Family } from './model.js';
import { ExecNft } from './nft/backend.js';
import { NftDataplane } from './nft/dataplane.js';
import { netlinkGeneration, netlinkShape, type GenerationReader, type ShapeReader } from '../common/nft/generation.js';
import { NftLauncher } from '../common/nft/launcher.js';
import { NftSession } from '../common/nft/session.js';
import { nfTablesBatches, type NfTablesBatches } from '../common/nft/batch.js';
import { Proxier } from './proxier.js';
import { warmUp } from './warmup.js';

/** How long after a full sync the heap is compacted (common/memory.ts compactHeapSoon). */
const COMPACT_AFTER_FULL_SYNC_MS = 2000;

export interface ProxyOptions {
  /** Runs nft/iptables/conntrack; tests pass one that enters a namespace. */
  readonly run?: Runner;
  /** Address for healthCheckNodePort servers (default: the healthz bind host). */
  readonly healthCheckHost?: string;
}

export function proxyFamilies(serviceCIDRs: readonly string[]): Family[] {
  const f = new Set<Family>(serviceCIDRs.map((c) => (c.includes(':') ? 6 : 4)));
  return [...f].sort();
}

/** What the nftables backend uses besides `nft -f` when it runs in the agent's own namespace. */
export interface OwnNamespace {
  /** argv of `nft -i` for partial syncs (common/nft/session.ts). */
  readonly nftInteractive: readonly string[];
  readonly generation: GenerationReader;
  /** Starts the big `nft -f` runs (common/nft/launcher.ts); nftables backend only. */
  readonly launcher?: NftLauncher;
  /** Reads a table's structure for the periodic check (common/nft/generation.ts). */
  readonly shape: ShapeReader;
  /** Elements over netlink: the staged full sync's, and partial syncs that change only elements (common/nft/batch.ts). */
  readonly batches: NfTablesBatches;
}

/** Without `own` (a caller's runner in another namespace) every sync runs `nft -f`. */
export function createDataplanes(deps: Pick<AgentDeps, 'config'> & Partial<Pick<AgentDeps, 'log'>>, run: Runner, own?: OwnNamespace): { active: Dataplane; other: Dataplane } {
  const families = proxyFamilies(deps.config.serviceCIDRs);
  const log = deps.log?.child({ component: 'proxy', backend: 'nftables' });
  const session = own ? new NftSession(own.nftInteractive, { spare: true, errorCode: 'ERR_PROXY_COMMAND' }) : undefined;
  const nft = new NftDataplane(new ExecNft(run, { session, generation: own?.generation, launcher: own?.launcher, shape: own?.shape, batches: own?.batches }), families, log ? { log } : {});
  const ipt = new IptablesDataplane(run, families, deps.config.proxy.iptablesMode, own ? { generation: own.generation } : {});
  return deps.config.proxy.backend === 'iptables' ? { active: ipt, other: nft } : { active: nft, other: ipt };
}

export function createProxy(deps: AgentDeps, opts: ProxyOptions = {}): Component {
  const run = opts.run ?? execRunner();
  // A caller's runner may enter a namespace the session, the launcher (and the generation read
  // over netlink) would not; it then runs each `nft -f` itself and reads the table back at every check.
  const own = opts.run === undefined;
  const nft = deps.config.proxy.backend === 'nftables';
  // The launcher is forked now, while the heap is small (launcher.ts).
  const { active, other } = createDataplanes(
    deps,
    run,
    own ? { nftInteractive: ['nft', '-i'], generation: netlinkGeneration(), ...(nft ? { launcher: new NftLauncher(['nft', '-f'], 'ERR_PROXY_COMMAND').start() } : {}), shape: netlinkShape(), batches: nfTablesBatches() } : undefined,
  );
  const log = deps.log.child({ component: 'proxy', backend: active.name });
  return {
    name: 'proxy',
    async run(signal) {
      try {
        await other.cleanup();
      } catch (e) {
        log.debug({ err: (e as Error).message }, `no ${other.name} rules to remove`);
      }
      const proxier = new Proxier({
        cache: deps.cache,
        config: deps.config,
        log,
        health: deps.health,
        dataplane: active,
        ...(active.name === 'nftables' ? { warmUp } : {}),
        afterFullSync: () => compactHeapSoon(log, 'a full sync', COMPACT_AFTER_FULL_SYNC_MS),
        run,
        healthCheckHost: opts.healthCheckHost ?? splitHostPort(deps.config.healthzBindAddress).host,
      });
      await proxier.run(signal);
    },
    async cleanup() {
      const errors: string[] = [];
      for (const d of [active, other]) await d.cleanup().catch((e: Error) => errors.push(`${d.name}: ${e.message}`));
      if (errors.length) log.warn({ errors }, 'proxy cleanup incomplete');
    },
  };
}
