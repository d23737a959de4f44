// The cluster DNS component: serves the cluster zone and forwards the rest, node-local on the DNS
// Service IPs. run() binds, serves until aborted, then drains (lameduck); cleanup() removes the lo
// addresses and the notrack table.
import { watch, type FSWatcher } from 'node:fs';
import { isIPv6 } from 'node:net';
import { basename, dirname } from 'node:path';
import type { AgentDeps } from '../common/agent-deps.js';
import type { Component } from '../common/component.js';
import { parseConfig, readConfigFile, type Config } from '../common/config.js';
import { SkiffError } from '../common/errors.js';
import { applyNodeLocal, cleanupNodeLocal, hostRunner, managedIPs, type Runner } from './nodelocal.js';
import { ProbeServers } from './probes.js';
import { buildRuntime, type Runtime } from './runtime.js';
import { DnsListener, type Bound } from './server/listeners.js';
import { WorkerPool, resolveWorkers } from './workers/pool.js';

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
}

/** Settings that only take effect on restart; a live reload that changes them is logged. */
const RESTART_ONLY = ['port', 'listen', 'workers', 'healthPort', 'readyPort'] as const;

export function dnsAddresses(cfg: Config): string[] {
  return [...new Set([...cfg.dnsServiceIPs, ...cfg.dns.listen])];
}

export function createDns(deps: AgentDeps, opts: DnsOptions = {}): Component {
  const log = deps.log.child({ component: 'dns' });
  const run = opts.runner ?? hostRunner;
  const nodeLocal = opts.nodeLocal ?? process.getuid?.() === 0;
  let cfg = deps.config;
  const cleanup = (): Promise<void> => cleanupNodeLocal(dnsAddresses(cfg), run);
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
      const addresses = dnsAddresses(cfg);
      if (nodeLocal && managedIPs(addresses).length > 0) {
        try {
          await applyNodeLocal(addresses, cfg.dns.port, run);
        } catch (e) {
          throw new SkiffError('ERR_DNS_NODELOCAL', `dns: cannot set up node-local addresses: ${(e as Error).message}`, { cause: e });
        }
      }
      const port = opts.port ?? cfg.dns.port;
      const self = addresses.map((a) => `${isIPv6(a) ? `[${a}]` : a}:${port}`);
      const workers = resolveWorkers(cfg.dns.workers);
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
      try {
        if (workers > 1) {
          pool = new WorkerPool(deps.cache, cfg, log, { workers, forward: opts.forward });
          bound.push(...(await pool.start(addresses, port)));
        } else {
          runtime = buildRuntime(cfg, deps.cache, { log, self, forward: opts.forward });
          for (const a of addresses) {
            const l = new DnsListener(runtime.handler, log);
            listeners.push(l);
            bound.push(await l.listen(a, port));
          }
          void runtime.forward.probeLoops();
        }
        state.listening = true;
        await probes.start(cfg.dns.healthPort, cfg.dns.readyPort);
        log.info({ addresses: bound, workers }, 'dns: serving');
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
        await new Promise<void>((resolve) => {
          if (signal.aborted) return resolve();
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
        state.lameduck = true;
        const lameduck = opts.lameduckMs ?? 2000;
        if (lameduck > 0) await new Promise((r) => setTimeout(r, lameduck));
      } finally {
        state.listening = false;
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
