// `skiff sandbox ...` as the sandbox suites run it: against their own state dir and name.
import { spawn } from 'node:child_process';
import { skiffCommand } from '../../common/self.js';

export type SandboxCli = (args: string[], input?: string) => Promise<{ code: number; stdout: string; stderr: string }>;

export function sandboxCli(env: NodeJS.ProcessEnv): SandboxCli {
  return (args, input) => {
    const [cmd, ...rest] = [...skiffCommand(), 'sandbox', ...args];
    return new Promise((resolve, reject) => {
      const p = spawn(cmd!, rest, { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('error', reject);
      p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      p.stdin.on('error', () => undefined); // a child that exits unread reports through its exit code
      p.stdin.end(input ?? '');
    });
  };
}
