// pods/{name}/exec over WebSocket, the way kubectl 1.32 speaks it (RemoteCommand v5, v4 accepted):
// every message is one channel byte and data: 0 stdin, 1 stdout, 2 stderr, 3 error (a Status JSON
// ending the session, with the exit code), 4 terminal resize ({"Width","Height"}); v5 adds 255, a
// client's "this channel is closed" (stdin EOF). The command runs like `skiff sandbox exec`: in the
// pod's network namespace (where /etc/resolv.conf is the pod's) with the container's environment;
// `tty` puts it on a pseudo-terminal made by util-linux `script`.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readlink, readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { ApiError } from '../apiserver/errors.js';
import type { UpgradeHandler } from '../apiserver/server.js';
import type { FakeStore } from '../apiserver/store.js';
import { run } from '../sh.js';
import { podSubresource, resolveContainer, type ContainerLookup } from './target.js';
import { isWebSocketUpgrade, pickProtocol, refuseUpgrade, WebSocketConnection } from './websocket.js';

export const PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'] as const;
const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
const CLOSE = 255;

/** The error channel's last word, as the kubelet writes it for v4+. */
export function exitStatus(code: number, argv: readonly string[]): unknown {
  if (code === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${argv.join(' ')}], exit code ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  };
}

const shQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const bool = (q: URLSearchParams, k: string): boolean => q.get(k) === 'true' || q.get(k) === '1';

/** The terminal `script` made for its child, found through the child's stdin. */
async function ptyOf(scriptPid: number): Promise<string | undefined> {
  try {
    for (const t of await readdir(`/proc/${scriptPid}/task`)) {
      for (const child of (await readFile(`/proc/${scriptPid}/task/${t}/children`, 'utf8')).split(' ').filter(Boolean)) {
        const fd0 = await readlink(`/proc/${child}/fd/0`).catch(() => '');
        if (fd0.startsWith('/dev/pts/')) return fd0;
      }
    }
  } catch {
    /* exited */
  }
  return undefined;
}

export function execUpgrade(store: FakeStore, lookup: ContainerLookup): UpgradeHandler {
  return (req: IncomingMessage, socket: Socket, head: Buffer, url: URL) => {
    const where = podSubresource(url.pathname, 'exec');
    if (!where) return false;
    const fail = (e: ApiError): true => {
      refuseUpgrade(socket, e.code, e.reason, e.toStatus());
      return true;
    };
    if (!isWebSocketUpgrade(req)) return fail(new ApiError(400, 'BadRequest', 'exec is served over WebSocket (v5.channel.k8s.io or v4.channel.k8s.io) only; SPDY is not supported'));
    const protocol = pickProtocol(req, PROTOCOLS);
    if (!protocol) return fail(new ApiError(400, 'BadRequest', `none of the offered subprotocols is supported; use one of ${PROTOCOLS.join(', ')}`));
    const q = url.searchParams;
    const argv = q.getAll('command');
    if (argv.length === 0) return fail(new ApiError(400, 'BadRequest', 'you must specify at least 1 command'));
    let resolved;
    try {
      resolved = resolveContainer(store, lookup, where.namespace, where.name, q.get('container'));
    } catch (e) {
      return fail(e instanceof ApiError ? e : new ApiError(500, 'InternalError', String(e)));
    }
    const { target } = resolved;
    if (!target.running) return fail(new ApiError(400, 'BadRequest', `container ${resolved.container} is not running`));
    const tty = bool(q, 'tty');
    const wantStdin = bool(q, 'stdin');
    const ws = new WebSocketConnection(req, socket, head, protocol);
    const cmd = tty ? ['script', '-qfec', argv.map(shQuote).join(' '), '/dev/null'] : argv;
    let child: ChildProcess;
    try {
      child = spawn('ip', ['netns', 'exec', target.netns, ...cmd], {
        env: { ...target.env, ...(tty ? { TERM: 'xterm', SHELL: '/bin/sh' } : {}) },
        cwd: target.cwd,
        stdio: [wantStdin || tty ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        detached: true,
      });
    } catch (e) {
      ws.send(Buffer.concat([Buffer.from([ERROR]), Buffer.from(JSON.stringify({ metadata: {}, status: 'Failure', message: String(e), reason: 'InternalError' }))]));
      ws.close();
      return true;
    }
    const out = (ch: number) => (d: Buffer) => ws.send(Buffer.concat([Buffer.from([ch]), d]));
    child.stdout!.on('data', out(STDOUT));
    child.stderr!.on('data', out(STDERR));
    child.stdin?.on('error', () => undefined);
    let size: { Width: number; Height: number } | undefined;
    const applySize = async (): Promise<void> => {
      if (!tty || !size || !child.pid) return;
      for (let i = 0; i < 20; i++) {
        const pts = await ptyOf(child.pid);
        if (pts) {
          await run('stty', ['-F', pts, 'rows', String(size.Height), 'cols', String(size.Width)]).catch(() => undefined);
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    ws.on('message', (m) => {
      if (m.length === 0) return;
      const ch = m[0]!;
      const data = m.subarray(1);
      if (ch === STDIN) {
        if (data.length) child.stdin?.write(data);
      } else if (ch === RESIZE) {
        try {
          size = JSON.parse(data.toString('utf8')) as { Width: number; Height: number };
          void applySize();
        } catch {
          /* a malformed resize changes nothing */
        }
      } else if (ch === CLOSE && data[0] === STDIN) child.stdin?.end();
    });
    ws.on('close', () => {
      if (child.exitCode === null && child.pid) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    });
    child.on('error', (e) => {
      ws.send(Buffer.concat([Buffer.from([ERROR]), Buffer.from(JSON.stringify({ metadata: {}, status: 'Failure', message: e.message, reason: 'InternalError' }))]));
      ws.close();
    });
    child.on('close', (code, signal) => {
      const rc = code ?? (signal ? 128 + 9 : 1);
      ws.send(Buffer.concat([Buffer.from([ERROR]), Buffer.from(JSON.stringify(exitStatus(rc, argv)))]));
      ws.close();
    });
    return true;
  };
}
