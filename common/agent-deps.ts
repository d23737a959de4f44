import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Health } from './health.js';
import type { PodHooks } from './pod-hooks.js';
import type { WatchCache } from './watch/store.js';

/** The few writes the agent makes to the API server; everything else is read from the watch cache. */
export interface ApiClient {
  /** Merge-patches metadata.annotations of a Node (a null value removes the key). */
  patchNodeAnnotations(name: string, annotations: Record<string, string | null>): Promise<void>;
}

/** What every component factory receives. */
export interface AgentDeps {
  readonly config: Config;
  readonly cache: WatchCache;
  readonly log: Logger;
  readonly health: Health;
  readonly api: ApiClient;
  /** CNI ADD/DEL to the components that must act before ADD returns (policy); absent: nobody listens. */
  readonly podHooks?: PodHooks;
}
