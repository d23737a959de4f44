// The cluster DNS component: serves the cluster zone and forwards the rest, node-local on the DNS
// Service IPs. run() binds, serves until aborted, then drains (lameduck); cleanup() removes the lo
// addresses and the notrack table.
import { createSocket } from 'node:dgram';
import { watch, type FSWatcher } from 'node:fs';
import { createServer } from 'node:net';
import { isIPv6 } from 'node:net';
import { basename, dirname } from 'node:path';
import type { AgentDeps } from '../common/agent-deps.js';
import { type Component, untilAborted } from '../common/component.js';
import { parseConfig, readConfigFile, type Config } from '../common/config.js';
import { SkiffError } from '../common/errors.js';
import { applyNodeLocal, cleanupNodeLocal, desiredNft, fallbackPeers, hostRunner, managedIPs, nodeListenIPs, type Runner } from './nodelocal.js';
import type { AnswerFeed } from './answer-feed.js';
import { ProbeServers } from './probes.js';
import { buildRuntime, type Runtime } from './runtime.js';
import { DnsListener, type Bound } from './server/listeners.js';
import { releaseHeldSockets, socketKey, SocketHandoff } from './server/handoff.js';
import { loadUdpBatch, resolveUdpBackend, udpBackendOrFail } from './server/native-udp.js';
import { WorkerPool } from './workers/pool.js';

export interface DnsOptions {
  /** Time /health reports lameduck while listeners still answer, before they close. */
  readonly lameduckMs?: number;
  /** Where the lo addresses and the nft table go; tests aim it at a namespace. */
  readonly runner?: Runner;
  /** Set false where the process may not touch the host network (unit tests). */
  readonly nodeLocal?: boolean;
  readonly forward?: { timeoutMs?: number; deadlineMs?: number; healthIntervalMs?: number };
  /** Overrides dns.port (0 picks a free port; tests read it back from onListening). */
  readonly port?: number;
  /** Called once the listeners are bound (tests read the ports). */
  readonly onListening?: (bound: readonly Bound[]) => void;
  /**
   * Node-local only: how long to wait for the cache before binding (default 10 s). Until then the
   * other nodes answer through the fallback, where this agent could only SERVFAIL.
   */
  readonly syncWaitMs?: number;
  /**
   * Leave the sockets with a holder process on exit and take them from the previous agent's on
   * start (server/handoff.ts), so queries wait out a restart instead of failing. The agent sets it;
   * tests that start and stop DNS many times do not.
   */
  readonly handoff?: boolean;
  /**
   * Answers someone must see before the client does (answer-feed.ts): the agent wires policy's
   * FQDN egress here; DNS knows only this interface.
   */
  readonly answers?: AnswerFeed;
}

const SYNC_KINDS = ['services', 'endpointslices', 'nodes'] as const;

/** Settings that only take effect on restart; a live reload that changes them is logged. */
const RESTART_ONLY = ['port', 'listen', 'workers', 'healthPort', 'readyPort', 'udpBackend'] as const;

export function dnsAddresses(cfg: Config): string[] {
  return [...new Set([...cfg.dnsServiceIPs, ...cfg.dns.listen])];
}

export function createDns(deps: AgentDeps, opts: DnsOptions = {}): Component {
  const log = deps.log.child({ component: 'dns' });
  const run = opts.runner ?? hostRunner;
  const nodeLocal = opts.nodeLocal ?? process.getuid?.() === 0;
  let cfg = deps.config;
  const cleanup = async (): Promise<void> => {
    releaseHeldSockets(cfg.runDir);
    await cleanupNodeLocal(dnsAddresses(cfg), run);
  };
  // Registered up front so the agent is not ready before DNS listens: a pod scheduled on a node
  // whose agent reports ready must get answers.
  const state = { lameduck: false, listening: false };
  let started = false;
  if (cfg.dns.enabled) {
    deps.health.addReadiness('dns', () => ({ ok: state.listening && deps.cache.synced(['services', 'endpointslices']) }));
    deps.health.addLiveness('dns', () => ({ ok: state.listening || state.lameduck || !started }));
  }

  return {
    name: 'dns',
    async run(signal: AbortSignal): Promise<void> {
      if (!cfg.dns.enabled) {
        // A disabled feature undoes what an earlier run left behind.
        await cleanup();
        log.info('dns: disabled');
        return;
      }
      const serviceAddrs = dnsAddresses(cfg);
      const nodeLocalOn = nodeLocal && managedIPs(serviceAddrs).length > 0;
      const port = opts.port ?? cfg.dns.port;
      const nodes = deps.cache.store('nodes');
      const workers = cfg.dns.workers;
      const addon = loadUdpBatch().addon;
      // One socket per address to hand on: the addon's UDP sockets (dgram's have no descriptor to
      // give), a fixed port, and one thread (several threads' SO_REUSEPORT groups are not handed on).
      const handoff = opts.handoff && port !== 0 && addon && udpBackendOrFail(cfg, log) === 'native' && workers <= 1 ? new SocketHandoff(cfg.runDir, addon, log) : undefined;
      let taken: ReadonlyMap<string, number> | undefined = handoff?.take() ?? new Map<string, number>();
      const peersNow = (): string[] => (deps.cache.synced(['nodes']) ? fallbackPeers(cfg.nodeName, nodes.values()) : []);
      const extra: string[] = [];
      let peers: string[] = [];
      if (nodeLocalOn) {
        // A restart is served by the other nodes (the table and its peer list outlive us) until
        // the cache lets this agent answer correctly; a cache that never syncs (API server down
        // at start) delays serving by at most syncWaitMs.
        await waitForSync(deps.cache, opts.syncWaitMs ?? 10_000, signal);
        if (signal.aborted) return;
        // Where other nodes' fallback reaches us. Best effort: a node whose DNS port is taken on
        // its own address still serves its pods; its peers then fail over to their other choices.
        for (const ip of nodeListenIPs(nodes.get(cfg.nodeName))) {
          if (serviceAddrs.includes(ip)) continue;
          if (taken.has(socketKey('udp', ip, port)) || (await canBind(ip, port))) extra.push(ip);
          else log.warn({ address: ip, port }, 'dns: cannot listen on the node address; other nodes cannot fall back to this one');
        }
        peers = peersNow();
        try {
          await applyNodeLocal(serviceAddrs, cfg.dns.port, run, peers);
        } catch (e) {
          throw new SkiffError('ERR_DNS_NODELOCAL', `dns: cannot set up node-local addresses: ${(e as Error).message}`, { cause: e });
        }
      }
      const addresses = [...serviceAddrs, ...extra];
      const self = addresses.map((a) => `${isIPv6(a) ? `[${a}]` : a}:${port}`);
      let runtime: Runtime | undefined;
      let pool: WorkerPool | undefined;
      const listeners: DnsListener[] = [];
      const bound: Bound[] = [];
      started = true;
      const probes = new ProbeServers({
        get lameduck() {
          return state.lameduck;
        },
        ready: () => state.listening && deps.cache.synced(['services', 'endpointslices']),
      });
      let watcher: FSWatcher | undefined;
      let unfeed: (() => void) | undefined;
      // The fallback peer list follows the Node list; rewritten only when the choice changes.
      let writing = Promise.resolve();
      const unsubscribe = nodeLocalOn
        ? deps.cache.subscribe(
            ['nodes'],
            () => {
              const next = peersNow();
              if (next.join() === peers.join()) return;
              peers = next;
              writing = writing
                .then(() => run(['nft', '-f', '-'], desiredNft(managedIPs(serviceAddrs), cfg.dns.port, next)))
                .then(() => log.info({ peers: next }, 'dns: fallback peers updated'))
                .catch((e: unknown) => log.error({ err: (e as Error).message }, 'dns: cannot update the fallback peers'));
            },
            { minIntervalMs: 1000 },
          )
        : undefined;
      try {
        if (workers > 0) {
          const inherit = (): ReadonlyMap<string, number> => {
            const t = taken ?? handoff?.take() ?? new Map<string, number>();
            taken = undefined;
            return t;
          };
          const onSockets = (fds: ReadonlyMap<string, number>, unused: readonly number[]): void => {
            handoff?.drop(unused);
            handoff?.keep(fds);
          };
          pool = new WorkerPool(deps.cache, cfg, log, { workers, forward: opts.forward, inherit: handoff && inherit, onSockets, feed: opts.answers });
          bound.push(...(await pool.start(addresses, port)));
        } else {
          const answers = opts.answers;
          runtime = buildRuntime(cfg, deps.cache, { log, self, forward: opts.forward, feedAdd: answers && ((els) => answers.add(els)) });
          const rt = runtime;
          unfeed = answers?.subscribe((t) => rt.feed.setTable(t));
          const udp = udpBackendOrFail(cfg, log);
          const inherited = taken ?? new Map<string, number>();
          const fds = new Map<string, number>();
          for (const a of addresses) {
            const l = new DnsListener(runtime.handler, log);
            listeners.push(l);
            const b = await l.listen(a, port, { udp, inherited: { udp: inherited.get(socketKey('udp', a, port)), tcp: inherited.get(socketKey('tcp', a, port)) } });
            bound.push(b);
            const f = l.fds();
            if (f.udp !== undefined) fds.set(socketKey('udp', a, b.port), f.udp);
            if (f.tcp !== undefined) fds.set(socketKey('tcp', a, b.port), f.tcp);
          }
          const used = new Set(fds.values());
          handoff?.drop([...inherited.values()].filter((fd) => !used.has(fd)));
          handoff?.keep(fds);
          void runtime.forward.probeLoops();
        }
        state.listening = true;
        await probes.start(cfg.dns.healthPort, cfg.dns.readyPort);
        log.info({ addresses: bound, workers, udp: resolveUdpBackend(cfg.dns.udpBackend).backend }, 'dns: serving');
        opts.onListening?.(bound);
        watcher = watchConfig(cfg, log, (next) => {
          for (const k of RESTART_ONLY) {
            if (JSON.stringify(next.dns[k]) !== JSON.stringify(cfg.dns[k])) log.warn({ setting: `dns.${k}` }, 'dns: setting changes only on restart');
          }
          cfg = next;
          runtime?.reconfigure(next);
          pool?.reconfigure(next);
          log.info('dns: settings reloaded');
        });
        await untilAborted(signal);
        state.lameduck = true;
        const lameduck = opts.lameduckMs ?? 2000;
        if (lameduck > 0) await new Promise((r) => setTimeout(r, lameduck));
      } finally {
        state.listening = false;
        unsubscribe?.();
        unfeed?.();
        await writing;
        watcher?.close();
        await Promise.all(listeners.map((l) => l.close()));
        await pool?.close();
        runtime?.close();
        await probes.close();
      }
    },
    cleanup,
  };
}

/**
 * Re-reads dns.* from the config file when it changes. The directory is watched, not the file,
 * because a ConfigMap update swaps a symlink rather than writing the file.
 */
function watchConfig(cfg: Config, log: AgentDeps['log'], apply: (c: Config) => void): FSWatcher | undefined {
  const path = cfg.configFile;
  if (!path) return undefined;
  let timer: NodeJS.Timeout | undefined;
  let last = JSON.stringify(cfg.dns);
  const reload = (): void => {
    timer = undefined;
    try {
      const doc = readConfigFile(path);
      const next = parseConfig({ ...cfg, dns: doc.dns ?? {} });
      const text = JSON.stringify(next.dns);
      if (text === last) return;
      last = text;
      cfg = next;
      apply(next);
    } catch (e) {
      log.error({ err: (e as Error).message }, 'dns: config reload failed, keeping the previous settings');
    }
  };
  try {
    const w = watch(dirname(path), (_ev, file) => {
      if (file && file !== basename(path) && !String(file).startsWith('..')) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(reload, 100);
    });
    w.unref();
    return w;
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'dns: cannot watch the config file; settings will not reload');
    return undefined;
  }
}

function waitForSync(cache: AgentDeps['cache'], ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || cache.synced([...SYNC_KINDS])) return Promise.resolve();
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  signal.addEventListener('abort', stop, { once: true });
  const timer = setTimeout(stop, ms);
  return cache
    .waitForSync([...SYNC_KINDS], ac.signal)
    .catch(() => undefined)
    .finally(() => {
      clearTimeout(timer);
      signal.removeEventListener('abort', stop);
    });
}

/** Whether UDP and TCP `address:port` are free (another resolver may hold the node's port 53). */
async function canBind(address: string, port: number): Promise<boolean> {
  const udp = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
  const tcp = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ address, port, exclusive: true }, () => resolve());
    });
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen({ host: address, port, exclusive: true }, () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    await new Promise<void>((r) => udp.close(() => r())).catch(() => undefined);
    await new Promise<void>((r) => (tcp.listening ? tcp.close(() => r()) : r()));
  }
}
