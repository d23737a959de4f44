// Calls CNI plugins the way containerd's libcni does: the first network config file in the conf dir
// (sorted by name), each plugin of the list run in order with the list's name and cniVersion and the
// previous plugin's result as prevResult; DEL runs the list in reverse with the cached ADD result.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SkiffError } from '../common/errors.js';

export interface NetConfList {
  readonly file: string;
  readonly name: string;
  readonly cniVersion: string;
  readonly plugins: readonly Record<string, unknown>[];
}

export interface CniCall {
  readonly containerId: string;
  /** Path of the pod's network namespace, e.g. /var/run/netns/skiff-pod-0123456789. */
  readonly netnsPath: string;
  readonly ifName: string;
  readonly podNamespace: string;
  readonly podName: string;
  /** Directories searched for plugin binaries, in order (CNI_PATH). */
  readonly binDirs: readonly string[];
  /** Runs a plugin binary with env and stdin; where it runs (which netns) is the caller's choice. */
  readonly exec: PluginExec;
  /** Capability arguments (portMappings…), given as runtimeConfig to the plugins that declare them. */
  readonly capabilityArgs?: Readonly<Record<string, unknown>>;
}

export type PluginExec = (binary: string, env: Record<string, string>, stdin: string) => Promise<{ code: number | null; stdout: string; stderr: string }>;

export class CniError extends SkiffError {
  constructor(
    message: string,
    readonly cniCode?: number,
  ) {
    super('ERR_SANDBOX_CNI', message);
    this.name = 'CniError';
  }
}

/** The conflist libcni would pick, or undefined while the conf dir has none (network not ready). */
export async function loadNetConfList(confDir: string): Promise<NetConfList | undefined> {
  const files = (await readdir(confDir).catch(() => [] as string[])).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort();
  for (const f of files) {
    const file = join(confDir, f);
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    } catch {
      continue; // half-written or broken: libcni skips it too
    }
    const name = typeof doc.name === 'string' ? doc.name : '';
    const cniVersion = typeof doc.cniVersion === 'string' ? doc.cniVersion : '0.4.0';
    if (f.endsWith('.conflist') && Array.isArray(doc.plugins) && doc.plugins.length > 0) {
      return { file, name, cniVersion, plugins: doc.plugins as Record<string, unknown>[] };
    }
    // A single-plugin .conf is a list of one.
    if (!f.endsWith('.conflist') && typeof doc.type === 'string') return { file, name, cniVersion, plugins: [doc] };
  }
  return undefined;
}

function findPlugin(type: string, dirs: readonly string[]): string {
  if (!/^[A-Za-z0-9._-]+$/.test(type)) throw new CniError(`invalid plugin type "${type}"`);
  for (const d of dirs) {
    const p = join(d, type);
    if (existsSync(p)) return p;
  }
  throw new CniError(`failed to find plugin "${type}" in path [${dirs.join(' ')}]`);
}

async function invoke(list: NetConfList, plugin: Record<string, unknown>, command: 'ADD' | 'DEL' | 'CHECK', call: CniCall, prevResult: unknown): Promise<unknown> {
  const type = String(plugin.type ?? '');
  const bin = findPlugin(type, call.binDirs);
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  if (prevResult !== undefined) conf.prevResult = prevResult;
  // As libcni does: only capabilities the plugin declares, and only those the runtime has values for.
  const caps = (plugin.capabilities ?? {}) as Record<string, unknown>;
  const runtimeConfig: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(call.capabilityArgs ?? {})) if (caps[k] === true) runtimeConfig[k] = v;
  if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netnsPath,
    CNI_IFNAME: call.ifName,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${call.podNamespace};K8S_POD_NAME=${call.podName};K8S_POD_INFRA_CONTAINER_ID=${call.containerId}`,
    CNI_PATH: call.binDirs.join(':'),
  };
  const r = await call.exec(bin, env, JSON.stringify(conf));
  if (r.code !== 0) {
    let msg = r.stderr.trim() || `exit ${r.code}`;
    let code: number | undefined;
    try {
      const e = JSON.parse(r.stdout) as { code?: number; msg?: string; details?: string };
      code = e.code;
      msg = [e.msg, e.details].filter(Boolean).join(': ') || msg;
    } catch {
      /* not a CNI error object */
    }
    throw new CniError(`plugin type="${type}" failed (${command.toLowerCase()}): ${msg}`, code);
  }
  if (command !== 'ADD') return prevResult;
  try {
    return JSON.parse(r.stdout) as unknown;
  } catch {
    throw new CniError(`plugin type="${type}" returned a result that is not JSON: ${r.stdout.slice(0, 200)}`);
  }
}

/** ADD through the whole list; returns the final result. */
export async function cniAdd(list: NetConfList, call: CniCall): Promise<unknown> {
  let prev: unknown = undefined;
  for (const p of list.plugins) prev = await invoke(list, p, 'ADD', call, prev);
  return prev;
}

/** DEL through the list in reverse; every plugin is called even when one fails, the first error is thrown. */
export async function cniDel(list: NetConfList, call: CniCall, cachedResult: unknown): Promise<void> {
  let first: unknown;
  for (const p of [...list.plugins].reverse()) {
    try {
      await invoke(list, p, 'DEL', call, cachedResult);
    } catch (e) {
      first ??= e;
    }
  }
  if (first) throw first;
}

/** The pod IPs of a CNI result, bare addresses in result order. */
export function resultIPs(result: unknown): string[] {
  const ips = (result as { ips?: { address?: string }[] } | undefined)?.ips ?? [];
  return ips.map((i) => (i.address ?? '').split('/')[0]!).filter(Boolean);
}

/** Runs a plugin inside a named network namespace, as a runtime on that node would. */
export function execInNetns(ns: string): PluginExec {
  return (binary, env, stdin) =>
    new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', ns, binary], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin.on('error', () => undefined); // a child that exits unread reports through its exit code
      child.stdin.end(stdin);
    });
}
