// Shared pieces of the gauntlet scenarios: progress output, the skiffg name prefix, a real
// `skiff agent` started inside a namespace against a fake API server reached over a veth, and
// small polling helpers. Every scenario owns its namespaces and removes them by prefix.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CPU_SPLIT_ENV } from '../../common/cpu-split.js';
import { projectRoot, skiffCommand } from '../../common/self.js';
import { addNetns, inNs, sh } from '../../test/support/netns.js';

export const PREFIX = 'skiffg';

export const progress = (scenario: string, msg: string): void => void process.stderr.write(`[gauntlet ${scenario}] ${msg}\n`);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `${PREFIX}-${tag}-`));
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * A node namespace joined to the host by a veth: `hostIP` on the host end (where the in-process
 * fake API server listens), `nodeIP` inside (the node's InternalIP and the overlay's underlay).
 * Only these two addresses exist on the link, so nothing reaches beyond the host.
 */
export async function nodeNamespace(ns: string, hostIf: string, hostIP: string, nodeIP: string): Promise<void> {
  await addNetns(ns);
  await sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await sh('ip', ['addr', 'add', `${hostIP}/30`, 'dev', hostIf]);
  await sh('ip', ['link', 'set', hostIf, 'up']);
  await inNs(ns, 'ip', ['addr', 'add', `${nodeIP}/30`, 'dev', 'eth0']);
  await inNs(ns, 'ip', ['link', 'set', 'eth0', 'up']);
}

export interface AgentProcess {
  readonly proc: ChildProcess;
  readonly logPath: string;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
}

/** The agent's config for a node dir: every path under `dir`, every listener inside the namespace. */
export function agentConfig(dir: string, nodeName: string, kubeconfig: string, extra: Record<string, unknown> = {}): string {
  const cfg = {
    nodeName,
    kubeconfig,
    logLevel: 'info',
    stateDir: join(dir, 'state'),
    runDir: join(dir, 'run'),
    metricsBindAddress: '127.0.0.1:10249',
    healthzBindAddress: '127.0.0.1:10256',
    ...extra,
    cni: { confDir: join(dir, 'net.d'), binDir: join(dir, 'bin'), ...((extra.cni as object | undefined) ?? {}) },
  };
  const path = join(dir, 'agent.json');
  writeFileSync(path, JSON.stringify(cfg));
  return path;
}

/** Starts `skiff agent` inside `ns`; its log (JSON lines) goes to `<dir>/agent.log`, appended. */
export function startAgent(ns: string, dir: string, configPath: string, args: string[] = [], compiled = false): AgentProcess {
  const logPath = join(dir, 'agent.log');
  // compiled: dist/ as the DaemonSet runs it, even when the bench itself runs under tsx.
  const built = join(projectRoot, 'dist', 'bin', 'skiff.js');
  if (compiled && !existsSync(built)) throw new Error('run `npm run build` first: this scenario runs the compiled agent');
  const [exe, ...pre] = compiled ? [process.execPath, built] : skiffCommand();
  const proc = spawn('ip', ['netns', 'exec', ns, exe!, ...pre, 'agent', '--config', configPath, ...args], {
    // Several agents share this machine: each would keep its main thread to the same first CPUs.
    env: { ...process.env, [CPU_SPLIT_ENV]: 'off' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const sink = (d: Buffer): void => void writeFileSync(logPath, d, { flag: 'a' });
  proc.stdout!.on('data', sink);
  proc.stderr!.on('data', sink);
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  return { proc, logPath, exited };
}

export async function stopAgent(a: AgentProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | string> {
  if (a.proc.exitCode !== null || a.proc.signalCode !== null) return a.exited;
  a.proc.kill(signal);
  const t = setTimeout(() => a.proc.kill('SIGKILL'), timeoutMs);
  const r = await a.exited;
  clearTimeout(t);
  return r;
}

/** Resident set of a process in MiB (the agent is the `ip netns exec` child: exec keeps the pid). */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** GET over plain HTTP from inside a namespace (the agent's listeners live there), via curl. */
export async function getInNs(ns: string, url: string): Promise<string> {
  return (await inNs(ns, 'curl', ['-sf', '--max-time', '5', url])).stdout;
}

export const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
