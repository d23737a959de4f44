// Runs the DNS server in N worker processes (node:cluster) so every core answers queries. Node 20's
// dgram has no SO_REUSEPORT, but cluster shares one UDP handle between workers; worker_threads
// cannot share a socket at all. The primary feeds each worker a snapshot of the watch cache and
// then every change batch, collects their metric deltas, and restarts a worker that dies.
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Config } from '../../common/config.js';
import { SkiffError } from '../../common/errors.js';
import type { WatchCache } from '../../common/watch/store.js';
import { mergeAll } from '../metrics.js';
import type { Bound } from '../server/listeners.js';
import { resolveUdpBackend } from '../server/native-udp.js';
import { FED_KINDS, type FromWorker, type ObjectUpdate, type ToWorker } from './protocol.js';

export function resolveWorkers(n: number): number {
  return n > 0 ? n : availableParallelism();
}

const here = dirname(fileURLToPath(import.meta.url));
const fromSources = !import.meta.url.includes('/dist/');

/** tsx by absolute URL: a bare "--import tsx" would resolve against the agent's cwd. */
function tsxImport(): string {
  try {
    return import.meta.resolve('tsx');
  } catch {
    return 'tsx';
  }
}

export interface PoolOptions {
  readonly workers: number;
  readonly forward?: { timeoutMs?: number; deadlineMs?: number; healthIntervalMs?: number };
  readonly startTimeoutMs?: number;
}

export class WorkerPool {
  private readonly workers = new Map<number, Worker>();
  private unsubscribe?: () => void;
  private addresses: readonly string[] = [];
  private port = 0;
  /** Set after the first worker bound port 0 with the addon: the others join its ports. */
  private ports?: number[];
  private stopping = false;

  constructor(
    private readonly cache: WatchCache,
    private cfg: Config,
    private readonly log: Logger,
    private readonly o: PoolOptions,
  ) {}

  private snapshot(): { updates: ObjectUpdate[]; synced: typeof FED_KINDS } {
    const updates: ObjectUpdate[] = [];
    for (const kind of FED_KINDS) {
      const store = this.cache.store(kind);
      for (const key of store.keys()) updates.push({ kind, key, obj: store.get(key) });
    }
    return { updates, synced: FED_KINDS.filter((k) => this.cache.synced([k])) };
  }

  /** Starts the workers; all ask for the same port, so with port 0 they still share one socket. */
  async start(addresses: readonly string[], port: number): Promise<Bound[]> {
    this.addresses = addresses;
    this.port = port;
    cluster.setupPrimary({
      exec: join(here, fromSources ? 'worker.ts' : 'worker.js'),
      execArgv: fromSources ? ['--import', tsxImport()] : [],
      args: [],
    });
    // Subscribe before the first snapshot so no change falls between the two.
    const pending: ObjectUpdate[] = [];
    let started = false;
    this.unsubscribe = this.cache.subscribe([...FED_KINDS], (b) => {
      const updates = b.changes.map((c) => ({ kind: c.kind, key: c.key, obj: c.current }));
      if (!started) return void pending.push(...updates);
      this.broadcast({ t: 'batch', updates, synced: b.synced });
    });
    const first = await this.fork();
    // dgram workers share the cluster's handle for port 0; addon sockets are per worker, so the
    // rest must ask for the port the first one got (Bound rows come in address order).
    if (port === 0 && resolveUdpBackend(this.cfg.dns.udpBackend).backend === 'native') this.ports = first.map((b) => b.port);
    const rest = await Promise.all(Array.from({ length: this.o.workers - 1 }, () => this.fork()));
    started = true;
    if (pending.length > 0) this.broadcast({ t: 'batch', updates: pending, synced: [] });
    return [...first, ...rest.flat()].filter((b, i, all) => all.findIndex((x) => x.address === b.address && x.port === b.port) === i);
  }

  private fork(): Promise<Bound[]> {
    const w = cluster.fork({ SKIFF_DNS_WORKER: '1' });
    this.workers.set(w.id, w);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new SkiffError('ERR_DNS_WORKER', 'dns worker did not start in time')), this.o.startTimeoutMs ?? 30_000);
      w.on('message', (m: FromWorker) => {
        if (m.t === 'ready') {
          const snap = this.snapshot();
          const init: ToWorker = { t: 'init', config: this.cfg, addresses: this.addresses, port: this.port, ports: this.ports, workers: this.o.workers, updates: snap.updates, synced: snap.synced, forward: this.o.forward };
          this.post(w, init);
        } else if (m.t === 'listening') {
          clearTimeout(timer);
          resolve([...m.bound]);
        } else if (m.t === 'metrics') mergeAll(m.deltas, `worker-${w.id}`);
        else if (m.t === 'error') {
          this.log.error({ worker: w.id, err: m.message }, 'dns: worker error');
          clearTimeout(timer);
          reject(new SkiffError('ERR_DNS_WORKER', m.message));
        }
      });
      // A worker that dies between two messages makes the IPC write fail with EPIPE; its exit
      // handler below replaces it, so the write error itself is only worth a debug line.
      w.on('error', (e: Error) => this.log.debug({ worker: w.id, err: e.message }, 'dns: worker channel error'));
      w.on('exit', (code, sig) => {
        this.workers.delete(w.id);
        clearTimeout(timer);
        if (this.stopping) return;
        this.log.error({ worker: w.id, code, sig }, 'dns: worker exited, starting another');
        void this.fork().catch((e: unknown) => this.log.error({ err: (e as Error).message }, 'dns: worker restart failed'));
      });
    });
  }

  private broadcast(m: ToWorker): void {
    for (const w of this.workers.values()) this.post(w, m);
  }

  private post(w: Worker, m: ToWorker): void {
    if (!w.isConnected()) return;
    w.send(m, (e: Error | null) => {
      if (e) this.log.debug({ worker: w.id, err: e.message }, 'dns: message to a worker lost');
    });
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
    await Promise.all(
      [...this.workers.values()].map(
        (w) =>
          new Promise<void>((resolve) => {
            const kill = setTimeout(() => w.process.kill('SIGKILL'), 3000);
            w.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            if (w.isConnected()) this.post(w, { t: 'stop' });
            else w.process.kill('SIGTERM');
          }),
      ),
    );
    this.workers.clear();
  }
}
