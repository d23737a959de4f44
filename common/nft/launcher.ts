// Starts the `nft -f <file>` runs of big transactions from a small long-lived process instead of
// from the agent. Node forks the whole agent for every child process, and fork() copies the page
// tables of its heap while holding the address space's lock: at 50,000 Services (a heap of several
// hundred MB) each spawn stalled the main thread for 50-100 ms (6.4 s of a full sync's 63 loads in
// a profile), and every thread that faulted a page meanwhile (the DNS worker) waited too. The
// shell is forked once, while the heap is small, and forks nft at the cost of a 0.7 MB process
// (the static helper, helper.ts). One line in per run, one line out when it ends; nft's output
// goes to <file>.out, read only on failure; runs overlap like separate spawns.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { CommandError } from '../exec.js';
import { helperCommand } from './helper.js';

export class NftLauncher {
  private proc: ChildProcessWithoutNullStreams | undefined;
  private partial = '';
  private seq = 0;
  private readonly pending = new Map<number, { file: string; resolve: () => void; reject: (e: Error) => void }>();

  /**
   * argv runs one transaction file when the file's path is appended, e.g. ["nft", "-f"];
   * errorCode is the stable code of the CommandError a failure throws (the component's own);
   * helper null runs the bash script instead of the built helper (tests).
   */
  constructor(
    readonly argv: readonly string[] = ['nft', '-f'],
    private readonly errorCode = 'ERR_NFT_COMMAND',
    private readonly helper?: string | null,
  ) {}

  /** Forks the shell now, while the agent's heap is still small (it starts on demand otherwise). */
  start(): this {
    this.proc ??= this.spawn();
    return this;
  }

  /** Runs argv + file; rejects with nft's output when it exits non-zero. */
  run(file: string): Promise<void> {
    if (/\s/.test(file)) throw new Error(`nft launcher: no whitespace in paths (${file})`);
    const proc = this.start().proc!;
    const id = ++this.seq;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { file, resolve, reject });
      proc.stdin.write(`${id} ${file}\n`);
    });
  }

  /** Ends the shell once it has started the runs it was given (they finish on their own). */
  close(): void {
    const p = this.proc;
    this.proc = undefined;
    p?.stdin.end();
    this.failAll('nft launcher closed');
  }

  private spawn(): ChildProcessWithoutNullStreams {
    const [cmd, args] = helperCommand('launch', this.argv, this.helper);
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.partial = '';
    p.stdin.on('error', () => undefined);
    p.stdout.setEncoding('utf8').on('data', (d: string) => this.onData(d));
    p.stderr.resume();
    const gone = (why: string): void => {
      if (this.proc !== p) return;
      this.proc = undefined;
      this.failAll(why);
    };
    p.on('error', (e) => gone(e.message));
    p.on('close', (code) => gone(`nft launcher exited (${code})`));
    // Neither keeps the other alive: the agent may exit while the shell idles, and the shell
    // exits on end of input when the agent goes.
    p.unref();
    for (const s of [p.stdin, p.stdout, p.stderr] as unknown as { unref?: () => void }[]) s.unref?.();
    return p;
  }

  private onData(d: string): void {
    const lines = (this.partial + d).split('\n');
    this.partial = lines.pop()!;
    for (const l of lines) {
      const [id, code] = l.split(' ').map(Number) as [number, number];
      const job = this.pending.get(id);
      if (!job) continue;
      this.pending.delete(id);
      if (code === 0) {
        job.resolve();
        continue;
      }
      readFile(`${job.file}.out`, 'utf8').then(
        (out) => job.reject(new CommandError(this.errorCode, [...this.argv, job.file], code, out)),
        () => job.reject(new CommandError(this.errorCode, [...this.argv, job.file], code, '')),
      );
    }
  }

  private failAll(why: string): void {
    for (const [id, job] of this.pending) {
      this.pending.delete(id);
      job.reject(new CommandError(this.errorCode, [...this.argv, job.file], null, why));
    }
  }
}
