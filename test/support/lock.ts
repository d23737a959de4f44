import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Takes the machine-wide lock for a sandbox name, so two runs that would build the same sandbox take
 * turns. The lock is held by a `cat` reading our pipe: it dies with this process, even on SIGKILL;
 * release it earlier with `lock.stdin.end()`.
 */
export async function lockSandbox(name: string): Promise<ChildProcess> {
  const l = spawn('flock', ['-x', `/tmp/${name}.lock`, 'sh', '-c', 'echo locked; exec cat'], { stdio: ['pipe', 'pipe', 'ignore'] });
  await new Promise<void>((resolve, reject) => {
    l.stdout!.once('data', () => resolve());
    l.once('exit', (code) => reject(new Error(`flock exited with ${code}`)));
  });
  return l;
}
