import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Health } from './health.js';
import type { PodHooks } from './pod-hooks.js';
import type { WatchCache } from './watch/store.js';

/** The few writes the agent makes to the API server; everything else is read from the watch cache. */
export interface ApiClient {
  /** Merge-patches metadata.annotations of a Node (a null value removes the key). */
  patchNodeAnnotations(name: string, annotations: Record<string, string | null>): Promise<void>;
  /** Sets one condition in a Node's status (merged by type; the others are kept). */
  patchNodeCondition(name: string, condition: NodeCondition): Promise<void>;
}

export interface NodeCondition {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
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
