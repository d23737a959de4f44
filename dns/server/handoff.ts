// Keeps the DNS sockets open while the agent restarts. Each agent leaves a duplicate of every DNS
// socket with a tiny holder process (`skiff-helper hold`, common/native/helper.c, or `sh` where it
// is not built; in its own session, waiting on a pipe from the agent); the next agent copies them
// out of it with pidfd_getfd(2) and serves on the very same sockets.
// While no agent runs, the kernel keeps queueing queries on them instead of answering "port
// unreachable", so a client's retry (or even its first try) is answered once the new agent is up.
// That is what a one-node cluster and host-network clients need: they have no other node to fall
// back to (nodelocal.ts). The holder exits `graceSeconds` after its agent is gone, so a node whose
// agent does not come back stops swallowing queries and falls back to the other nodes.
import { spawn } from 'node:child_process';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { builtHelper } from '../../common/nft/helper.js';
import type { UdpBatchAddon } from './native-udp.js';

const FILE = 'dns-sockets.json';
const MARKER = 'skiff-dns-holder';

interface Held {
  readonly pid: number;
  /** "udp|tcp address port" -> the descriptor number inside the holder. */
  readonly sockets: Readonly<Record<string, number>>;
}

export const socketKey = (proto: 'udp' | 'tcp', address: string, port: number): string => `${proto} ${address} ${port}`;

export class SocketHandoff {
  constructor(
    private readonly runDir: string,
    private readonly addon: Pick<UdpBatchAddon, 'takeFd' | 'closeFd'>,
    private readonly log: Logger,
    private readonly graceSeconds = 15,
  ) {}

  private get file(): string {
    return join(this.runDir, FILE);
  }

  private read(): Held | undefined {
    try {
      const h = JSON.parse(readFileSync(this.file, 'utf8')) as Held;
      return Number.isInteger(h.pid) && h.pid > 1 && typeof h.sockets === 'object' ? h : undefined;
    } catch {
      return undefined;
    }
  }

  /** The held sockets, duplicated into this process: key -> descriptor. Empty when there are none. */
  take(): Map<string, number> {
    const out = new Map<string, number>();
    const held = this.read();
    if (!held || !isHolder(held.pid)) return out;
    for (const [key, fd] of Object.entries(held.sockets)) {
      try {
        out.set(key, this.addon.takeFd(held.pid, fd));
      } catch (e) {
        // No ptrace access to the holder (yama ptrace_scope 1 without CAP_SYS_PTRACE, or a seccomp
        // profile without pidfd_getfd): end it so its sockets cannot block binding new ones.
        this.log.warn({ socket: key, err: (e as Error).message }, 'dns: cannot take the sockets the previous agent left open; binding new ones');
        this.drop(out.values());
        killGroup(held.pid);
        waitGone(held.pid);
        return new Map();
      }
    }
    if (out.size > 0) this.log.info({ sockets: [...out.keys()], holder: held.pid }, 'dns: serving on the sockets the previous agent left open');
    return out;
  }

  /** Releases descriptors from take() that no listener adopted. */
  drop(fds: Iterable<number>): void {
    for (const fd of fds) this.addon.closeFd(fd);
  }

  /** Leaves duplicates of `sockets` (key -> descriptor here) with a new holder, then ends the previous one. */
  keep(sockets: ReadonlyMap<string, number>): void {
    const prev = this.read();
    const keys = [...sockets.keys()];
    if (keys.length === 0) return;
    // fd 0 is a pipe from this process: end of file means the agent is gone, and the grace starts.
    // The sockets sit at fds 3.. in the order of `keys`.
    const helper = builtHelper();
    const [cmd, args] = helper ? [helper, ['hold', String(this.graceSeconds), MARKER]] : ['sh', ['-c', `read -r _; sleep ${this.graceSeconds}`, MARKER]];
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'ignore', 'ignore', ...keys.map((k) => sockets.get(k)!)],
      detached: true,
    });
    child.on('error', (e) => this.log.warn({ err: e.message }, 'dns: socket holder failed to start; a restart will drop queries'));
    child.unref();
    (child.stdin as Socket | null)?.unref();
    child.stdin?.on('error', () => undefined);
    if (!child.pid) return;
    const held: Held = { pid: child.pid, sockets: Object.fromEntries(keys.map((k, i) => [k, 3 + i])) };
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(held));
      renameSync(tmp, this.file);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'dns: cannot record the socket holder');
    }
    if (prev && prev.pid !== child.pid && isHolder(prev.pid)) killGroup(prev.pid);
  }

}

/** Ends the holder for good (DNS disabled, cleanup): nothing keeps the DNS ports afterwards. */
export function releaseHeldSockets(runDir: string): void {
  const file = join(runDir, FILE);
  try {
    const held = JSON.parse(readFileSync(file, 'utf8')) as Held;
    if (Number.isInteger(held.pid) && held.pid > 1 && isHolder(held.pid)) killGroup(held.pid);
  } catch {
    /* none */
  }
  rmSync(file, { force: true });
}

/** Whether `pid` is still a holder (not a recycled pid). */
function isHolder(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(MARKER);
  } catch {
    return false;
  }
}

/** Up to 1 s for a killed holder to be gone (its sockets close with it). */
function waitGone(pid: number): void {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 100 && isHolder(pid); i++) Atomics.wait(nap, 0, 0, 10);
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* gone already */
  }
}
