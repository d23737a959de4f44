// Running kernel tools: the agent runs them directly, root tests run them inside a test namespace
// through a prefix such as ["ip", "netns", "exec", "skiffpx-node"].
import { spawn } from 'node:child_process';
import { SkiffError } from '../common/errors.js';

export class CommandError extends SkiffError {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super('ERR_PROXY_COMMAND', `${command}: exit ${exitCode}: ${stderr.trim().split('\n').slice(0, 5).join(' | ')}`);
    this.name = 'CommandError';
  }
}

export type Runner = (cmd: string, args: readonly string[], input?: string) => Promise<string>;

export function execRunner(prefix: readonly string[] = []): Runner {
  return (cmd, args, input) =>
    new Promise((resolve, reject) => {
      const argv = [...prefix, cmd, ...args];
      const p = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      let err = '';
      p.stdout.on('data', (d: Buffer) => out.push(d));
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('error', reject);
      p.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out).toString()) : reject(new CommandError(`${cmd} ${args.join(' ')}`, code, err))));
      p.stdin.on('error', () => undefined);
      p.stdin.end(input ?? '');
    });
}
