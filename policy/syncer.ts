// The policy sync loop: watch batches (policies, pods anywhere, namespaces, admin policies) mark
// objects dirty and schedule one sync at a time; a sync hands the dirty objects to the warm engine
// (pure, engine.ts: desired state and table updated per object) and lets the dataplane write the
// difference. The first sync computes everything; a failed write makes the next one full.
// Two additions on top of that loop:
//   - pods the CNI has just wired (attached) are known by address before the API says so, and
//     ADD waits for the sync that carries them: a pod's first packet already meets its policy;
//   - strict mode: after a write, conntrack entries of flows the new state denies are deleted. The
//     cut runs beside the loop, never in a sync: a sync (an ADD, a policy removed) must not wait
//     for conntrack, and the cut judges flows on the latest state written, not the one that
//     started it.
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../common/config.js';
import type { Health } from '../common/health.js';
import type { PodAttachment, PodListener } from '../common/pod-hooks.js';
import type { AdminPolicyInfo, PolicyPodInfo } from '../common/types.js';
import type { PolicyNodeInfo } from './admin.js';
import type { WatchCache } from '../common/watch/store.js';
import { deniedFlows, execConntrack, type ConntrackTable, type Flow } from './conntrack.js';
import type { PolicyDataplane } from './dataplane.js';
import type { PolicyTable } from './render.js';
import type { DesiredState, PolicyInputs } from './desired.js';
import { PolicyEngine } from './engine.js';
import { fqdnTable, type FqdnFeed } from './fqdn.js';
import type { ChangeBatch } from '../common/watch/store.js';
import type { Runner } from './exec.js';
import { policyMetrics, type PolicyMetrics } from './metrics.js';
import { untilAborted } from '../common/component.js';
import { idleMinorGC, majorGC } from '../common/idle-gc.js';

const KINDS = ['networkpolicies', 'policypods', 'namespaces', 'nodes', 'clusternetworkpolicies', 'adminnetworkpolicies', 'baselineadminnetworkpolicies'] as const;
const ADMIN_KINDS = ['clusternetworkpolicies', 'adminnetworkpolicies', 'baselineadminnetworkpolicies'] as const;
const NS_INDEX = 'policy.namespace';
const ATTACHED_TTL_MS = 10 * 60_000;
/**
 * Strict mode's cut waits until no sync has run for CUT_QUIET_MS, at most CUT_MAX_WAIT_MS: every
 * cut dumps the whole conntrack table, and the kernel walks all of its hash buckets for that
 * (262,144 here: 3.5 ms even with no entry, on the agent's thread), so a burst of changes shares
 * one dump instead of each one's dump delaying the next change. Denied flows are still cut well
 * within the 1 s strict mode promises.
 */
const CUT_QUIET_MS = 30;
const CUT_MAX_WAIT_MS = 200;

export interface SyncerOptions {
  readonly cache: WatchCache;
  readonly config: Config;
  readonly log: Logger;
  readonly health: Health;
  readonly dataplane: PolicyDataplane;
  /** Runs ip for strict mode, and conntrack(8) unless `conntrack` is given. */
  readonly run: Runner;
  /** Strict mode's conntrack access (default: conntrack(8) through `run`). */
  readonly conntrack?: ConntrackTable;
  /** How long an ADD waits for the policy caches and for a pod the watch has not delivered yet. */
  readonly attachTimeoutMs?: number;
  readonly now?: () => number;
  /** FQDN egress (fqdn.ts): told which answers feed which sets after each write. */
  readonly fqdn?: FqdnFeed;
}

export class PolicySyncer implements PodListener {
  /** Addresses the CNI gave pods the API does not show yet, by "namespace/name", and when. */
  private readonly attachedIPs = new Map<string, { readonly ips: readonly string[]; readonly at: number }>();
  private state: DesiredState | undefined;
  /** The engine, kept warm between syncs; undefined until the first (full) sync. */
  private engine: PolicyEngine | undefined;
  /** Objects changed since the last sync, as "kind\u0000key"; pods also when the CNI attached them. */
  private dirty = new Set<string>();
  private running: Promise<void> | undefined;
  private again = false;
  /** Syncs started so far, and who waits for the end of one of them (an ADD: its own sync only). */
  private syncsStarted = 0;
  private syncWaiters: { readonly n: number; readonly done: (err: Error | undefined) => void }[] = [];
  private started = false;
  private lastError: Error | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private readonly startedWaiters = new Set<() => void>();
  /** Strict mode: the cut running, and what the next one must look at (all flows, or these addresses'). */
  private cutting: Promise<void> | undefined;
  private cutNext: { all: boolean; only: Set<string>; at: number } | undefined;
  /**
   * Addresses a pod just got from its CNI ADD, not yet written. No flow of that pod can exist
   * before its interface has the address, so the dispatch its ADD adds cannot deny an established
   * flow: the ADD's sync requests no cut for them, unless the address is in `released`.
   */
  private fresh = new Set<string>();
  /**
   * Addresses conntrack may still hold flows of from an earlier owner (a local pod deleted, or an
   * address seen in the first full cut's listing with no pod): an ADD reusing one is cut-judged as
   * before. Undefined until the first full cut has listed the table (the history before this
   * process is unknown until then).
   */
  private released: Set<string> | undefined;
  /** Local pods' addresses as last computed, to know what a deleted or readdressed pod released. */
  private readonly localIPs = new Map<string, readonly string[]>();
  /** When the last sync ended (performance.now(): the cut waits for a quiet moment). */
  private lastSyncEnd = 0;
  private nodeAddrs: { at: number; addrs: Set<string> } | undefined;
  readonly metrics: PolicyMetrics = policyMetrics();
  private readonly now: () => number;
  private readonly conntrack: ConntrackTable;

  constructor(private readonly o: SyncerOptions) {
    this.now = o.now ?? Date.now;
    this.conntrack = o.conntrack ?? execConntrack(o.run);
    o.health.addReadiness('policy', () => ({ ok: this.state !== undefined }));
    o.cache.store('networkpolicies').addIndex(NS_INDEX, (p) => [p.namespace]);
    this.metrics.source = () => o.dataplane.denied();
  }

  /** The desired state last written to the kernel. */
  get desired(): DesiredState | undefined {
    return this.state;
  }

  async run(signal: AbortSignal): Promise<void> {
    const { cache, config } = this.o;
    // A burst of events collapses twice: into one batch, and into the one sync queued behind a running one.
    const unsubscribe = cache.subscribe([...KINDS], (b) => this.onBatch(b));
    // Drift repair: a table deleted behind our back (or an nft flush) comes back within the period.
    const period = setInterval(() => void this.check(), config.proxy.syncPeriod);
    try {
      await cache.waitForSync([...KINDS], signal);
      this.started = true;
      await this.sync();
      for (const w of [...this.startedWaiters]) w();
      // Aborted during the first sync: the event has fired already.
      await untilAborted(signal);
    } catch (e) {
      if (!signal.aborted) throw e;
    } finally {
      clearInterval(period);
      unsubscribe();
      this.started = false;
      if (this.retryTimer) clearTimeout(this.retryTimer);
      await this.running?.catch(() => undefined);
      await this.settled();
      this.metrics.source = undefined;
    }
  }

  /** Feeds a watch batch: only the changed objects are handed to the engine at the next sync. */
  onBatch(batch: ChangeBatch): void {
    for (const c of batch.changes) this.dirty.add(`${c.kind}\u0000${c.key}`);
    if (this.started) void this.sync();
  }

  /** Runs a sync now (or after the running one, coalesced); resolves when it is done. */
  sync(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        const n = ++this.syncsStarted;
        let err: Error | undefined;
        try {
          await this.syncOnce();
          err = this.lastError;
        } catch (e) {
          err = e as Error;
          throw e;
        } finally {
          if (this.syncWaiters.length > 0) {
            const ready = this.syncWaiters.filter((w) => w.n <= n);
            this.syncWaiters = this.syncWaiters.filter((w) => w.n > n);
            for (const w of ready) w.done(err);
          }
        }
      } while (this.again);
    })().finally(() => {
      this.running = undefined;
      this.lastSyncEnd = performance.now();
    });
    return this.running;
  }

  /**
   * Resolves when the next sync to start has ended (the first to see what is dirty now), with its
   * error: not after the syncs queued behind it, which an ADD does not need.
   */
  private nextSync(): Promise<Error | undefined> {
    const n = this.syncsStarted + 1;
    const p = new Promise<Error | undefined>((done) => this.syncWaiters.push({ n, done }));
    void this.sync();
    return p;
  }

  async check(): Promise<void> {
    if (!this.started || this.state === undefined) return;
    const present = await this.o.dataplane.present().catch(() => false);
    if (present) return;
    this.o.log.warn('the policy table is gone; rewriting it');
    this.o.dataplane.invalidate();
    await this.sync();
  }

  /** Everything, for a full computation (the first sync). */
  private inputs(): PolicyInputs {
    const { cache } = this.o;
    const pods: PolicyPodInfo[] = [];
    for (const [key] of this.attachedIPs) if (!cache.store('policypods').get(key)) pods.push(...opt(this.effective(key)));
    for (const p of cache.store('policypods').values()) pods.push(this.attachedIPs.size > 0 ? (this.effective(`${p.namespace}/${p.name}`) ?? p) : p);
    const admin = this.admin();
    return { policies: [...cache.store('networkpolicies').values()], pods, namespaces: [...cache.store('namespaces').values()], admin, nodes: this.nodes(admin.length > 0) };
  }

  /**
   * The pod as policy sees it: the API's object, with the address its ADD gave it while the API
   * shows none yet (the API's addresses win once it has some).
   */
  private effective(key: string): PolicyPodInfo | undefined {
    const stored = this.o.cache.store('policypods').get(key);
    const a = this.attachedIPs.get(key);
    if (!a) return stored;
    if (stored && stored.podIPs.length > 0) {
      if (sameIPs(stored.podIPs, a.ips)) this.attachedIPs.delete(key);
      return stored;
    }
    const p = stored ?? this.fromLocal(key);
    if (!p) {
      // Deleted without a DEL reaching us (a node crash): forget it after a while.
      if (this.now() - a.at > ATTACHED_TTL_MS) this.attachedIPs.delete(key);
      return undefined;
    }
    return { ...p, podIPs: a.ips };
  }

  private admin(): AdminPolicyInfo[] {
    return ADMIN_KINDS.flatMap((k) => [...this.o.cache.store(k).values()]);
  }

  /** Nodes matter only as peers of admin policies (`nodes` selectors). */
  private nodes(needed: boolean): PolicyNodeInfo[] {
    if (!needed) return [];
    return [...this.o.cache.store('nodes').values()].map((n) => ({ name: n.name, labels: n.labels, addresses: n.addresses.filter((a) => isIP(a.address) !== 0).map((a) => a.address) }));
  }

  /** Hands the changed objects to the engine; the first sync computes everything. */
  private compute(): PolicyEngine {
    const { config, cache } = this.o;
    const dirty = this.dirty;
    this.dirty = new Set();
    if (!this.engine) {
      const inputs = this.inputs();
      this.localIPs.clear();
      for (const p of inputs.pods) this.noteLocal(`${p.namespace}/${p.name}`, p);
      this.engine = new PolicyEngine({ nodeName: config.nodeName, dnsAddresses: this.dnsAddresses() }, { families: this.families(), logDenied: config.policy.logDenied }, inputs);
      return this.engine;
    }
    const e = this.engine;
    let admin = false;
    let nodes = false;
    for (const id of dirty) {
      const [kind, key] = id.split('\u0000') as [string, string];
      if (kind === 'policypods') {
        const p = this.effective(key);
        this.noteLocal(key, p);
        if (p) e.setPod(p);
        else e.deletePod(key);
      } else if (kind === 'networkpolicies') {
        const p = cache.store('networkpolicies').get(key);
        if (p) e.setPolicy(p);
        else e.deletePolicy(key);
      } else if (kind === 'namespaces') {
        const ns = cache.store('namespaces').get(key);
        if (ns) e.setNamespace(ns);
        else e.deleteNamespace(key);
      } else if (kind === 'nodes') nodes = true;
      else admin = true;
    }
    const list = this.admin();
    if (admin) e.setAdmin(list);
    if (admin || (nodes && list.length > 0)) e.setNodes(this.nodes(list.length > 0));
    return e;
  }

  /** Keeps `localIPs` current; addresses a local pod no longer has go to `released`. */
  private noteLocal(key: string, p: PolicyPodInfo | undefined): void {
    const ips = p && p.nodeName === this.o.config.nodeName ? p.podIPs : [];
    const old = this.localIPs.get(key);
    if (old) for (const ip of old) if (!ips.includes(ip)) this.released?.add(ip);
    if (ips.length > 0) this.localIPs.set(key, ips);
    else this.localIPs.delete(key);
  }

  /** A pod the node-local watch has but the cluster-wide one has not delivered yet. */
  private fromLocal(key: string): PolicyPodInfo | undefined {
    const p = this.o.cache.store('pods').get(key);
    if (!p) return undefined;
    return { namespace: p.namespace, name: p.name, nodeName: p.nodeName, hostNetwork: p.hostNetwork, podIPs: p.podIPs, labels: p.labels, namedPorts: [] };
  }

  private dnsAddresses(): string[] {
    const { config } = this.o;
    return config.dns.enabled ? [...config.dnsServiceIPs, ...config.dns.listen] : [];
  }

  private families(): (4 | 6)[] {
    const f = new Set(this.o.config.clusterCIDRs.map((c) => (isIP(c.split('/')[0]!) === 6 ? 6 : 4)));
    return [...f].sort() as (4 | 6)[];
  }

  private async syncOnce(): Promise<void> {
    const start = this.now();
    const { config, dataplane, log } = this.o;
    let result;
    let desired: DesiredState;
    let table: PolicyTable;
    let fresh: ReadonlySet<string> = new Set();
    try {
      let engine: PolicyEngine;
      fresh = this.fresh;
      this.fresh = new Set();
      try {
        engine = this.compute();
      } catch (e) {
        // The engine's state is in doubt: the next sync starts it over from the cache.
        this.engine = undefined;
        throw e;
      }
      desired = engine.state;
      table = engine.table;
      result = await dataplane.apply(table);
    } catch (e) {
      this.lastError = e as Error;
      this.metrics.syncFailures.inc();
      this.failures++;
      const delay = Math.min(1000 * 2 ** Math.min(this.failures - 1, 5), config.proxy.syncPeriod);
      log.error({ err: (e as Error).message, retryInMs: delay }, 'policy sync failed; the next sync is full');
      if (this.started && !this.retryTimer) this.retryTimer = setTimeout(() => ((this.retryTimer = undefined), void this.sync()), delay);
      return;
    }
    this.lastError = undefined;
    this.failures = 0;
    this.state = desired;
    // The first ADD after a (re)start would compile the write path's code: done here instead.
    // A full load also grew the heap by the whole table, and V8's marking of it would run in
    // the next ADDs (a 17 ms mark-compact pause and marking steps seen in the first adds): once,
    // now, while no sync runs.
    if (result.full)
      setImmediate(() => {
        dataplane.warm(table);
        if (!this.running) majorGC();
      });
    // Only now do the sets exist for DNS to fill; a full load emptied them.
    if (this.o.fqdn) {
      this.o.fqdn.publish(fqdnTable(desired, table));
      if (result.full) await this.o.fqdn.restore();
    }
    let ingress = 0;
    let egress = 0;
    let scheduled = 0;
    for (const p of desired.pods.values()) {
      // Not wired yet (its rules are written ahead of the CNI ADD): nothing to isolate so far.
      if (p.ips.length === 0) {
        scheduled++;
        continue;
      }
      if (p.ingress) ingress++;
      if (p.egress) egress++;
    }
    // An ADD is coming (a pod scheduled here waits for one) or came (pods come in bursts): its
    // sync starts with an empty young generation instead of scavenging inside it. Not after
    // every sync: other work (a burst of policy changes) would only collect more often.
    if (scheduled > 0 || fresh.size > 0) idleMinorGC(() => this.running !== undefined);
    this.metrics.pods.set({ direction: 'ingress' }, ingress);
    this.metrics.pods.set({ direction: 'egress' }, egress);
    if (result.changed && config.policy.strictEstablished && result.mayDeny) {
      // Only pods that just got their address became policied: their flows cannot exist yet.
      const only = result.only?.filter((ip) => !(fresh.has(ip) && this.released && !this.released.has(ip)));
      if (only === undefined || only.length > 0) this.requestCut(only);
    }
    const secs = (this.now() - start) / 1000;
    this.metrics.syncDuration.observe({ kind: result.full ? 'full' : 'partial' }, secs);
    this.metrics.lastSync.set(this.now() / 1000);
    if (result.changed) log.debug({ full: result.full, pods: desired.pods.size, ms: Math.round(secs * 1000) }, 'policy synced');
  }

  /** Resolves when no strict-mode cut is running or queued (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.cutting) await this.cutting;
  }

  /** Queues a cut: of every flow, or (`only`) of flows to and from these addresses. */
  private requestCut(only: readonly string[] | undefined): void {
    const next = (this.cutNext ??= { all: false, only: new Set(), at: performance.now() });
    if (only === undefined) next.all = true;
    else for (const ip of only) next.only.add(ip);
    this.cutting ??= (async () => {
      while (this.cutNext) {
        await this.quiet(this.cutNext.at);
        const job = this.cutNext;
        this.cutNext = undefined;
        await this.cutDenied(job.all ? undefined : job.only);
      }
    })().finally(() => (this.cutting = undefined));
  }

  /**
   * Resolves once no sync has run for CUT_QUIET_MS, or CUT_MAX_WAIT_MS after `since`, and never
   * while a sync runs: the dump holds the agent's thread (the kernel walks the whole hash table in
   * the send), and a sync waiting on its batch's answer (an ADD) would wait for it too.
   */
  private async quiet(since: number): Promise<void> {
    for (;;) {
      const now = performance.now();
      if (this.running && now - since >= CUT_MAX_WAIT_MS) {
        await this.running.catch(() => undefined);
        continue;
      }
      const idle = this.running ? 0 : now - this.lastSyncEnd;
      const wait = Math.min(CUT_QUIET_MS - idle, CUT_MAX_WAIT_MS - (now - since));
      if (wait <= 0) return;
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** Strict mode: delete the conntrack entries of established flows the state last written denies. */
  private async cutDenied(only: ReadonlySet<string> | undefined): Promise<void> {
    if (!this.state || this.state.pods.size === 0 || only?.size === 0) return;
    try {
      const [all, nodeAddresses] = await Promise.all([this.conntrack.list(), this.nodeAddresses()]);
      const flows = only ? all.filter((f) => only.has(f.orig.src) || only.has(f.reply.src)) : all;
      // Judged on the latest state written, again before each delete: a sync that ran meanwhile
      // (the deny already lifted) counts, and a long cut stops as soon as it has.
      const judged = this.state;
      this.sortReleased(all, only, judged);
      const denied = deniedFlows(judged, flows, nodeAddresses);
      if (denied.length === 0) return;
      const n = await this.conntrack.delete(
        denied.map((d) => d.flow),
        (f) => this.state === judged || (this.state !== undefined && deniedFlows(this.state, [f], nodeAddresses).length > 0),
      );
      this.metrics.flowsCut.inc(n);
      this.o.log.info({ flows: n, pods: [...new Set(denied.map((d) => `${d.pod} ${d.direction}`))] }, 'cut established connections a policy now denies');
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'strict mode: conntrack cleanup failed');
    }
  }

  /**
   * After a listing, on the state the cut judges: a released address in the cut's scope that a
   * policied pod holds in that state has its flows judged now, so it leaves the record. The first
   * full listing starts the record with every address in it (more than needed is only a cut more).
   */
  private sortReleased(flows: readonly Flow[], only: ReadonlySet<string> | undefined, judged: DesiredState): void {
    if (!this.released) {
      if (only !== undefined) return;
      this.released = new Set();
      for (const f of flows) for (const ip of [f.orig.src, f.orig.dst, f.reply.src]) this.released.add(ip);
    }
    for (const p of judged.pods.values()) for (const ip of p.ips) if (only === undefined || only.has(ip)) this.released.delete(ip);
  }

  /** The node's own addresses (their connections are never cut), read at most every 10 s. */
  private async nodeAddresses(): Promise<Set<string>> {
    if (this.nodeAddrs && this.now() - this.nodeAddrs.at < 10_000) return this.nodeAddrs.addrs;
    const out = JSON.parse(await this.o.run('ip', ['-j', 'addr', 'show'])) as { addr_info?: { local?: string }[] }[];
    const addrs = new Set(out.flatMap((l) => (l.addr_info ?? []).map((a) => a.local).filter((a): a is string => !!a)));
    this.nodeAddrs = { at: this.now(), addrs };
    return addrs;
  }

  // ---- the CNI hooks ----

  async attached(pod: PodAttachment): Promise<void> {
    const key = `${pod.namespace}/${pod.name}`;
    const timeout = this.o.attachTimeoutMs ?? 5000;
    const deadline = this.now() + timeout;
    if (this.state === undefined) await this.waitStarted(timeout);
    this.attachedIPs.set(key, { ips: pod.ips, at: this.now() });
    for (const ip of pod.ips) this.fresh.add(ip);
    // Another local pod still holds the address (its delete not seen yet): its flows may be there.
    for (const [k, ips] of this.localIPs) if (k !== key) for (const ip of ips) if (pod.ips.includes(ip)) this.released?.add(ip);
    this.dirty.add(`policypods\u0000${key}`);
    // No policy anywhere: nothing isolates the pod and no peer set exists to put it in. The sync
    // still runs, so a policy that arrives next finds the address.
    if (this.o.cache.store('networkpolicies').size === 0 && ADMIN_KINDS.every((k) => this.o.cache.store(k).size === 0)) return void this.sync();
    // Without the pod's labels nothing says whether a policy selects it. A namespace with no
    // policy isolates nobody (unless a cluster-wide admin policy exists), so only there may the
    // pod start before the watch delivers it.
    const adminPolicies = ADMIN_KINDS.some((k) => this.o.cache.store(k).size > 0);
    while (!this.known(key) && (adminPolicies || this.policiesIn(pod.namespace))) {
      if (this.now() > deadline) {
        this.attachedIPs.delete(key);
        throw new Error(`pod ${key} is not in the watch cache yet; its namespace has NetworkPolicies`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const err = await this.nextSync();
    if (err) {
      // The ADD fails and its address goes back to the pool: it must not stay in the rules.
      this.attachedIPs.delete(key);
      this.dirty.add(`policypods\u0000${key}`);
      throw new Error(`policy rules for ${key} could not be written: ${err.message}`);
    }
  }

  async detached(pod: Omit<PodAttachment, 'ips'>): Promise<void> {
    const key = `${pod.namespace}/${pod.name}`;
    if (!this.attachedIPs.delete(key)) return;
    this.dirty.add(`policypods\u0000${key}`);
    if (this.started) void this.sync();
  }

  private known(key: string): boolean {
    return this.o.cache.store('policypods').get(key) !== undefined || this.o.cache.store('pods').get(key) !== undefined;
  }

  private policiesIn(namespace: string): boolean {
    return this.o.cache.store('networkpolicies').byIndex(NS_INDEX, namespace).length > 0;
  }

  private waitStarted(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.startedWaiters.delete(done);
        reject(new Error('policy rules are not in place yet (caches not synced)'));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(t);
        this.startedWaiters.delete(done);
        resolve();
      };
      this.startedWaiters.add(done);
    });
  }
}

function opt<T>(v: T | undefined): T[] {
  return v === undefined ? [] : [v];
}

function sameIPs(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((ip) => b.includes(ip));
}
