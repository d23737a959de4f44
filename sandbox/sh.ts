// Running the few host tools the sandbox needs (ip, nft). Failures carry the command and stderr.
import { runCommand, type RunOptions } from '../common/exec.js';

export { CommandError } from '../common/exec.js';
export type { RunOptions };

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  return runCommand([cmd, ...args], { timeoutMs: 30_000, ...opts, errorCode: 'ERR_SANDBOX_COMMAND' });
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
