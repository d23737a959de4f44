// Running the kernel tools (ip, nft, iptables-restore, conntrack, bridge): one helper for every
// component, so each gets the same failure shape (argv, exit code, stderr) and the same care with
// stdin: a tool that exits before reading its input must fail with its own error, not crash the
// agent with an EPIPE on the pipe.
import { spawn } from 'node:child_process';
import { SkiffError } from './errors.js';

export class CommandError extends SkiffError {
  constructor(
    code: string,
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(code, `${argv.join(' ')}: exit ${exitCode}: ${stderr.trim().split('\n').slice(0, 5).join(' | ')}`);
    this.name = 'CommandError';
  }
}

export interface RunOptions {
  readonly input?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Kills the command after this long; it then fails with exit code null. */
  readonly timeoutMs?: number;
  /** The stable code of the CommandError a failure throws. */
  readonly errorCode?: string;
}

/** Runs argv and resolves with its stdout; a non-zero exit rejects with a CommandError. */
export function runCommand(argv: readonly string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(argv[0]!, argv.slice(1), { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    const out: Buffer[] = [];
    let err = '';
    const timer = opts.timeoutMs ? setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs) : undefined;
    p.stdout!.on('data', (d: Buffer) => out.push(d));
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(new CommandError(opts.errorCode ?? 'ERR_COMMAND', argv, null, e.message));
    });
    p.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(out).toString());
      else reject(new CommandError(opts.errorCode ?? 'ERR_COMMAND', argv, code, err));
    });
    if (opts.input !== undefined) {
      p.stdin!.on('error', () => undefined);
      p.stdin!.end(opts.input);
    }
  });
}
