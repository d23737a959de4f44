// A long-lived `nft -i` for the small transactions of partial syncs. Measured on this kernel: an
// `nft -f` process that committed a change spends ~15-25 ms in close() of its netlink socket (the
// kernel flushes nf_tables' deferred destruction, an RCU grace period, on NETLINK_URELEASE) plus
// its own start-up, whatever the change; the same transaction through an open `nft -i` takes
// ~0.2 ms. In interactive mode each input line is one batch (atomic), errors are printed rather
// than ending the process, so every transaction is followed by a command with a known answer and
// the output before that answer tells success from failure.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { CommandError } from '../exec.js';
import { helperCommand } from './helper.js';

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
  /**
   * Keep a forked shell waiting to become the next process (started now, and again whenever the
   * process exits idle). Node forks the whole agent for a child: at 50,000 Services that fork
   * took tens of ms of the main thread, which an update after an idle minute paid in its sync.
   * The spare is forked while nothing waits for it and costs the 0.7 MB helper (helper.ts)
   * instead of nft -i's 5-7 MB.
   */
  readonly spare?: boolean;
  /** null: the bash script instead of the built helper (tests). */
  readonly helper?: string | null;
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
  private readonly spare: boolean;
  private readonly helper: string | null | undefined;
  private spareProc: ChildProcessWithoutNullStreams | undefined;
  private closed = false;

  /** argv runs nft in interactive mode, e.g. ["nft", "-i"] or with an `ip netns exec` prefix. */
  constructor(
    readonly argv: readonly string[],
    opts: SessionOptions = {},
  ) {
    this.idleMs = opts.idleMs ?? 30_000;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.code = opts.errorCode ?? 'ERR_NFT_COMMAND';
    this.spare = opts.spare === true;
    this.helper = opts.helper;
    if (this.spare) this.spareProc = this.fork();
  }

  /** Runs the commands (no newlines) as one atomic transaction; rejects with nft's error text. */
  run(line: string): Promise<void> {
    if (line.includes('\n')) throw new Error('nft session: one transaction is one line');
    const r = this.queue.then(() => this.once(line));
    this.queue = r.catch(() => undefined);
    return r;
  }

  /** A forked shell waits to become the next process (tests). */
  get spareWaiting(): boolean {
    return this.spareProc !== undefined && this.spareProc.exitCode === null;
  }

  /** Ends the process and the spare (they exit on end of input); run() starts a new one. */
  close(): void {
    this.closed = true;
    this.spareProc?.stdin.end();
    this.spareProc = undefined;
    this.end();
  }

  private end(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const p = this.proc;
    this.proc = undefined;
    this.fail(new CommandError(this.code, this.argv, null, 'nft session closed'));
    p?.stdin.end();
  }

  /** Idle: the process exits, and a spare is forked now that nothing waits for it. */
  private retire(): void {
    this.end();
    if (this.spare && !this.closed && !this.spareProc) this.spareProc = this.fork();
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
      if (this.proc) this.idleTimer = setTimeout(() => this.retire(), this.idleMs).unref();
    });
  }

  /**
   * A process that waits for one line and then becomes argv on the same pipes (helper.ts). stderr
   * joins stdout so an error is always read before the marker that follows it.
   */
  private fork(): ChildProcessWithoutNullStreams {
    const [cmd, args] = helperCommand('spare', this.argv, this.helper);
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    p.stdin.on('error', () => undefined);
    p.on('error', () => undefined);
    // The agent must not stay alive for this process, nor the process for an idle agent.
    p.unref();
    for (const s of [p.stdin, p.stdout, p.stderr] as unknown as { unref?: () => void }[]) s.unref?.();
    return p;
  }

  private start(): ChildProcessWithoutNullStreams {
    this.closed = false;
    let p = this.spareProc;
    this.spareProc = undefined;
    // A spare that died meanwhile (killed) is replaced by a fresh fork.
    if (!p || p.exitCode !== null || p.signalCode !== null) p = this.fork();
    p.stdin.write('go\n');
    this.proc = p;
    this.partial = '';
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
