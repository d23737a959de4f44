// One container = one process group started with `ip netns exec <ns>` on the host filesystem, so
// the pod's resolv.conf applies and stopping it kills everything it spawned.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { agnhostArgv, isAgnhostImage } from '../agnhost/image.js';
import type { KubeObject } from '../apiserver/resources.js';

export interface ContainerSpec {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath?: string } } }[];
  workingDir?: string;
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  readinessProbe?: Record<string, unknown>;
}

/** What a container runs: command + args; an image entrypoint cannot run here, so none means "pause". */
export function containerArgv(c: ContainerSpec): string[] {
  // agnhost, the upstream test image, is the one image the sandbox provides a stand-in for.
  const agnhost = isAgnhostImage(c.image) ? agnhostArgv(c.command, c.args) : undefined;
  if (agnhost) return agnhost;
  const argv = [...(c.command ?? []), ...(c.args ?? [])];
  return argv.length ? argv : ['sleep', 'infinity'];
}

/** Container environment with the downward-API fields a sandbox pod can know. */
export function containerEnv(c: ContainerSpec, pod: KubeObject, podIP: string, hostIP: string): Record<string, string> {
  /* eslint-disable-next-line @typescript-eslint/no-explicit-any -- raw API JSON, read only */
  const spec = (pod.spec ?? {}) as any;
  const fields: Record<string, string> = {
    'metadata.name': pod.metadata.name ?? '',
    'metadata.namespace': pod.metadata.namespace ?? '',
    'metadata.uid': pod.metadata.uid ?? '',
    'spec.nodeName': spec.nodeName ?? '',
    'spec.serviceAccountName': spec.serviceAccountName ?? 'default',
    'status.podIP': podIP,
    'status.hostIP': hostIP,
  };
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOSTNAME: spec.hostname ?? pod.metadata.name ?? '' };
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath) env[e.name] = fields[e.valueFrom.fieldRef.fieldPath] ?? '';
  }
  return env;
}

export function startContainer(netns: string, c: ContainerSpec, env: Record<string, string>, logFile: string): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    return spawn('ip', ['netns', 'exec', netns, ...containerArgv(c)], { env, cwd: c.workingDir || '/', detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
}

/** SIGTERM to the process group, SIGKILL after the grace period; resolves when it has exited. */
export function stopProcessGroup(pid: number, graceMs: number, exited?: Promise<unknown>): Promise<void> {
  const kill = (sig: NodeJS.Signals): boolean => {
    try {
      process.kill(-pid, sig);
      return true;
    } catch {
      return false;
    }
  };
  if (!kill('SIGTERM')) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      kill('SIGKILL');
      resolve();
    }, graceMs);
    void exited?.then(() => {
      clearTimeout(t);
      // Children that ignored SIGTERM in the same group.
      kill('SIGKILL');
      resolve();
    });
  });
}
