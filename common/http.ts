// The agent's two HTTP listeners, at kube-proxy's defaults: metrics on 127.0.0.1:10249 and health on
// 0.0.0.0:10256. Both serve every path so one port can be used for all when they are set equal.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Health } from './health.js';
import { registry } from './metrics.js';

export interface HttpEndpoints {
  readonly servers: Server[];
  addresses(): AddressInfo[];
  close(): Promise<void>;
}

export function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0', port: Number(s.slice(i + 1)) };
}

export async function startHttp(binds: readonly string[], health: Health, extra?: (path: string) => unknown): Promise<HttpEndpoints> {
  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0]!;
    try {
      if (path === '/metrics') {
        const body = await registry.metrics();
        res.writeHead(200, { 'content-type': registry.contentType }).end(body);
      } else if (path === '/healthz' || path === '/livez') {
        const r = health.liveness();
        res.writeHead(r.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(r));
      } else if (path === '/readyz') {
        const r = health.readiness();
        res.writeHead(r.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(r));
      } else {
        const body = await extra?.(path);
        if (body === undefined) res.writeHead(404).end('not found\n');
        else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      }
    } catch (e) {
      res.writeHead(500).end(String((e as Error).message));
    }
  };
  const unique = [...new Set(binds)];
  const servers = await Promise.all(
    unique.map(
      (b) =>
        new Promise<Server>((resolve, reject) => {
          const { host, port } = splitHostPort(b);
          const s = createServer((req, res) => void handler(req, res));
          s.once('error', reject);
          s.listen(port, host, () => resolve(s));
        }),
    ),
  );
  return {
    servers,
    addresses: () => servers.map((s) => s.address() as AddressInfo),
    close: () => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined),
  };
}
