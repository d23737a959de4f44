// `agnhost netexec`: the HTTP (and UDP) test server upstream e2e workloads run. HTTP on
// --http-port (8080): / (NOW: time), /hostname, /clientip, /echo?msg=, /header?key=, /healthz,
// /exit?code=, /shell?shellCommand=, /dial?request=&host=&port=&protocol=http|udp&tries=;
// UDP on --udp-port (8081, -1 off): "hostname", "echo <msg>", "clientip".
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import { durationMs, intFlag, parseFlags } from './flags.js';

export const hostname = (): string => process.env.HOSTNAME || 'localhost';

function udpAnswer(msg: string, from: string): string {
  const [cmd, ...rest] = msg.trim().split(' ');
  if (cmd === 'hostname') return hostname();
  if (cmd === 'echo') return rest.join(' ');
  if (cmd === 'clientip') return from;
  return `unknown command: ${cmd ?? ''}`;
}

async function dialOnce(request: string, protocol: string, host: string, port: number, timeoutMs: number): Promise<string> {
  if (protocol === 'udp') {
    return new Promise((resolve, reject) => {
      const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      const t = setTimeout(() => {
        s.close();
        reject(new Error('reading from udp connection failed: i/o timeout'));
      }, timeoutMs);
      s.on('message', (m) => {
        clearTimeout(t);
        s.close();
        resolve(m.toString().trim());
      });
      s.send(request, port, host);
    });
  }
  const res = await fetch(`http://${host.includes(':') ? `[${host}]` : host}:${port}/${request.replace(/^\//, '')}`, { signal: AbortSignal.timeout(timeoutMs) });
  return (await res.text()).trim();
}

export function startNetexec(argv: readonly string[]): { http: Server; close(): void } {
  const p = parseFlags(argv);
  const httpPort = intFlag(p, 'http-port', 8080);
  const udpPort = intFlag(p, 'udp-port', 8081);
  const delayMs = durationMs(p.flags.get('delay-shutdown') ? `${p.flags.get('delay-shutdown')}s` : undefined, 0);
  const http = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const text = (code: number, body: string): void => {
      res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(body);
    };
    const q = u.searchParams;
    switch (u.pathname) {
      case '/':
        return text(200, `NOW: ${new Date().toISOString()}`);
      case '/hostname':
      case '/hostName':
        return text(200, hostname());
      case '/clientip':
        return text(200, `${req.socket.remoteAddress?.replace(/^::ffff:/, '')}:${req.socket.remotePort}`);
      case '/echo':
        return text(200, q.get('msg') ?? '');
      case '/header':
        return text(200, String(req.headers[(q.get('key') ?? '').toLowerCase()] ?? ''));
      case '/healthz':
        return text(200, 'ok');
      case '/exit': {
        const code = Number(q.get('code') ?? 0);
        text(200, '');
        setTimeout(() => process.exit(Number.isInteger(code) ? code : 0), 10);
        return;
      }
      case '/shell': {
        const cmd = q.get('shellCommand') ?? q.get('cmd') ?? '';
        execFile('sh', ['-c', cmd], (err, stdout, stderr) => {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ output: stdout, ...(err ? { error: `${err.message}${stderr}` } : {}) }));
        });
        return;
      }
      case '/dial': {
        const tries = Math.max(1, Number(q.get('tries') ?? 1));
        const host = q.get('host') ?? '';
        const port = Number(q.get('port') ?? 0);
        const protocol = q.get('protocol') ?? 'http';
        const request = q.get('request') ?? 'hostname';
        void (async () => {
          const responses: string[] = [];
          const errors: string[] = [];
          for (let i = 0; i < tries; i++) {
            try {
              responses.push(await dialOnce(request, protocol, host, port, 5000));
            } catch (e) {
              errors.push((e as Error).message);
            }
          }
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ responses, errors }));
        })();
        return;
      }
      default:
        return text(404, '404 page not found\n');
    }
  });
  http.listen(httpPort);
  const udp = udpPort > 0 ? createSocket('udp4') : undefined;
  udp?.on('message', (m, rinfo) => udp.send(udpAnswer(m.toString(), `${rinfo.address.replace(/^::ffff:/, '')}:${rinfo.port}`), rinfo.port, rinfo.address));
  udp?.on('error', (err) => process.stderr.write(`udp: ${err.message}\n`));
  udp?.bind(udpPort);
  process.stdout.write(`Started HTTP server on port ${httpPort}\n${udp ? `Started UDP server on port ${udpPort}\n` : ''}`);
  return {
    http,
    close() {
      setTimeout(() => {
        http.close();
        udp?.close();
      }, delayMs);
    },
  };
}
