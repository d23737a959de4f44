// What the runtime e2e scripts share: running commands, a busybox image from Debian's static
// busybox, checks that record instead of throwing, and a two-node sandbox whose nodes carry
// Debian's portmap next to skiff's shim (so the agent chains it and hostPort works).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { skiffCommand } from '../../common/self.js';
import { layout, nodeLayouts, type Layout, type NodeLayout } from '../../sandbox/names.js';
import { until } from '../support/until.js';

export { until };

const pexec = promisify(execFile);
export const EXIT_FAILED = 1;
export const EXIT_SETUP = 3;
export const EXIT_PREREQ = 77;

export class Exit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export async function run(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<string> {
  const p = pexec(cmd, args, { env: opts.env ?? process.env, maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 120_000 });
  if (opts.input !== undefined) {
    p.child.stdin?.on('error', () => undefined);
    p.child.stdin?.end(opts.input);
  }
  try {
    return (await p).stdout;
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr || err.stdout || err.message).trim().slice(-2000)}`);
  }
}

export function hasCommand(name: string): boolean {
  return ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(join(d, name)));
}

/** Records each check; the script's exit status is 1 when any failed. */
export class Checks {
  readonly failed: string[] = [];
  constructor(private readonly tag: string) {}
  async check(name: string, f: () => Promise<void>): Promise<void> {
    const t0 = Date.now();
    try {
      await f();
      console.log(`${this.tag}: ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      this.failed.push(name);
      console.log(`${this.tag}: FAIL ${name}: ${(e as Error).message}`);
    }
  }
}

export function expectEqual<T>(what: string, got: T, want: T): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

/**
 * A root filesystem tar with Debian's static busybox and the applets the checks use. Static glibc
 * cannot resolve names without its NSS modules, so checks use IP addresses with nc, and busybox's
 * own nslookup for DNS.
 */
export function busyboxRootfs(dir: string): string {
  const root = join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'www']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  for (const a of ['sh', 'sleep', 'nslookup', 'ip', 'hostname', 'httpd', 'nc', 'cat', 'echo', 'printf', 'mkdir', 'ls']) symlinkSync('busybox', join(root, 'bin', a));
  writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\n');
  return root;
}

/** The command a container runs: answers HTTP on 8080 with its hostname. */
export const HTTPD = ['sh', '-c', 'hostname > /www/index.html && exec httpd -f -p 8080 -h /www'];

/** `GET /` over nc (busybox wget resolves through NSS and so crashes statically linked). */
export const httpGet = (ip: string, port: number): string[] => ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} ${port} | tail -n 1`];

export interface Sandbox {
  readonly l: Layout;
  readonly nodes: NodeLayout[];
  cli(args: string[], input?: string): Promise<string>;
  down(): Promise<void>;
}

/**
 * A sandbox whose node CNI bin dirs hold Debian's portmap and loopback before the agents start, so
 * each agent chains portmap into the conflist it writes (it probes the bin dir once at start).
 */
export async function sandboxUp(name: string, subnet: string, nodes: number, opts: { externalAgents?: readonly string[] } = {}): Promise<Sandbox> {
  const stateDir = `/tmp/${name}-state`;
  const env = { ...process.env, SKIFF_SANDBOX_DIR: stateDir, SKIFF_SANDBOX_NAME: name, SKIFF_SANDBOX_EXTERNAL_AGENTS: (opts.externalAgents ?? []).join(',') };
  const [cmd, ...pre] = skiffCommand();
  const cli = (args: string[], input?: string) => run(cmd!, [...pre, 'sandbox', ...args], { env, input, timeoutMs: 300_000 });
  const l = layout({ name, nodes, subnet, stateDir });
  await cli(['down']);
  for (const n of nodeLayouts(l)) {
    mkdirSync(n.cniBinDir, { recursive: true });
    for (const p of ['portmap', 'loopback']) copyFileSync(join('/usr/lib/cni', p), join(n.cniBinDir, p));
  }
  // With an agent run elsewhere, `up` cannot wait for every node's agent: the caller waits.
  const wait = opts.externalAgents?.length ? ['--agent-timeout', '1'] : ['--wait', '--agent-timeout', '120'];
  await cli(['up', '--nodes', String(nodes), '--subnet', subnet, '--timeout', '120', ...wait]);
  return { l, nodes: nodeLayouts(l), cli, down: async () => void (await cli(['down']).catch((e: Error) => console.error(e.message))) };
}

export function inNodeNet(node: string, argv: readonly string[]): string[] {
  // nsenter, not `ip netns exec`: that one gives the command a mount namespace of its own, and a
  // runtime's pod netns bind mount made there would never reach the agent.
  return ['nsenter', `--net=/run/netns/${node}`, ...argv];
}

export function background(argv: readonly string[], log: (s: string) => void): ChildProcess {
  const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  p.stdout!.on('data', (d) => log(String(d)));
  p.stderr!.on('data', (d) => log(String(d)));
  return p;
}

/** The IPv4 address of eth0 in a container, from `ip -4 -o addr show eth0` run inside it. */
export function eth0Address(out: string): string {
  const m = /inet (\d+\.\d+\.\d+\.\d+)\/\d+/.exec(out);
  if (!m) throw new Error(`no IPv4 address on eth0: ${out.trim()}`);
  return m[1]!;
}

export function inCidr(ip: string, cidr: string): boolean {
  const [net, bits] = cidr.split('/') as [string, string];
  const n = (s: string) => s.split('.').reduce((a, o) => (a << 8) + Number(o), 0) >>> 0;
  const mask = Number(bits) === 0 ? 0 : (~0 << (32 - Number(bits))) >>> 0;
  return (n(ip) & mask) === (n(net) & mask);
}
