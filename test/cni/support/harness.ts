// Shared fixtures for the CNI root suites: the shim built once per suite, node agents started
// inside namespaces, and a CNI invocation helper that behaves like a runtime.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { projectRoot } from '../../../common/self.js';
import type { NodeInfo } from '../../../common/types.js';
import { until } from '../../support/until.js';

export { until };

export function buildShim(dir: string): string {
  const out = join(dir, 'skiff');
  execFileSync('cc', ['-O2', '-static', '-o', out, join(projectRoot, 'cni', 'shim', 'skiff-cni.c')]);
  return out;
}

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `skiffcni-${tag}-`));
}

export interface CniCall {
  code: number;
  out: Record<string, unknown>;
  raw: string;
}

/** Runs a CNI binary (or argv) inside a node namespace with CNI_* variables and a config on stdin. */
export function cniExec(nodeNs: string, argv: readonly string[], env: Record<string, string | undefined>, stdin: string): Promise<CniCall> {
  return new Promise((resolve, reject) => {
    const cleanEnv: Record<string, string> = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
    for (const [k, v] of Object.entries(env)) if (v !== undefined) cleanEnv[k] = v;
    const p = spawn('ip', ['netns', 'exec', nodeNs, ...argv], { env: cleanEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    let raw = '';
    let err = '';
    p.stdout.on('data', (d) => (raw += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      let out: Record<string, unknown> = {};
      try {
        if (raw.trim()) out = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        out = { unparsable: raw, stderr: err };
      }
      resolve({ code: code ?? -1, out, raw });
    });
    p.stdin.on('error', () => undefined); // a child that exits unread reports through its exit code
    p.stdin.end(stdin);
  });
}

export class NodeAgent {
  readonly proc: ChildProcess;
  private readonly waiters: { type: string; resolve: (m: Record<string, unknown>) => void }[] = [];
  readonly messages: Record<string, unknown>[] = [];
  onMessage?: (m: Record<string, unknown>) => void;

  constructor(ns: string, opts: Record<string, unknown>) {
    this.proc = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', join(projectRoot, 'test', 'cni', 'support', 'node-agent.ts'), JSON.stringify(opts)], {
      stdio: ['pipe', 'pipe', 'inherit'],
      cwd: projectRoot,
    });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      let m: Record<string, unknown>;
      try {
        m = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      this.messages.push(m);
      this.onMessage?.(m);
      for (const w of [...this.waiters]) {
        if (w.type === m.type) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    });
  }

  waitFor(type: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${type}`)), timeoutMs);
      this.waiters.push({
        type,
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
      });
    });
  }

  send(cmd: Record<string, unknown>): void {
    this.proc.stdin!.write(JSON.stringify(cmd) + '\n');
  }

  async stop(op: 'stop' | 'cleanup' = 'stop'): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.send({ op });
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

/**
 * The Node objects a set of test agents share, standing in for the API server's: an agent's
 * annotation patch is applied and every agent sees the result.
 */
export class SharedNodes {
  readonly nodes = new Map<string, NodeInfo>();
  /** By node name: a restarted node's new agent replaces the old one. */
  readonly agents = new Map<string, NodeAgent>();

  put(o: NodeInfo): void {
    this.nodes.set(o.name, o);
    for (const a of this.agents.values()) a.send({ op: 'upsert', kind: 'nodes', key: o.name, obj: o });
  }

  /** Wires an agent in: its patches reach everyone; it gets every Node, then nodes and pods synced. */
  attach(name: string, a: NodeAgent): NodeAgent {
    a.onMessage = (m) => {
      if (m.type !== 'patch') return;
      const cur = this.nodes.get(m.name as string)!;
      this.put({ ...cur, annotations: patchAnnotations(cur.annotations, m.annotations as Record<string, string | null>) });
    };
    this.agents.set(name, a);
    for (const o of this.nodes.values()) a.send({ op: 'upsert', kind: 'nodes', key: o.name, obj: o });
    a.send({ op: 'synced', kind: 'nodes' });
    a.send({ op: 'synced', kind: 'pods' });
    return a;
  }
}

/** An annotation merge patch as the API server applies it: a null value removes the key. */
export function patchAnnotations(cur: Readonly<Record<string, string>>, patch: Readonly<Record<string, string | null>>): Record<string, string> {
  const out: Record<string, string> = { ...cur };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

export function pluginEnv(command: string, containerID: string, netns: string | undefined, extra: Record<string, string> = {}): Record<string, string | undefined> {
  return { CNI_COMMAND: command, CNI_CONTAINERID: containerID, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', ...extra };
}

/** A TCP listener in `ns` that answers each connection with the peer address it saw. */
export function whoamiServer(ns: string, port: number, ipv6 = false): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, 'socat', `${ipv6 ? 'TCP6' : 'TCP4'}-LISTEN:${port},reuseaddr,fork`, 'SYSTEM:echo $SOCAT_PEERADDR'], { stdio: 'ignore' });
}

/** Connects from `ns` and returns the source address the server saw; retries while it starts. */
export async function whoami(ns: string, ip: string, port: number, attempts = 20): Promise<string> {
  const target = ip.includes(':') ? `TCP6:[${ip}]:${port}` : `TCP4:${ip}:${port}`;
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      const out = execFileSync('ip', ['netns', 'exec', ns, 'socat', '-t3', '-T3', '-', `${target},connect-timeout=3`], { input: '', encoding: 'utf8', timeout: 8000 });
      if (out.trim()) return out.trim().replace(/^\[|\]$/g, '');
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no answer from ${ip}:${port} in ${ns}: ${String(last)}`);
}

/**
 * Sends one UDP datagram of `size` payload bytes with DF (IP_PMTUDISC_DO) from `ns` and reports
 * how many bytes the listener in `toNs` received (0 when it never arrived or could not be sent).
 */
export async function udpDF(fromNs: string, toNs: string, ip: string, port: number, size: number): Promise<number> {
  const server = spawn('ip', ['netns', 'exec', toNs, 'socat', '-u', '-T2', `UDP4-RECV:${port},reuseaddr`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let got = 0;
  server.stdout!.on('data', (d: Buffer) => (got += d.length));
  await new Promise((r) => setTimeout(r, 300));
  try {
    execFileSync('ip', ['netns', 'exec', fromNs, 'socat', '-u', `-b${size}`, 'STDIN', `UDP4-SENDTO:${ip}:${port},ip-mtu-discover=2`], { input: Buffer.alloc(size, 120), timeout: 5000, stdio: ['pipe', 'ignore', 'ignore'] });
  } catch {
    /* EMSGSIZE: too big to leave with DF */
  }
  await new Promise((r) => setTimeout(r, 500));
  server.kill('SIGKILL');
  return got;
}

/** Streams `bytes` over TCP from `fromNs` to `ip:port` in `toNs`; resolves with what arrived. */
export async function stream(fromNs: string, toNs: string, ip: string, port: number, bytes: number): Promise<number> {
  const v6 = ip.includes(':');
  const server = spawn('ip', ['netns', 'exec', toNs, 'socat', '-u', `${v6 ? 'TCP6' : 'TCP4'}-LISTEN:${port},reuseaddr`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let got = 0;
  server.stdout!.on('data', (d: Buffer) => (got += d.length));
  // 'close', not 'exit': the last of its output can still be in the pipe when the process has exited.
  const received = new Promise((r) => server.once('close', r));
  try {
    await until('listener', () => execFileSync('ip', ['netns', 'exec', toNs, 'ss', '-Hltn', `sport = :${port}`], { encoding: 'utf8' }).trim() || undefined, 5000);
    // Both ends asynchronous: the listener's output is read by this process while the client sends.
    const client = spawn('ip', ['netns', 'exec', fromNs, 'socat', '-u', 'STDIN', `${v6 ? `TCP6:[${ip}]` : `TCP4:${ip}`}:${port},connect-timeout=3`], { stdio: ['pipe', 'ignore', 'ignore'] });
    client.stdin!.on('error', () => undefined);
    client.stdin!.end(Buffer.alloc(bytes, 97));
    const timeout = new Promise((r) => setTimeout(r, 15_000));
    await Promise.race([Promise.all([new Promise((r) => client.once('exit', r)), received]), timeout]);
    client.kill('SIGKILL');
  } finally {
    server.kill('SIGKILL');
  }
  return got;
}
