// Entry point of a DNS worker process (node:cluster). It mirrors the agent's watch cache from IPC
// messages into its own MemoryCache, builds the same runtime, and binds the same addresses: the
// cluster module hands every worker the primary's one UDP socket, so the kernel spreads datagrams
// over the workers' recvmsg calls.
import cluster from 'node:cluster';
import { isIPv6 } from 'node:net';
import { logger } from '../../common/log.js';
import { MemoryCache } from '../../common/watch/store.js';
import type { KindTypes } from '../../common/types.js';
import { drainAll } from '../metrics.js';
import { buildRuntime, type Runtime } from '../runtime.js';
import { DnsListener, type Bound } from '../server/listeners.js';
import { udpBackendOrFail } from '../server/native-udp.js';
import type { FromWorker, ObjectUpdate, ToWorker } from './protocol.js';

const METRICS_INTERVAL_MS = 1000;

function send(m: FromWorker): void {
  process.send?.(m);
}

function applyUpdates(cache: MemoryCache, updates: readonly ObjectUpdate[]): void {
  for (const u of updates) {
    if (u.obj === undefined) cache.remove(u.kind, u.key);
    else cache.upsert(u.kind, u.key, u.obj as KindTypes[typeof u.kind]);
  }
}

async function main(): Promise<void> {
  if (!cluster.isWorker) throw new Error('dns worker must be started by the agent');
  const log = logger().child({ component: 'dns', worker: cluster.worker?.id });
  // The agent decides when workers stop (a 'stop' message, or the IPC channel closing when it dies);
  // a signal sent to the whole process group must not kill them mid-shutdown and have them respawned.
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => log.debug({ sig }, 'dns worker: signal ignored; the agent stops workers'));
  const cache = new MemoryCache();
  let runtime: Runtime | undefined;
  const listeners: DnsListener[] = [];
  const timer = setInterval(() => {
    const deltas = drainAll();
    if (deltas.length > 0) send({ t: 'metrics', deltas });
  }, METRICS_INTERVAL_MS);

  process.on('message', (m: ToWorker) => {
    void (async () => {
      try {
        if (m.t === 'init') {
          applyUpdates(cache, m.updates);
          for (const k of m.synced) cache.markSynced(k);
          const self = m.addresses.map((a) => `${isIPv6(a) ? `[${a}]` : a}:${m.config.dns.port}`);
          runtime = buildRuntime(m.config, cache, { log, self, forward: m.forward });
          const bound: Bound[] = [];
          // With the addon each worker binds its own socket in one SO_REUSEPORT group (the addon
          // spreads datagrams over the group); with dgram the cluster module shares the primary's.
          const udp = udpBackendOrFail(m.config, log);
          for (const [i, a] of m.addresses.entries()) {
            const l = new DnsListener(runtime.handler, log);
            listeners.push(l);
            bound.push(await l.listen(a, m.ports?.[i] ?? m.port, { exclusive: false, udp, reusePortGroup: m.workers }));
          }
          send({ t: 'listening', bound });
          void runtime.forward.probeLoops();
        } else if (m.t === 'batch') {
          applyUpdates(cache, m.updates);
          for (const k of m.synced) cache.markSynced(k);
        } else if (m.t === 'config') {
          runtime?.reconfigure(m.config);
        } else if (m.t === 'stop') {
          clearInterval(timer);
          const deltas = drainAll();
          if (deltas.length > 0) send({ t: 'metrics', deltas });
          await Promise.all(listeners.map((l) => l.close()));
          runtime?.close();
          process.disconnect?.();
          setTimeout(() => process.exit(0), 50).unref();
        }
      } catch (e) {
        send({ t: 'error', message: (e as Error).message });
      }
    })();
  });
  // Only now can the init message be received; the primary waits for this.
  send({ t: 'ready' });
}

await main();
