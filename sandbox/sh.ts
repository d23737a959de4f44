// Running the few host tools the sandbox needs (ip, nft). Failures carry the command and stderr.
import { execFile } from 'node:child_process';
import { SkiffError } from '../common/errors.js';

export class CommandError extends SkiffError {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super('ERR_SANDBOX_COMMAND', `${argv.join(' ')}: exit ${exitCode}: ${stderr.trim().split('\n').slice(-3).join(' ')}`);
    this.name = 'CommandError';
  }
}

export interface RunOptions {
  readonly input?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 16 << 20, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new CommandError([cmd, ...args], typeof err.code === 'number' ? err.code : null, String(stderr || err.message)));
      else resolve(String(stdout));
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like run, but a failure is returned as undefined: for probes and best-effort cleanup. */
export async function tryRun(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string | undefined> {
  try {
    return await run(cmd, args, opts);
  } catch {
    return undefined;
  }
}

export const inNetns = (ns: string, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> => run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
