// `skiff sandbox ...` as the sandbox suites run it: against their own state dir and name. Also
// `skiff ...` and any other command (kubectl) with the same environment and captured output.
import { spawn } from 'node:child_process';
import { skiffCommand } from '../../common/self.js';

export type CommandResult = { code: number; stdout: string; stderr: string };
export type SandboxCli = (args: string[], input?: string) => Promise<CommandResult>;

/** Runs cmd to its end with `input` on stdin; never rejects on a non-zero exit. */
export function runCommand(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, input?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.on('error', () => undefined); // a child that exits unread reports through its exit code
    p.stdin.end(input ?? '');
  });
}

/** `skiff ARGS`. */
export function skiffCli(env: NodeJS.ProcessEnv): SandboxCli {
  const [cmd, ...pre] = skiffCommand();
  return (args, input) => runCommand(cmd!, [...pre, ...args], env, input);
}

export function sandboxCli(env: NodeJS.ProcessEnv): SandboxCli {
  const skiff = skiffCli(env);
  return (args, input) => skiff(['sandbox', ...args], input);
}
