// healthCheckNodePort servers for externalTrafficPolicy=Local Services, as kube-proxy serves them:
// cloud load balancers probe every node and send traffic only where this answers 200, which is
// exactly the nodes with a local endpoint. 503 otherwise; the body carries the count.
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';

export interface HealthCheckTarget {
  readonly namespace: string;
  readonly name: string;
  readonly localEndpoints: number;
}

export class HealthCheckServers {
  private readonly servers = new Map<number, Server>();
  private targets = new Map<number, HealthCheckTarget>();

  constructor(
    private readonly host: string,
    private readonly log: Logger,
  ) {}

  /** Opens, updates and closes listeners so exactly `targets` are served. */
  async sync(targets: ReadonlyMap<number, HealthCheckTarget>): Promise<void> {
    this.targets = new Map(targets);
    for (const [port, s] of this.servers) {
      if (targets.has(port)) continue;
      this.servers.delete(port);
      await new Promise<void>((r) => s.close(() => r()));
    }
    for (const port of targets.keys()) {
      if (this.servers.has(port)) continue;
      const s = createServer((_req, res) => {
        const t = this.targets.get(port);
        const n = t?.localEndpoints ?? 0;
        res.writeHead(n > 0 ? 200 : 503, { 'content-type': 'application/json', 'x-content-type-options': 'nosniff', 'x-load-balancing-endpoint-weight': String(n) });
        res.end(JSON.stringify({ service: { namespace: t?.namespace, name: t?.name }, localEndpoints: n, serviceProxyHealthy: true }));
      });
      try {
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(port, this.host, () => resolve());
        });
        this.servers.set(port, s);
      } catch (e) {
        this.log.warn({ port, err: (e as Error).message }, 'cannot serve healthCheckNodePort');
      }
    }
  }

  get ports(): number[] {
    return [...this.servers.keys()];
  }

  close(): Promise<void> {
    return this.sync(new Map());
  }
}
