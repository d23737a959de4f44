// Runs the DNS server in worker threads, not in the agent's main thread: answers must not wait
// while the main thread renders a proxy full sync or collects its (much larger) heap. Threads, not
// processes: a process costs a whole Node runtime (about 60 MB each, measured), a thread its own
// V8 heap only. The main thread feeds each thread a snapshot of the kinds DNS reads and then every
// change batch, collects their metric deltas, and restarts a thread that dies.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Config } from '../../common/config.js';
import { dnsCpus, startOnCpus } from '../../common/cpu-split.js';
import { SkiffError } from '../../common/errors.js';
import type { ChangeBatch, WatchCache } from '../../common/watch/store.js';
import type { AnswerFeed, FeedTable } from '../answer-feed.js';
import { mergeAll } from '../metrics.js';
import type { Bound } from '../server/listeners.js';
import { resolveUdpBackend } from '../server/native-udp.js';
import type { EndpointSliceInfo, ServiceInfo } from '../../common/types.js';
import { dnsService, dnsSlice, headlessChanged, SLICE_SERVICE_INDEX, sliceService } from './feed.js';
import { FED_KINDS, type FromWorker, type ObjectUpdate, type ThreadData, type ToWorker } from './protocol.js';

const here = dirname(fileURLToPath(import.meta.url));
const fromSources = !import.meta.url.includes('/dist/');

/** Threads alive now, for tests and the footprint bench. */
const live = new Set<Worker>();
export function dnsThreads(): readonly Worker[] {
  return [...live];
}

/**
 * A thread runs the compiled worker.js; from sources it first registers tsx inside the thread
 * (a Worker's execArgv cannot take --import on Node 20).
 */
export function spawnThread(workerData: ThreadData = { cpus: dnsCpus() }): Worker {
  // Created on the DNS CPUs (the agent starts its DNS threads as the proxy's first full sync starts).
  return startOnCpus(workerData.cpus, () => {
    if (!fromSources) return new Worker(join(here, 'worker.js'), { workerData });
    const tsx = pathToFileURL(join(here, '../../node_modules/tsx/dist/esm/api/index.mjs')).href;
    const entry = pathToFileURL(join(here, 'worker.ts')).href;
    return new Worker(`import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); })`, { eval: true, workerData });
  });
}

export interface PoolOptions {
  readonly workers: number;
  readonly forward?: { timeoutMs?: number; deadlineMs?: number; healthIntervalMs?: number };
  readonly startTimeoutMs?: number;
  /** Sockets to serve on instead of binding (handoff.ts), asked for at each thread start. */
  readonly inherit?: () => ReadonlyMap<string, number>;
  /** The descriptors a thread serves on once it listens ("udp|tcp address port" -> fd). */
  readonly onSockets?: (fds: ReadonlyMap<string, number>, unused: readonly number[]) => void;
  /** Answers to feed before they leave (answer-feed.ts): the table goes to every thread, their adds come back here. */
  readonly feed?: AnswerFeed;
}

export class WorkerPool {
  private readonly workers = new Set<Worker>();
  private unsubscribe?: () => void;
  private addresses: readonly string[] = [];
  private port = 0;
  /** Set after the first thread bound port 0 with the addon: the others join its ports. */
  private ports?: number[];
  private stopping = false;
  private feedTable: FeedTable | undefined;
  private unfeed?: () => void;

  constructor(
    private readonly cache: WatchCache,
    private cfg: Config,
    private readonly log: Logger,
    private readonly o: PoolOptions,
  ) {}

  /** Only this node's Node object matters to DNS (its addresses may query); not 5000 of them. */
  private fed(kind: (typeof FED_KINDS)[number], key: string): boolean {
    return kind !== 'nodes' || key === this.cfg.nodeName;
  }

  /** The object as a thread gets it (feed.ts): trimmed to what DNS reads; undefined: the thread holds none. */
  private trimmed(kind: (typeof FED_KINDS)[number], obj: unknown): unknown {
    if (obj === undefined) return undefined;
    if (kind === 'services') return dnsService(obj as ServiceInfo);
    if (kind !== 'endpointslices') return obj;
    const s = obj as EndpointSliceInfo;
    const svc = s.serviceName ? this.cache.store('services').get(`${s.namespace}/${s.serviceName}`) : undefined;
    return dnsSlice(s, svc?.headless ?? false);
  }

  private snapshot(): { updates: ObjectUpdate[]; synced: typeof FED_KINDS } {
    const updates: ObjectUpdate[] = [];
    for (const kind of FED_KINDS) {
      if (kind === 'endpointslices') {
        this.headlessSlices(updates);
        continue;
      }
      const store = this.cache.store(kind);
      for (const key of store.keys()) {
        if (!this.fed(kind, key)) continue;
        const obj = this.trimmed(kind, store.get(key));
        if (obj !== undefined) updates.push({ kind, key, obj });
      }
    }
    return { updates, synced: FED_KINDS.filter((k) => this.cache.synced([k])) };
  }

  /**
   * The slices that travel (feed.ts dnsSlice: a headless Service's), found from the Services: the
   * others need no removal in a fresh thread, and looking up every slice's Service was ~50 ms of the
   * main thread at 50,000 Services, in the middle of the proxy's first full sync.
   */
  private headlessSlices(updates: ObjectUpdate[]): void {
    const slices = this.cache.store('endpointslices');
    for (const svc of this.cache.store('services').values()) {
      if (!svc.headless) continue;
      for (const s of slices.byIndex(SLICE_SERVICE_INDEX, `${svc.namespace}/${svc.name}`)) {
        const obj = dnsSlice(s, true);
        if (obj !== undefined) updates.push({ kind: 'endpointslices', key: `${s.namespace}/${s.name}`, obj });
      }
    }
  }

  private updates(b: ChangeBatch): ObjectUpdate[] {
    const out: ObjectUpdate[] = [];
    const sent = new Set<string>();
    for (const c of b.changes) {
      if (!this.fed(c.kind, c.key)) continue;
      out.push({ kind: c.kind, key: c.key, obj: this.trimmed(c.kind, c.current) });
      if (c.kind === 'endpointslices') sent.add(c.key);
    }
    // A Service that became headless (or stopped being) changes which endpoints DNS needs: its
    // slices go again, with or without their endpoints.
    for (const c of b.changes) {
      if (!headlessChanged(c.kind, c.previous, c.current)) continue;
      for (const s of this.cache.store('endpointslices').byIndex(SLICE_SERVICE_INDEX, c.key)) {
        const key = `${s.namespace}/${s.name}`;
        if (sent.has(key)) continue;
        sent.add(key);
        out.push({ kind: 'endpointslices', key, obj: this.trimmed('endpointslices', s) });
      }
    }
    return out;
  }

  /** Starts the threads; the first binds (port 0: picks the port), the others join its ports. */
  async start(addresses: readonly string[], port: number): Promise<Bound[]> {
    this.addresses = addresses;
    this.port = port;
    this.cache.store('endpointslices').addIndex(SLICE_SERVICE_INDEX, sliceService);
    // Subscribe before the first snapshot so no change falls between the two.
    const pending: ObjectUpdate[] = [];
    let started = false;
    this.unsubscribe = this.cache.subscribe([...FED_KINDS], (b) => {
      const updates = this.updates(b);
      if (!started) return void pending.push(...updates);
      if (updates.length > 0 || b.synced.length > 0) this.broadcast({ t: 'batch', updates, synced: b.synced });
    });
    this.unfeed = this.o.feed?.subscribe((table) => {
      this.feedTable = table;
      this.broadcast({ t: 'feed', table });
    });
    const first = await this.spawn(true);
    if (port === 0) this.ports = first.map((b) => b.port);
    const rest = await Promise.all(Array.from({ length: this.size0() - 1 }, () => this.spawn(false)));
    started = true;
    if (pending.length > 0) this.broadcast({ t: 'batch', updates: pending, synced: [] });
    return [...first, ...rest.flat()].filter((b, i, all) => all.findIndex((x) => x.address === b.address && x.port === b.port) === i);
  }

  /** Several threads need the addon's SO_REUSEPORT group; with dgram only one can bind. */
  private size0(): number {
    return resolveUdpBackend(this.cfg.dns.udpBackend).backend === 'native' ? this.o.workers : 1;
  }

  private spawn(tcp: boolean): Promise<Bound[]> {
    const w = spawnThread();
    this.workers.add(w);
    live.add(w);
    let inherited: ReadonlyMap<string, number> | undefined;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new SkiffError('ERR_DNS_WORKER', 'dns thread did not start in time')), this.o.startTimeoutMs ?? 30_000);
      w.on('message', (m: FromWorker) => {
        if (m.t === 'ready') {
          const snap = this.snapshot();
          const workers = this.size0();
          inherited = tcp && workers === 1 ? this.o.inherit?.() : undefined;
          const init: ToWorker = { t: 'init', config: this.cfg, addresses: this.addresses, port: this.port, ports: this.ports, workers, tcp, inherited: inherited && Object.fromEntries(inherited), updates: snap.updates, synced: snap.synced, forward: this.o.forward, feed: this.feedTable };
          w.postMessage(init);
        } else if (m.t === 'listening') {
          clearTimeout(timer);
          if (tcp && this.size0() === 1) {
            const used = new Set(Object.values(m.fds));
            this.o.onSockets?.(new Map(Object.entries(m.fds)), [...(inherited?.values() ?? [])].filter((fd) => !used.has(fd)));
          }
          resolve([...m.bound]);
        } else if (m.t === 'feed-add') {
          const done = (error?: string): void => w.postMessage({ t: 'feed-done', id: m.id, ...(error === undefined ? {} : { error }) } satisfies ToWorker);
          const feed = this.o.feed;
          if (!feed) done('no answer feed');
          else feed.add(m.elements).then(() => done(), (e: unknown) => done((e as Error).message));
        } else if (m.t === 'metrics') mergeAll(m.deltas, `thread-${w.threadId}`);
        else if (m.t === 'error') {
          this.log.error({ thread: w.threadId, err: m.message }, 'dns: thread error');
          clearTimeout(timer);
          reject(new SkiffError('ERR_DNS_WORKER', m.message));
        }
      });
      w.on('error', (e: Error) => this.log.error({ thread: w.threadId, err: e.message }, 'dns: thread failed'));
      w.on('exit', (code) => {
        this.workers.delete(w);
        live.delete(w);
        clearTimeout(timer);
        if (this.stopping) return;
        this.log.error({ thread: w.threadId, code }, 'dns: thread exited, starting another');
        void this.spawn(tcp).catch((e: unknown) => this.log.error({ err: (e as Error).message }, 'dns: thread restart failed'));
      });
    });
  }

  private broadcast(m: ToWorker): void {
    for (const w of this.workers) w.postMessage(m);
  }

  reconfigure(cfg: Config): void {
    this.cfg = cfg;
    this.broadcast({ t: 'config', config: cfg });
  }

  get size(): number {
    return this.workers.size;
  }

  async close(): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    this.unfeed?.();
    await Promise.all(
      [...this.workers].map(
        (w) =>
          new Promise<void>((resolve) => {
            const kill = setTimeout(() => void w.terminate(), 3000);
            w.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            w.postMessage({ t: 'stop' } satisfies ToWorker);
          }),
      ),
    );
    this.workers.clear();
  }
}
