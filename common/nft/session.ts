// A long-lived `nft -i` for the small transactions of partial syncs. Measured on this kernel: an
// `nft -f` process that committed a change spends ~15-25 ms in close() of its netlink socket (the
// kernel flushes nf_tables' deferred destruction, an RCU grace period, on NETLINK_URELEASE) plus
// its own start-up, whatever the change; the same transaction through an open `nft -i` takes
// ~0.2 ms. In interactive mode each input line is one batch (atomic), errors are printed rather
// than ending the process, so every transaction is followed by a command with a known answer and
// the output before that answer tells success from failure.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { CommandError } from '../exec.js';

const MARKER_COMMAND = 'describe meta mark';
const MARKER = 'meta expression, datatype mark';

interface Pending {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  readonly output: string[];
  readonly timer: NodeJS.Timeout;
}

export interface SessionOptions {
  /** The process exits after this long without work (it is restarted on demand). */
  readonly idleMs?: number;
  /** A transaction without an answer by then kills the process and fails. */
  readonly timeoutMs?: number;
  /** The stable code of the CommandError a failure throws (the component's own). */
  readonly errorCode?: string;
}

export class NftSession {
  private proc: ChildProcessWithoutNullStreams | undefined;
  private partial = '';
  private pending: Pending | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly idleMs: number;
  private readonly timeoutMs: number;
  private readonly code: string;

  /** argv runs nft in interactive mode, e.g. ["nft", "-i"] or with an `ip netns exec` prefix. */
  constructor(
    readonly argv: readonly string[],
    opts: SessionOptions = {},
  ) {
    this.idleMs = opts.idleMs ?? 30_000;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.code = opts.errorCode ?? 'ERR_NFT_COMMAND';
  }

  /** Runs the commands (no newlines) as one atomic transaction; rejects with nft's error text. */
  run(line: string): Promise<void> {
    if (line.includes('\n')) throw new Error('nft session: one transaction is one line');
    const r = this.queue.then(() => this.once(line));
    this.queue = r.catch(() => undefined);
    return r;
  }

  /** Ends the process (it exits on end of input). */
  close(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const p = this.proc;
    this.proc = undefined;
    this.fail(new CommandError(this.code, this.argv, null, 'nft session closed'));
    p?.stdin.end();
  }

  private once(line: string): Promise<void> {
    clearTimeout(this.idleTimer);
    const proc = this.proc ?? this.start();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new CommandError(this.code, this.argv, null, `no answer within ${this.timeoutMs} ms`));
        proc.kill('SIGKILL');
      }, this.timeoutMs);
      this.pending = { resolve, reject, output: [], timer };
      proc.stdin.write(`${line}\n${MARKER_COMMAND}\n`);
    }).finally(() => {
      if (this.proc) this.idleTimer = setTimeout(() => this.close(), this.idleMs).unref();
    });
  }

  private start(): ChildProcessWithoutNullStreams {
    // stderr joins stdout so an error is always read before the marker that follows it.
    const p = spawn('sh', ['-c', 'exec "$@" 2>&1', 'sh', ...this.argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc = p;
    this.partial = '';
    p.stdin.on('error', () => undefined);
    p.stdout.setEncoding('utf8').on('data', (d: string) => this.onData(d));
    p.stderr.resume();
    const gone = (why: string): void => {
      // A process already replaced (closed, then a new one started) must not fail the new one's work.
      if (this.proc !== p) return;
      this.proc = undefined;
      this.fail(new CommandError(this.code, this.argv, p.exitCode, why));
    };
    p.on('error', (e) => gone(e.message));
    p.on('close', (code) => gone(`exited (${code}) ${this.pending?.output.join(' | ') ?? ''}`));
    // The agent must not stay alive for this process, nor the process for an idle agent.
    p.unref();
    for (const s of [p.stdin, p.stdout, p.stderr] as unknown as { unref?: () => void }[]) s.unref?.();
    return p;
  }

  private onData(d: string): void {
    const lines = (this.partial + d).split('\n');
    this.partial = lines.pop()!;
    for (const l of lines) {
      const p = this.pending;
      if (!p) continue;
      if (!l.startsWith(MARKER)) {
        p.output.push(l);
        continue;
      }
      this.pending = undefined;
      clearTimeout(p.timer);
      if (p.output.some((o) => o.startsWith('Error') || o.includes('Error:'))) p.reject(new CommandError(this.code, this.argv, 1, p.output.join('\n')));
      else p.resolve();
    }
  }

  private fail(e: Error): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    p.reject(e);
  }
}
