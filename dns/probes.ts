// CoreDNS's health and ready plugins: GET /health on healthPort answers 200 "OK" while the server
// runs and 503 during lameduck (shutdown drain); GET /ready on readyPort answers 200 once the
// kubernetes zone is synced and the listeners are up. Port 0 turns either off.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProbeState {
  lameduck: boolean;
  ready: () => boolean;
}

export class ProbeServers {
  private readonly servers: Server[] = [];

  constructor(private readonly state: ProbeState) {}

  async start(healthPort: number, readyPort: number, host = '0.0.0.0'): Promise<number[]> {
    const ports: number[] = [];
    const routes: [number, string][] = [];
    if (healthPort > 0) routes.push([healthPort, '/health']);
    if (readyPort > 0) routes.push([readyPort, '/ready']);
    // One server per distinct port; equal ports serve both paths.
    const byPort = new Map<number, Set<string>>();
    for (const [p, path] of routes) byPort.set(p, (byPort.get(p) ?? new Set()).add(path));
    for (const [port, paths] of byPort) {
      const s = createServer((req, res) => {
        const path = (req.url ?? '/').split('?')[0]!;
        if (!paths.has(path)) return void res.writeHead(404).end('404 page not found\n');
        const ok = path === '/health' ? !this.state.lameduck : !this.state.lameduck && this.state.ready();
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'OK' : path === '/health' ? 'lameduck' : 'not ready');
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, host, () => resolve());
      });
      this.servers.push(s);
      ports.push((s.address() as AddressInfo).port);
    }
    return ports;
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.servers.length = 0;
  }
}
