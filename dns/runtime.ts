// Assembles the plugin chain and the query handler over a watch cache. The same assembly runs in
// the agent process and in each worker process (which is fed a mirror of the cache), so a worker
// answers exactly as the agent would.
import type { Logger } from 'pino';
import type { Config } from '../common/config.js';
import type { WatchCache } from '../common/watch/store.js';
import { AnswerFeedPlugin, type FeedElement } from './answer-feed.js';
import { AutopathPlugin } from './autopath.js';
import { CachePlugin } from './cache/plugin.js';
import { PrefixSet } from './cidr.js';
import { ForwardPlugin, resolvConfServers, type UpstreamConfig } from './forward/plugin.js';
import { KubernetesPlugin } from './kubernetes/plugin.js';
import { ZoneIndex } from './kubernetes/zone-index.js';
import { LoadBalancePlugin } from './loadbalance.js';
import { chain } from './plugin.js';
import { QueryHandler } from './server/handler.js';

export interface RuntimeOptions {
  readonly log?: Logger;
  /** host:port pairs we serve on, for the static loop check. */
  readonly self?: readonly string[];
  readonly now?: () => number;
  readonly forward?: { timeoutMs?: number; deadlineMs?: number; healthIntervalMs?: number };
  /** Puts answered addresses in force before the reply leaves (answer-feed.ts); its table comes by Runtime.feed.setTable. */
  readonly feedAdd?: (elements: readonly FeedElement[]) => Promise<void>;
}

export interface Runtime {
  readonly handler: QueryHandler;
  readonly index: ZoneIndex;
  readonly kubernetes: KubernetesPlugin;
  readonly forward: ForwardPlugin;
  readonly cache: CachePlugin;
  readonly feed: AnswerFeedPlugin;
  /** Applies a re-read config (dns.* settings that can change live). */
  reconfigure(cfg: Config): void;
  close(): void;
}

export function serverLabel(cfg: Config): string {
  return `dns://:${cfg.dns.port}`;
}

export function upstreamConfig(cfg: Config): UpstreamConfig {
  const ups = cfg.dns.upstreams.length > 0 ? cfg.dns.upstreams : resolvConfServers(cfg.dns.resolvConf);
  return { upstreams: ups, stubDomains: cfg.dns.stubDomains };
}

const LOOPBACK = ['127.0.0.0/8', '::1/128'];
const ACL_MEMO_MAX = 50_000;

/** Who may query: pod CIDRs, configured extra CIDRs, loopback, our own addresses, the node's IPs. */
class SourceAcl {
  private set!: PrefixSet;
  private memo = new Map<string, boolean>();
  constructor(
    cfg: Config,
    private readonly cache: WatchCache,
  ) {
    this.configure(cfg);
  }
  private nodeName = '';
  configure(cfg: Config): void {
    this.set = new PrefixSet([...cfg.clusterCIDRs, ...cfg.dns.allowedSourceCIDRs, ...LOOPBACK, ...cfg.dnsServiceIPs, ...cfg.dns.listen]);
    this.nodeName = cfg.nodeName;
    this.memo = new Map();
    this.lastIp = '';
  }
  private lastIp = '';
  private lastOk = false;
  allowed = (ip: string): boolean => {
    // Every datagram brings a fresh address string, so a Map lookup hashes it each time; a burst
    // from one client (a pod's resolver) compares it with the previous one instead.
    if (ip === this.lastIp) return this.lastOk;
    let ok = this.memo.get(ip);
    if (ok === undefined) {
      ok = this.set.has(ip) || (this.cache.store('nodes').get(this.nodeName)?.addresses.some((a) => a.address === ip) ?? false);
      if (this.memo.size >= ACL_MEMO_MAX) this.memo.clear();
      this.memo.set(ip, ok);
    }
    this.lastIp = ip;
    this.lastOk = ok;
    return ok;
  };
}

export function buildRuntime(initial: Config, cache: WatchCache, o: RuntimeOptions = {}): Runtime {
  let cfg = initial;
  const zone = cfg.clusterDomain;
  const index = new ZoneIndex(zone);
  index.load(cache);
  const server = serverLabel(cfg);
  const kubernetes = new KubernetesPlugin({
    zone,
    index,
    dnsIPs: cfg.dnsServiceIPs,
    ownedReverse: new PrefixSet([...cfg.serviceCIDRs, ...cfg.clusterCIDRs]),
    ttl: () => cfg.dns.ttl,
    synced: () => cache.synced(['services', 'endpointslices']),
  });
  const forward = new ForwardPlugin(upstreamConfig(cfg), { log: o.log, self: o.self, ...o.forward });
  const cachePlugin = new CachePlugin({
    capacity: () => cfg.dns.cacheSize,
    prefetch: () => cfg.dns.prefetch,
    serveStale: () => cfg.dns.serveStale,
    now: o.now,
    server,
  });
  const autopath = new AutopathPlugin({ zone, pods: cache.store('pods'), server, enabled: () => true });
  const acl = new SourceAcl(cfg, cache);
  const feed = new AnswerFeedPlugin({ add: o.feedAdd ?? (() => Promise.resolve()), server, log: o.log });
  const handler = new QueryHandler({
    // The feed behind autopath: it sees the name autopath resolved, not the search-path guess.
    chain: chain([new LoadBalancePlugin(), autopath, feed, kubernetes, cachePlugin, forward]),
    server,
    allowed: acl.allowed,
    bypassFast: feed.watches,
    log: o.log,
    // Constant: zone changes drop only the entries they affect (invalidate, below).
    generation: () => 0,
  });
  // Subscribed in the same turn as load(): no change can fall between them.
  const unsubscribe = cache.subscribe(['services', 'endpointslices', 'namespaces'], (b) => {
    const changed = index.apply(b);
    if (changed.size > 0) handler.invalidate(changed);
  });
  return {
    handler,
    index,
    kubernetes,
    forward,
    cache: cachePlugin,
    feed,
    reconfigure(next: Config): void {
      const upstreamsChanged = JSON.stringify(upstreamConfig(next)) !== JSON.stringify(upstreamConfig(cfg));
      cfg = next;
      acl.configure(next);
      handler.clearFast();
      if (upstreamsChanged) {
        forward.configure(upstreamConfig(next));
        cachePlugin.clear();
      }
    },
    close(): void {
      unsubscribe();
      handler.close();
      forward.close();
    },
  };
}
