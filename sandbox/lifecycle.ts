// `up` and `down`: the underlay, the supervisor daemon and the wait for ready nodes. The supervisor is
// a detached process whose pid file lives in the state dir; `down` stops it, then removes every
// kernel object and file carrying the sandbox's name, so it is safe after a crash or twice.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SkiffError } from '../common/errors.js';
import { projectRoot, skiffCommand } from '../common/self.js';
import { SandboxClient } from './client.js';
import { AGENT_HEALTH_PORT, layout, nodeLayouts, type Layout, type SandboxSpec } from './names.js';
import { destroyUnderlay, ensureUnderlay } from './underlay.js';
import { ensureCniWrapper, linkChainedPlugins } from './cni-wrapper.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new SkiffError('ERR_SANDBOX_ROOT', 'the sandbox creates network namespaces: run it as root');
}

/** Whether pid is this sandbox's supervisor, checked against /proc so a recycled pid is not mistaken for it. */
function isSupervisor(pid: number, l: Layout): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline.includes('supervise') && cmdline.includes(l.stateDir);
  } catch {
    return false;
  }
}

/** The running supervisor's pid, from its pid file. */
export function supervisorPid(l: Layout): number | undefined {
  try {
    const pid = Number(readFileSync(l.pidFile, 'utf8').trim());
    return isSupervisor(pid, l) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function loadLayout(name: string, stateDir: string): Layout | undefined {
  const file = join(stateDir, 'sandbox.json');
  if (!existsSync(file)) return undefined;
  const spec = JSON.parse(readFileSync(file, 'utf8')) as SandboxSpec;
  if (spec.name !== name) throw new SkiffError('ERR_SANDBOX_STATE', `${file} belongs to sandbox "${spec.name}", not "${name}"`);
  return layout(spec);
}

export async function agentHealthy(ip: string, timeoutMs = 1000): Promise<boolean> {
  try {
    const res = await fetch(`http://${ip}:${AGENT_HEALTH_PORT}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    return res.ok;
  } catch {
    return false;
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function stopSupervisor(l: Layout, out: (s: string) => void): Promise<boolean> {
  const pid = supervisorPid(l);
  if (!pid) return false;
  process.kill(pid, 'SIGTERM');
  // It stops the agents and the pods (CNI DEL) before exiting.
  for (let i = 0; i < 300 && isSupervisor(pid, l); i++) await sleep(100);
  if (isSupervisor(pid, l)) {
    out(`supervisor ${pid} did not stop in 30s; killing it`);
    process.kill(pid, 'SIGKILL');
  }
  rmSync(l.pidFile, { force: true });
  return true;
}

export interface UpOptions {
  readonly spec: SandboxSpec;
  readonly wait: boolean;
  readonly timeoutMs: number;
  /** How long to wait for the agents after the API server is up (default: what is left of timeoutMs). */
  readonly agentTimeoutMs?: number;
  readonly out: (line: string) => void;
}

export interface UpResult {
  readonly layout: Layout;
  readonly apiReadyMs: number;
  /** Undefined when some node's agent never became healthy within the timeout. */
  readonly nodesReadyMs?: number;
}

export async function up(o: UpOptions): Promise<UpResult> {
  requireRoot();
  const t0 = Date.now();
  const l = layout(o.spec);
  mkdirSync(l.stateDir, { recursive: true });
  const previous = loadLayout(l.name, l.stateDir);
  const changed = previous && (previous.nodes !== l.nodes || previous.subnet !== l.subnet);
  if (changed && supervisorPid(l)) {
    o.out(`sandbox ${l.name}: layout changed (${previous.nodes} -> ${l.nodes} nodes); restarting its supervisor`);
    await stopSupervisor(l, o.out);
  }
  if (previous && previous.subnet !== l.subnet) await destroyUnderlay(previous);
  writeFileSync(l.specFile, JSON.stringify({ name: l.name, nodes: l.nodes, subnet: l.subnet, stateDir: l.stateDir }, null, 2) + '\n');
  await ensureUnderlay(l);
  for (const n of nodeLayouts(l)) {
    ensureCniWrapper(n.cniBinDir);
    linkChainedPlugins(n.cniBinDir);
  }

  if (!supervisorPid(l)) {
    const fd = openSync(l.logFile, 'a');
    const [cmd, ...args] = [...skiffCommand(), 'sandbox', 'supervise', '--state-dir', l.stateDir];
    // cwd: `--import tsx` resolves from the working directory.
    const child = spawn(cmd!, args, { cwd: projectRoot, detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, SKIFF_SANDBOX_NAME: l.name } });
    closeSync(fd);
    child.unref();
    writeFileSync(l.pidFile, `${child.pid}\n`);
    o.out(`sandbox ${l.name}: supervisor started (pid ${child.pid}, log ${l.logFile})`);
  } else {
    o.out(`sandbox ${l.name}: supervisor already running`);
  }

  const deadline = t0 + o.timeoutMs;
  let client: SandboxClient | undefined;
  while (Date.now() < deadline) {
    if (!supervisorPid(l)) throw new SkiffError('ERR_SANDBOX_START', `the supervisor exited; last lines of ${l.logFile}:\n${tail(l.logFile)}`);
    if (existsSync(l.kubeconfig)) {
      client ??= SandboxClient.load(l.kubeconfig);
      if ((await client.ready()) && (await client.list('nodes')).items.length >= l.nodes) break;
    }
    await sleep(100);
  }
  if (Date.now() >= deadline) throw new SkiffError('ERR_SANDBOX_START', `the API server did not come up in ${o.timeoutMs / 1000}s; see ${l.logFile}`);
  const apiReadyMs = Date.now() - t0;
  o.out(`sandbox ${l.name}: API server ready at ${l.apiServer} after ${apiReadyMs} ms (kubeconfig ${l.kubeconfig})`);

  const nodes = nodeLayouts(l);
  const healthy = new Set<string>();
  const agentDeadline = o.agentTimeoutMs !== undefined ? Date.now() + o.agentTimeoutMs : deadline;
  while (Date.now() < agentDeadline && healthy.size < nodes.length) {
    await Promise.all(nodes.filter((n) => !healthy.has(n.name)).map(async (n) => (await agentHealthy(n.ip, 500)) && healthy.add(n.name)));
    if (healthy.size < nodes.length) await sleep(250);
  }
  if (healthy.size === nodes.length) {
    const nodesReadyMs = Date.now() - t0;
    o.out(`sandbox ${l.name}: ${nodes.length} nodes ready (agent /healthz) after ${nodesReadyMs} ms`);
    return { layout: l, apiReadyMs, nodesReadyMs };
  }
  const missing = nodes.filter((n) => !healthy.has(n.name));
  const msg = `agent not healthy on ${missing.map((n) => `${n.name} (${n.ip}:${AGENT_HEALTH_PORT}, log ${n.agentLog})`).join(', ')} after ${Math.round((Date.now() - t0) / 1000)}s`;
  if (o.wait) throw new SkiffError('ERR_SANDBOX_NOT_READY', msg);
  o.out(`sandbox ${l.name}: WARNING: ${msg}; the API server, controllers and kubelets run anyway`);
  return { layout: l, apiReadyMs };
}

const STATE_FILES = ['sandbox.json', 'kubeconfig', 'supervisor.pid', 'supervisor.log', 'apiserver-state.json', 'apiserver-ca.crt'];

/** Stops and removes everything; returns the list of what it removed (empty when nothing was there). */
export async function down(name: string, stateDir: string, out: (s: string) => void): Promise<string[]> {
  requireRoot();
  const l = loadLayout(name, stateDir) ?? layout({ name, nodes: 0, subnet: '0.0.0.0/24', stateDir });
  const removed: string[] = [];
  if (await stopSupervisor(l, out)) removed.push('supervisor');
  removed.push(...(await destroyUnderlay(l)));
  if (existsSync(stateDir)) {
    for (const f of readdirSync(stateDir)) {
      if (STATE_FILES.includes(f) || /^node-\d+$/.test(f) || f.startsWith('apiserver-state.json.tmp')) {
        rmSync(join(stateDir, f), { recursive: true, force: true });
        removed.push(join(stateDir, f));
      }
    }
    try {
      rmdirSync(stateDir);
      removed.push(stateDir);
    } catch {
      /* not empty: something not ours is in there, leave it */
    }
  }
  return removed;
}
