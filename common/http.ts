// The agent's HTTP listeners, at kube-proxy's ports: metrics (/metrics, /status) on
// metricsBindAddress and health (/healthz, /livez, /readyz) on healthzBindAddress. Each listener
// serves only its own paths: the health port is open on every node address for the kubelet's
// probes, and must not hand out metrics or the node's status to whoever reaches it. When both
// addresses are set equal, the one listener serves both sets.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Health } from './health.js';
import { registry } from './metrics.js';

export interface Reply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

/** Path -> handler for one listener. */
export type Routes = Readonly<Record<string, () => Promise<Reply> | Reply>>;

export interface Listener {
  readonly bind: string;
  readonly routes: Routes;
}

export interface HttpEndpoints {
  readonly servers: Server[];
  addresses(): AddressInfo[];
  close(): Promise<void>;
}

export function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0', port: Number(s.slice(i + 1)) };
}

const json = (status: number, body: unknown): Reply => ({ status, contentType: 'application/json', body: JSON.stringify(body) });

/** kube-proxy's health paths: liveness on /healthz and /livez, readiness on /readyz. */
export function healthRoutes(health: Health): Routes {
  const live = (): Reply => {
    const r = health.liveness();
    return json(r.ok ? 200 : 503, r);
  };
  const ready = (): Reply => {
    const r = health.readiness();
    return json(r.ok ? 200 : 503, r);
  };
  return { '/healthz': live, '/livez': live, '/readyz': ready };
}

/** Prometheus exposition of the shared registry, plus JSON documents such as /status. */
export function metricsRoutes(documents: Readonly<Record<string, () => Promise<unknown> | unknown>> = {}): Routes {
  const routes: Record<string, () => Promise<Reply>> = {
    '/metrics': async () => ({ status: 200, contentType: registry.contentType, body: await registry.metrics() }),
  };
  for (const [path, build] of Object.entries(documents)) routes[path] = async () => json(200, await build());
  return routes;
}

export async function startHttp(listeners: readonly Listener[]): Promise<HttpEndpoints> {
  const byBind = new Map<string, Record<string, Routes[string]>>();
  for (const l of listeners) byBind.set(l.bind, { ...byBind.get(l.bind), ...l.routes });
  const servers: Server[] = [];
  try {
    for (const [bind, routes] of byBind) {
      const { host, port } = splitHostPort(bind);
      const s = createServer((req, res) => {
        const route = routes[(req.url ?? '/').split('?')[0]!];
        if (!route) {
          res.writeHead(404).end('not found\n');
          return;
        }
        Promise.resolve()
          .then(route)
          .then(
            (r) => res.writeHead(r.status, { 'content-type': r.contentType }).end(r.body),
            (e: unknown) => res.writeHead(500).end(String((e as Error)?.message ?? e)),
          );
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, host, () => resolve());
      });
      servers.push(s);
    }
  } catch (e) {
    // One address in use must not leave the others listening.
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    throw e;
  }
  return {
    servers,
    addresses: () => servers.map((s) => s.address() as AddressInfo),
    close: () => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined),
  };
}
