// A DNS worker thread's work, once worker.ts has placed it. It mirrors the parts of the agent's
// watch cache that DNS reads (fed over the thread's message port) into its own MemoryCache, builds
// the same runtime, and binds the DNS addresses itself. Its own event loop and heap keep answers
// flowing while the agent's main thread is busy (a proxy full sync renders for hundreds of
// milliseconds, and its garbage collections pause that thread, not this one).
import { isIPv6 } from 'node:net';
import { parentPort, threadId } from 'node:worker_threads';
import { logger } from '../../common/log.js';
import type { Placement } from '../../common/cpu-split.js';
import { compactHeapLogged } from '../../common/memory.js';
import { MemoryCache } from '../../common/watch/store.js';
import type { EndpointSliceInfo, KindTypes } from '../../common/types.js';
import { drainAll } from '../metrics.js';
import { buildRuntime, type Runtime } from '../runtime.js';
import { socketKey } from '../server/handoff.js';
import { DnsListener, type Bound } from '../server/listeners.js';
import { udpBackendOrFail } from '../server/native-udp.js';
import type { FeedElement } from '../answer-feed.js';
import { receivedService, receivedSlice, type WireService } from './feed.js';
import type { FromWorker, ObjectUpdate, ToWorker } from './protocol.js';

const METRICS_INTERVAL_MS = 1000;
/**
 * After this many updates (an initial feed, a relist) the thread compacts its heap once the feed
 * has been quiet for COMPACT_QUIET_MS: the garbage of applying them grew it (common/memory.ts).
 * Rare and short (tens of ms at 50,000 Services), not during a burst of updates.
 */
const COMPACT_AFTER_UPDATES = 10_000;
const COMPACT_QUIET_MS = 1000;

function applyUpdates(cache: MemoryCache, updates: readonly ObjectUpdate[]): void {
  for (const u of updates) {
    if (u.obj === undefined) cache.remove(u.kind, u.key);
    else if (u.kind === 'services') cache.upsert('services', u.key, receivedService(u.obj as WireService));
    else if (u.kind === 'endpointslices') cache.upsert('endpointslices', u.key, receivedSlice(u.obj as EndpointSliceInfo));
    else cache.upsert(u.kind, u.key, u.obj as KindTypes[typeof u.kind]);
  }
}

/** Serves DNS on this thread; `placement` is where worker.ts put it. */
export function serveThread(placement: Placement): void {
  const port = parentPort;
  if (!port) throw new Error('dns worker must be started by the agent');
  const send = (m: FromWorker): void => port.postMessage(m);
  const log = logger().child({ component: 'dns', thread: threadId });
  log.info({ ...placement }, 'dns: thread placed');
  const cache = new MemoryCache();
  let runtime: Runtime | undefined;
  const listeners: DnsListener[] = [];
  // Answer feed adds waiting for the main thread, by id.
  const feedWaits = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  let feedId = 0;
  const feedAdd = (elements: readonly FeedElement[]): Promise<void> =>
    new Promise((resolve, reject) => {
      const id = ++feedId;
      feedWaits.set(id, { resolve, reject });
      send({ t: 'feed-add', id, elements });
    });
  const timer = setInterval(() => {
    const deltas = drainAll();
    if (deltas.length > 0) send({ t: 'metrics', deltas });
  }, METRICS_INTERVAL_MS);

  let sinceCompact = 0;
  let compactTimer: NodeJS.Timeout | undefined;
  const applied = (n: number): void => {
    sinceCompact += n;
    if (sinceCompact < COMPACT_AFTER_UPDATES) return;
    clearTimeout(compactTimer);
    compactTimer = setTimeout(() => {
      sinceCompact = 0;
      compactHeapLogged(log, 'a large feed');
    }, COMPACT_QUIET_MS).unref();
  };

  port.on('message', (m: ToWorker) => {
    void (async () => {
      try {
        if (m.t === 'init') {
          applyUpdates(cache, m.updates);
          applied(m.updates.length);
          for (const k of m.synced) cache.markSynced(k);
          const self = m.addresses.map((a) => `${isIPv6(a) ? `[${a}]` : a}:${m.config.dns.port}`);
          runtime = buildRuntime(m.config, cache, { log, self, forward: m.forward, feedAdd });
          if (m.feed) runtime.feed.setTable(m.feed);
          const bound: Bound[] = [];
          const fds: Record<string, number> = {};
          // With several threads each binds its own UDP socket in one SO_REUSEPORT group (the addon
          // spreads datagrams over the group); TCP is served by the first thread only.
          const udp = udpBackendOrFail(m.config, log);
          for (const [i, a] of m.addresses.entries()) {
            const l = new DnsListener(runtime.handler, log);
            listeners.push(l);
            const p = m.ports?.[i] ?? m.port;
            const inherited = { udp: m.inherited?.[socketKey('udp', a, p)], tcp: m.tcp ? m.inherited?.[socketKey('tcp', a, p)] : undefined };
            const b = await l.listen(a, p, { udp, reusePortGroup: m.workers > 1 ? m.workers : 0, tcp: m.tcp, inherited });
            bound.push(b);
            const f = l.fds();
            if (f.udp !== undefined) fds[socketKey('udp', a, b.port)] = f.udp;
            if (f.tcp !== undefined) fds[socketKey('tcp', a, b.port)] = f.tcp;
          }
          send({ t: 'listening', bound, fds });
          void runtime.forward.probeLoops();
        } else if (m.t === 'batch') {
          applyUpdates(cache, m.updates);
          applied(m.updates.length);
          for (const k of m.synced) cache.markSynced(k);
        } else if (m.t === 'feed') {
          runtime?.feed.setTable(m.table);
        } else if (m.t === 'feed-done') {
          const w = feedWaits.get(m.id);
          feedWaits.delete(m.id);
          if (m.error === undefined) w?.resolve();
          else w?.reject(new Error(m.error));
        } else if (m.t === 'config') {
          runtime?.reconfigure(m.config);
        } else if (m.t === 'stop') {
          clearInterval(timer);
          clearTimeout(compactTimer);
          const deltas = drainAll();
          if (deltas.length > 0) send({ t: 'metrics', deltas });
          await Promise.all(listeners.map((l) => l.close()));
          runtime?.close();
          port.close();
        }
      } catch (e) {
        send({ t: 'error', message: (e as Error).message });
      }
    })();
  });
  // Only now can the init message be received; the agent waits for this.
  send({ t: 'ready' });
}
