// The agent's side of the C shim (cni/shim/skiff-cni.c). Wire format, chosen so the C side needs
// no JSON: the client sends NUL-terminated "KEY=VALUE" CNI_* variables, one empty string, then
// stdin, then shuts down its write half; the server answers "<exit code>\n" followed by stdout.
import { mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { cniRequests, cniRequestSeconds } from './metrics.js';
import { handle, type HandlerDeps } from './plugin/handler.js';
import { now, traced, tracing, writeTrace, type Marks } from './trace.js';

export interface Request {
  readonly env: Record<string, string>;
  readonly stdin: string;
}

export function decodeRequest(buf: Buffer): Request {
  const env: Record<string, string> = {};
  let pos = 0;
  for (;;) {
    const end = buf.indexOf(0, pos);
    if (end < 0) throw new Error('truncated request: no end of environment');
    if (end === pos) {
      pos = end + 1;
      break;
    }
    const kv = buf.toString('utf8', pos, end);
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
    pos = end + 1;
  }
  return { env, stdin: buf.toString('utf8', pos) };
}

export function encodeRequest(env: Record<string, string | undefined>, stdin: string): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(env)) if (k.startsWith('CNI_') && v !== undefined) parts.push(Buffer.from(`${k}=${v}\0`));
  parts.push(Buffer.from([0]), Buffer.from(stdin));
  return Buffer.concat(parts);
}

export async function listenCni(socketPath: string, deps: HandlerDeps, onError: (e: unknown) => void): Promise<Server> {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
  rmSync(socketPath, { force: true });
  const server = createServer({ allowHalfOpen: true }, (sock: Socket) => {
    const marks: Marks | undefined = tracing() ? [['accepted', now()]] : undefined;
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', onError);
    sock.on('end', () => {
      let req: Request;
      try {
        req = decodeRequest(Buffer.concat(chunks));
      } catch (e) {
        sock.end(`4\n${JSON.stringify({ cniVersion: '1.1.0', code: 4, msg: (e as Error).message })}`);
        return;
      }
      const started = process.hrtime.bigint();
      const command = req.env.CNI_COMMAND ?? 'none';
      marks?.push(['received', now()]);
      traced(marks, () => handle(req.env, req.stdin, deps)).then(
        (r) => {
          sock.end(`${r.code}\n${r.stdout}`);
          if (marks) {
            marks.push(['replied', now()]);
            writeTrace(command, marks);
          }
          const code = r.code === 0 ? '0' : String((JSON.parse(r.stdout) as { code?: number }).code ?? r.code);
          cniRequests.inc({ command, code });
          cniRequestSeconds.observe({ command }, Number(process.hrtime.bigint() - started) / 1e9);
        },
        (e) => {
          onError(e);
          sock.destroy();
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return server;
}
