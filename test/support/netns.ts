// Network-namespace fixtures for root suites: named namespaces and veth links that carry the
// suite's prefix, torn down by prefix so a crashed run's leftovers are removed by the next one.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { runCommand } from '../../common/exec.js';

export interface RunResult {
  stdout: string;
}

/** Runs a command on the host; throws with stderr on a non-zero exit. */
export async function sh(cmd: string, args: readonly string[], input?: string): Promise<RunResult> {
  return { stdout: await runCommand([cmd, ...args], { input }) };
}

/** Runs a command inside a named namespace. */
export function inNs(ns: string, cmd: string, args: readonly string[], input?: string): Promise<RunResult> {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args], input);
}

/** Starts a long-running process inside a namespace; the caller kills it. */
export function spawnInNs(ns: string, cmd: string, args: readonly string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function addNetns(name: string): Promise<void> {
  await sh('ip', ['netns', 'add', name]);
  await inNs(name, 'ip', ['link', 'set', 'lo', 'up']);
}

/** Deletes every namespace and host link whose name starts with prefix (which must start with "skiff"). */
export function cleanupPrefix(prefix: string): void {
  if (!prefix.startsWith('skiff')) throw new Error(`refusing to clean up outside the skiff prefix: ${prefix}`);
  const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    if (name && name.startsWith(prefix)) {
      try {
        execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' })
          .split('\n')
          .filter(Boolean)
          .forEach((pid) => {
            try {
              process.kill(Number(pid), 'SIGKILL');
            } catch {
              /* already gone */
            }
          });
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      } catch {
        /* raced with another cleanup */
      }
    }
  }
  const links = JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[];
  for (const l of links) {
    if (l.ifname.startsWith(prefix)) {
      try {
        execFileSync('ip', ['link', 'del', l.ifname], { stdio: 'ignore' });
      } catch {
        /* the peer's deletion took it already */
      }
    }
  }
}

/**
 * Joins two namespaces with a veth pair and addresses them: a ready point-to-point underlay.
 * Link names are at most 15 bytes, so callers pass short names.
 */
export async function linkNamespaces(a: { ns: string; ifname: string; cidr: string }, b: { ns: string; ifname: string; cidr: string }): Promise<void> {
  const tmpA = `${a.ifname}`;
  const tmpB = `${b.ifname}`;
  await sh('ip', ['link', 'add', tmpA, 'netns', a.ns, 'type', 'veth', 'peer', 'name', tmpB, 'netns', b.ns]);
  await inNs(a.ns, 'ip', ['addr', 'add', a.cidr, 'dev', tmpA]);
  await inNs(b.ns, 'ip', ['addr', 'add', b.cidr, 'dev', tmpB]);
  await inNs(a.ns, 'ip', ['link', 'set', tmpA, 'up']);
  await inNs(b.ns, 'ip', ['link', 'set', tmpB, 'up']);
}
