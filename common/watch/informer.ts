// The agent's one watch cache: a reflector per kind feeding one MemoryCache. `pods` are watched only
// on this node (spec.nodeName field selector): a cluster-wide pod watch is the largest stream in a
// big cluster, and only NetworkPolicy needs it. With policy enabled the agent adds POLICY_KINDS:
// `policypods` (every pod, trimmed to PolicyPodInfo) and `networkpolicies`.
import type { KubeAccess } from '../kubeconfig.js';
import type { Logger } from 'pino';
import { ADMIN_POLICY_KINDS, KINDS, type Kind } from '../types.js';
import type { BackoffOptions } from './backoff.js';
import { Reflector } from './reflector.js';
import { MemoryCache, type WatchCache } from './store.js';

export interface WatchCacheOptions {
  readonly kubeConfig: KubeAccess;
  readonly nodeName: string;
  readonly log: Logger;
  /** Kinds to watch (default KINDS, without the policy kinds). Kinds left out never become synced. */
  readonly kinds?: readonly Kind[];
  /** Items per list page (default 500). */
  readonly pageSize?: number;
  /** Retry pacing (default 200 ms doubling to 30 s, jittered). */
  readonly backoff?: BackoffOptions;
}

export interface WatchCacheHandle {
  readonly cache: WatchCache;
  /** Lists and watches until the signal aborts; resolves once every reflector has stopped. */
  start(signal: AbortSignal): Promise<void>;
  /** The resourceVersion a kind's watch resumes from ('' before its first list). */
  resourceVersion(kind: Kind): string;
}

export function createWatchCache(opts: WatchCacheOptions): WatchCacheHandle {
  const cache = new MemoryCache();
  const kinds = opts.kinds ?? KINDS;
  const reflectors = new Map<Kind, Reflector>();
  let started = false;
  const reflectorFor = (kind: Kind): Reflector => {
    let r = reflectors.get(kind);
    if (!r) {
      r = new Reflector({
        kind,
        kubeConfig: opts.kubeConfig,
        cache,
        log: opts.log,
        fieldSelector: kind === 'pods' ? `spec.nodeName=${opts.nodeName}` : undefined,
        optional: ADMIN_POLICY_KINDS.includes(kind),
        pageSize: opts.pageSize,
        backoff: opts.backoff,
      });
      reflectors.set(kind, r);
    }
    return r;
  };
  return {
    cache,
    async start(signal) {
      if (started) throw new Error('watch cache already started');
      started = true;
      await Promise.all(kinds.map((k) => reflectorFor(k).run(signal)));
    },
    resourceVersion: (kind) => reflectors.get(kind)?.resourceVersion ?? '',
  };
}
