// The sync loop: watch batches mark Services dirty, one sync at a time recomputes only those,
// drops the ones that did not really change, and hands the rest to the dataplane. The first sync,
// any sync after a failure and drift repair are full. Metrics, conntrack cleanup and the
// healthCheckNodePort servers hang off the result, each in its own small step.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { Config } from '../common/config.js';
import type { Health } from '../common/health.js';
import type { ChangeBatch, WatchCache } from '../common/watch/store.js';
import { flushFlows, staleFlows } from './conntrack.js';
import type { Dataplane, ServiceChange } from './dataplane.js';
import { boundsOfObjects, type Bounds } from './bounds.js';
import { ComputedServices } from './computed-services.js';
import { desiredService } from './desired.js';
import type { Runner } from './exec.js';
import { HealthCheckServers, type HealthCheckTarget } from './healthcheck.js';
import { proxyMetrics, type ProxyMetrics } from './metrics.js';
import { hasExternal, programmedEndpoints, type NodeContext, type ServicePort } from './model.js';
import { untilAborted } from '../common/component.js';

export interface ProxierOptions {
  readonly cache: WatchCache;
  readonly config: Config;
  readonly log: Logger;
  readonly health: Health;
  readonly dataplane: Dataplane;
  /** Runs conntrack; undefined skips conntrack cleanup. */
  readonly run?: Runner;
  /** Address the healthCheckNodePort servers bind; undefined disables them. */
  readonly healthCheckHost?: string;
  readonly now?: () => number;
  /** Runs while the caches fill before the first sync (the nftables backend's warm-up, warmup.ts). */
  readonly warmUp?: (ctx: NodeContext) => Promise<void>;
  /** Runs after each successful full sync: the agent compacts the heap its garbage grew (common/memory.ts). */
  readonly afterFullSync?: () => void;
}

interface Stats {
  ports: number;
  endpoints: number;
  noLocalInternal: number;
  noLocalExternal: number;
}

const ZERO: Stats = { ports: 0, endpoints: 0, noLocalInternal: 0, noLocalExternal: 0 };

function statsOf(ports: readonly ServicePort[]): Stats {
  const s = { ...ZERO };
  for (const p of ports) {
    s.ports++;
    s.endpoints += programmedEndpoints(p).length;
    if (p.internalLocal && p.hasEndpoints && p.clusterEndpoints.length === 0) s.noLocalInternal++;
    if (p.externalLocal && hasExternal(p) && p.hasEndpoints && p.localEndpoints.length === 0) s.noLocalExternal++;
  }
  return s;
}

const STAT_KEYS = Object.keys(ZERO) as (keyof Stats)[];

/** The healthCheckNodePort targets of one Service (undefined when it has none). */
function healthTargetsOf(key: string, ports: readonly ServicePort[]): Map<number, HealthCheckTarget> | undefined {
  let hc: Map<number, HealthCheckTarget> | undefined;
  for (const p of ports) {
    if (p.healthCheckNodePort === undefined) continue;
    const [namespace, name] = key.split('/') as [string, string];
    const prev = hc?.get(p.healthCheckNodePort)?.localEndpoints ?? 0;
    (hc ??= new Map()).set(p.healthCheckNodePort, { namespace, name, localEndpoints: Math.max(prev, p.localEndpoints.length) });
  }
  return hc;
}

interface Accounts {
  readonly stats: Map<string, Stats>;
  readonly total: Stats;
  readonly hcTargets: Map<string, Map<number, HealthCheckTarget>>;
}

/** Both lists' keys in one Set, without an array of them first (50,000 at a big full sync). */
function union(a: Iterable<string>, b: Iterable<string>): Set<string> {
  const out = new Set(a);
  for (const k of b) out.add(k);
  return out;
}

/** The accounts of a whole desired state, as a full sync replaces them. */
function accountsOf(services: ReadonlyMap<string, readonly ServicePort[]>): Accounts {
  const a: Accounts = { stats: new Map(), total: { ...ZERO }, hcTargets: new Map() };
  for (const [key, ports] of services) {
    if (ports.length === 0) continue;
    const s = statsOf(ports);
    for (const k of STAT_KEYS) a.total[k] += s[k];
    a.stats.set(key, s);
    const hc = healthTargetsOf(key, ports);
    if (hc) a.hcTargets.set(key, hc);
  }
  return a;
}

export class Proxier {
  private readonly current = new Map<string, readonly ServicePort[]>();
  /** Per-Service figures of what is programmed, for the metrics and the health-check servers. */
  private accounts: Accounts = accountsOf(new Map());
  private dirty = new Set<string>();
  private triggers: number[] = [];
  private needFull = true;
  private ctx: NodeContext | undefined;
  private started = false;
  private running: Promise<void> | undefined;
  /** Syncs and kernel checks never overlap: a check must not see the mirror ahead of the kernel. */
  private queue: Promise<unknown> = Promise.resolve();
  private synced = false;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private pendingSince: number | undefined;
  private lastSuccess: number | undefined;
  readonly metrics: ProxyMetrics = proxyMetrics();
  readonly healthChecks: HealthCheckServers | undefined;
  private readonly now: () => number;
  private readonly startedAt: number;

  constructor(private readonly o: ProxierOptions) {
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
    if (o.healthCheckHost !== undefined) this.healthChecks = new HealthCheckServers(o.healthCheckHost, o.log);
    o.cache.store('endpointslices').addIndex('service', (s) => (s.serviceName ? [`${s.namespace}/${s.serviceName}`] : []));
    o.health.addLiveness('proxy', () => this.liveness());
  }

  /** Service key -> the ports last written to the kernel. */
  programmed(): ReadonlyMap<string, readonly ServicePort[]> {
    return this.current;
  }

  /** kube-proxy healthz semantics: unhealthy when queued changes have waited too long. */
  liveness(): { ok: boolean; detail: Record<string, unknown> } {
    const limit = Math.max(2 * this.o.config.proxy.syncPeriod, 10_000);
    const stalled = this.pendingSince !== undefined && this.now() - this.pendingSince > limit;
    return { ok: !stalled, detail: { lastSync: this.lastSuccess, pendingSince: this.pendingSince } };
  }

  /** Feeds a watch batch; exposed so tests can drive the loop without timers. */
  onBatch(batch: ChangeBatch): void {
    for (const c of batch.changes) {
      if (c.kind === 'services') {
        this.dirty.add(c.key);
        this.metrics.serviceChanges.inc();
      } else if (c.kind === 'endpointslices') {
        for (const s of [c.previous, c.current] as ({ namespace: string; serviceName: string; triggerTimeMs?: number } | undefined)[]) {
          if (s?.serviceName) this.dirty.add(`${s.namespace}/${s.serviceName}`);
        }
        const cur = c.current as { triggerTimeMs?: number } | undefined;
        // A change from before this proxy started (the initial LIST replays every slice) is no
        // programming latency of ours; kube-proxy does not count those either.
        if (cur?.triggerTimeMs !== undefined && cur.triggerTimeMs >= this.startedAt) this.triggers.push(cur.triggerTimeMs);
        this.metrics.endpointChanges.inc();
      } else if (c.kind === 'nodes' && c.key === this.o.config.nodeName) {
        this.needFull = true;
      }
    }
    if ((this.dirty.size > 0 || this.needFull) && this.pendingSince === undefined) this.pendingSince = this.now();
    if (this.started) void this.sync();
  }

  /** Runs one sync now (or after the running one); resolves when the kernel is updated. */
  sync(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.exclusive(async () => {
      do {
        this.again = false;
        await this.syncOnce();
      } while (this.again);
    }).finally(() => (this.running = undefined));
    return this.running;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.queue.then(fn, fn);
    this.queue = r.catch(() => undefined);
    return r;
  }

  async run(signal: AbortSignal): Promise<void> {
    const { cache, config } = this.o;
    const unsubscribe = cache.subscribe(['services', 'endpointslices', 'nodes'], (b) => this.onBatch(b), { minIntervalMs: config.proxy.minSyncPeriod });
    try {
      // Existing rules stay untouched until the caches are complete: a partial view would delete Services.
      const warm = cache.synced(['services', 'endpointslices']) ? undefined : this.warmUp();
      await cache.waitForSync(['services', 'endpointslices'], signal);
      await warm;
      this.started = true;
      this.needFull = true;
      await this.sync();
      const period = setInterval(() => void this.check(), config.proxy.syncPeriod);
      await untilAborted(signal);
      clearInterval(period);
    } catch (e) {
      if (!signal.aborted) throw e;
    } finally {
      unsubscribe();
      this.started = false;
      if (this.retryTimer) clearTimeout(this.retryTimer);
      await this.running?.catch(() => undefined);
      await this.healthChecks?.close();
    }
  }

  /** The backend's warm-up (see warmup.ts); never fails, never touches the kernel. */
  async warmUp(): Promise<void> {
    if (!this.o.warmUp) return;
    const t = this.now();
    try {
      await this.o.warmUp(this.nodeContext());
      this.o.log.debug({ ms: this.now() - t }, 'warmed up for the first full sync');
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'warm-up failed; the first full sync runs cold');
    }
  }

  /** The periodic full resync: compare the kernel with what was written and repair drift. */
  async check(): Promise<string[]> {
    let drift: string[];
    try {
      drift = await this.exclusive(() => this.o.dataplane.verify());
    } catch (e) {
      drift = [`cannot read the ruleset: ${(e as Error).message}`];
    }
    if (drift.length > 0) {
      this.metrics.drift.inc();
      this.o.log.warn({ drift }, 'kernel rules differ from what skiff wrote; repairing with a full sync');
      this.needFull = true;
      if (this.pendingSince === undefined) this.pendingSince = this.now();
      if (this.started) await this.sync();
    }
    return drift;
  }

  private nodeContext(): NodeContext {
    const { config } = this.o;
    const node = this.o.cache.store('nodes').get(config.nodeName);
    return {
      nodeName: config.nodeName,
      ...(node?.zone ? { zone: node.zone } : {}),
      clusterCIDRs: config.clusterCIDRs,
      serviceCIDRs: config.serviceCIDRs,
      nodePortAddresses: config.proxy.nodePortAddresses,
      masqueradeAll: config.proxy.masqueradeAll,
    };
  }

  private desired(key: string, ctx: NodeContext): ServicePort[] {
    const svc = this.o.cache.store('services').get(key);
    if (!svc) return [];
    const r = desiredService(svc, this.o.cache.store('endpointslices').byIndex('service', key), ctx);
    for (const p of r.problems) this.o.log.warn({ object: p.object }, `skipping invalid input: ${p.reason}`);
    return r.ports;
  }

  private async syncOnce(): Promise<void> {
    const start = this.now();
    const ctx = this.nodeContext();
    const full = this.needFull || !isDeepStrictEqual(ctx, this.ctx);
    const keys = full ? union(this.o.cache.store('services').keys(), this.current.keys()) : this.dirty;
    this.dirty = new Set();
    const triggers = this.triggers;
    this.triggers = [];
    let changes: ServiceChange[] = [];
    let accounts: Accounts | undefined;
    const computed = full ? new ComputedServices(keys, (key) => this.desired(key, ctx)) : undefined;
    if (!computed) {
      for (const key of keys) {
        const ports = this.desired(key, ctx);
        if (!isDeepStrictEqual(this.current.get(key) ?? [], ports)) changes.push({ key, ports });
      }
      if (changes.length === 0) {
        this.settled(start, false, triggers);
        return;
      }
    }
    try {
      if (computed) {
        const slices = this.o.cache.store('endpointslices');
        const bounds = (): Bounds => boundsOfObjects(this.o.cache.store('services').values(), slices.values());
        // The accounting of every Service is done while the kernel loads the last elements.
        const whileApplying = (): void => void (accounts = accountsOf(computed.all()));
        await this.o.dataplane.full(computed, ctx, { bounds, whileApplying });
        accounts ??= accountsOf(computed.all());
        changes = [...computed.all()].map(([key, ports]) => ({ key, ports }));
      } else {
        await this.o.dataplane.partial(changes, ctx);
      }
    } catch (e) {
      this.needFull = true;
      // Failing syncs are stalled ones for liveness too, also when no watch event is queued.
      this.pendingSince ??= start;
      for (const k of keys) this.dirty.add(k);
      this.triggers.push(...triggers);
      this.metrics.syncFailures.inc();
      this.failures++;
      const delay = Math.min(1000 * 2 ** Math.min(this.failures - 1, 5), this.o.config.proxy.syncPeriod);
      this.o.log.error({ err: (e as Error).message, full, retryInMs: delay }, 'proxy sync failed; the next sync is full');
      if (this.started && !this.retryTimer) this.retryTimer = setTimeout(() => ((this.retryTimer = undefined), void this.sync()), delay);
      return;
    }
    this.failures = 0;
    this.needFull = false;
    this.ctx = ctx;
    // After a restart the previous state is unknown: nothing to compare, so nothing is flushed
    // (and at 50,000 Services a map of it would be garbage in the first sync).
    const previous = this.synced ? new Map<string, readonly ServicePort[]>() : undefined;
    for (const c of changes) {
      previous?.set(c.key, this.current.get(c.key) ?? []);
      if (c.ports.length) this.current.set(c.key, c.ports);
      else this.current.delete(c.key);
    }
    if (accounts) this.accounts = accounts;
    else for (const c of changes) this.account(c.key, c.ports);
    const total = this.accounts.total;
    this.metrics.services.set(total.ports);
    this.metrics.endpoints.set(total.endpoints);
    this.metrics.noLocalEndpoints.set({ traffic_policy: 'internal' }, total.noLocalInternal);
    this.metrics.noLocalEndpoints.set({ traffic_policy: 'external' }, total.noLocalExternal);
    this.settled(start, full, triggers);
    if (previous) await this.cleanConntrack(changes, previous);
    this.synced = true;
    await this.healthChecks?.sync(this.healthTargets());
    if (full) this.o.afterFullSync?.();
  }

  private settled(start: number, full: boolean, triggers: readonly number[]): void {
    const end = this.now();
    const secs = (end - start) / 1000;
    this.metrics.syncDuration.observe(secs);
    (full ? this.metrics.fullSyncDuration : this.metrics.partialSyncDuration).observe(secs);
    this.metrics.lastSync.set(end / 1000);
    for (const t of triggers) this.metrics.programming.observe(Math.max(0, end - t) / 1000);
    this.lastSuccess = end;
    this.pendingSince = this.dirty.size > 0 || this.needFull ? end : undefined;
  }

  /** A partial sync's change to the accounts: the Service's old figures out, the new ones in. */
  private account(key: string, ports: readonly ServicePort[]): void {
    const a = this.accounts;
    const before = a.stats.get(key) ?? ZERO;
    const after = statsOf(ports);
    for (const k of STAT_KEYS) a.total[k] += after[k] - before[k];
    if (ports.length) a.stats.set(key, after);
    else a.stats.delete(key);
    const hc = healthTargetsOf(key, ports);
    if (hc) a.hcTargets.set(key, hc);
    else a.hcTargets.delete(key);
  }

  private healthTargets(): Map<number, HealthCheckTarget> {
    const out = new Map<number, HealthCheckTarget>();
    for (const m of this.accounts.hcTargets.values()) for (const [port, t] of m) out.set(port, t);
    return out;
  }

  private async cleanConntrack(changes: readonly ServiceChange[], previous: ReadonlyMap<string, readonly ServicePort[]>): Promise<void> {
    if (!this.o.run) return;
    const flows: string[][] = [];
    for (const c of changes) {
      const old = new Map((previous.get(c.key) ?? []).map((p) => [p.id + p.family, p]));
      const seen = new Set<string>();
      for (const p of c.ports) {
        seen.add(p.id + p.family);
        flows.push(...staleFlows(old.get(p.id + p.family), p));
      }
      for (const [id, p] of old) if (!seen.has(id)) flows.push(...staleFlows(p, undefined));
    }
    try {
      await flushFlows(this.o.run, flows);
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'conntrack cleanup failed');
    }
  }
}
