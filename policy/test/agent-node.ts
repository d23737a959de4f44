// The whole agent on a node namespace with its own API server (sandbox/apiserver) on loopback, as
// the root suites that test policy through the agent set it up (node.test.ts, fqdn.test.ts): node
// n1 and namespace x in the API, pods as namespaces `<prefix>-<name>` added through the C shim
// with the agent's CNI. The suite makes the namespaces and whatever else its case needs.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot, skiffCommand } from '../../common/self.js';
import { inNs } from '../../test/support/netns.js';
import { buildShim, pluginEnv } from '../../test/cni/support/harness.js';

export interface AgentNodeOptions {
  /** The suite's name prefix; `<prefix>-node` is the node's namespace. */
  readonly prefix: string;
  readonly apiPort: number;
  readonly podCIDR: string;
  /** The node's InternalIP, on the suite's link out of the node namespace. */
  readonly nodeIP: string;
  /** Agent flags of the suite (components, settings), for every start and for --cleanup. */
  readonly agentArgs: readonly string[];
  /** Of those, the ones --cleanup needs too. */
  readonly cleanupArgs?: readonly string[];
}

export class AgentNode {
  readonly node: string;
  dir = '';
  /** The agent's output since its last start. */
  log = '';
  private shim = '';
  private api: ChildProcess | undefined;
  private agent: ChildProcess | undefined;
  private seq = 0;

  constructor(private readonly o: AgentNodeOptions) {
    this.node = `${o.prefix}-node`;
  }

  private get apiURL(): string {
    return `http://127.0.0.1:${this.o.apiPort}`;
  }

  private dirArgs(): string[] {
    return ['--kubeconfig', join(this.dir, 'kubeconfig'), '--node-name', 'n1', '--state-dir', join(this.dir, 'state'), '--run-dir', join(this.dir, 'run'), '--set', `cni.confDir=${join(this.dir, 'net.d')}`, '--set', `cni.binDir=${join(this.dir, 'bin')}`];
  }

  /** A request to the API server from the node namespace; its body. */
  readonly curl = async (method: string, path: string, body?: unknown): Promise<string> =>
    (await inNs(this.node, 'curl', ['-sf', '-X', method, '-H', `content-type: ${method === 'PATCH' ? 'application/merge-patch+json' : 'application/json'}`, `${this.apiURL}${path}`, ...(body ? ['-d', JSON.stringify(body)] : [])])).stdout;

  async waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (await Promise.resolve(check()).catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}\nagent log:\n${this.log.slice(-3000)}`);
  }

  /** The work directory and the shim; before the namespaces exist. */
  prepare(): void {
    this.dir = mkdtempSync(join(tmpdir(), `${this.o.prefix}-`));
    mkdirSync(join(this.dir, 'net.d'));
    this.shim = buildShim(this.dir);
  }

  /** The API server in the node namespace, with node n1 and namespace x. */
  async startApi(): Promise<void> {
    this.api = spawn('ip', ['netns', 'exec', this.node, ...skiffCommand().slice(0, -1), join(projectRoot, 'sandbox/apiserver/index.ts'), '--port', String(this.o.apiPort), '--kubeconfig-out', join(this.dir, 'kubeconfig')], { cwd: projectRoot, stdio: 'ignore' });
    await this.waitFor('the API server', async () => (await this.curl('GET', '/healthz')) === 'ok');
    const cidr = this.o.podCIDR;
    await this.curl('POST', '/api/v1/nodes', { metadata: { name: 'n1' }, spec: { podCIDR: cidr, podCIDRs: [cidr] }, status: { addresses: [{ type: 'InternalIP', address: this.o.nodeIP }], conditions: [{ type: 'Ready', status: 'True' }] } });
    await this.curl('POST', '/api/v1/namespaces', { metadata: { name: 'x', labels: { 'kubernetes.io/metadata.name': 'x' } } });
  }

  async startAgent(extra: string[] = []): Promise<void> {
    this.log = '';
    const args = [...skiffCommand(), 'agent', ...this.dirArgs(), '--cluster-cidrs', '10.244.0.0/16', ...this.o.agentArgs, '--log-level', 'info', ...extra];
    const agent = spawn('ip', ['netns', 'exec', this.node, ...args], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    this.agent = agent;
    agent.stdout!.on('data', (d) => (this.log += d));
    agent.stderr!.on('data', (d) => (this.log += d));
    await this.waitFor('the agent to be ready', async () => (await inNs(this.node, 'curl', ['-sf', 'http://127.0.0.1:10256/readyz'])).stdout.includes('"ok":true'), 60_000);
  }

  async stopAgent(): Promise<void> {
    const agent = this.agent;
    if (!agent || agent.exitCode !== null) return;
    const exited = new Promise((r) => agent.once('exit', r));
    agent.kill('SIGTERM');
    await exited;
  }

  /**
   * CNI ADD of pod x/<name> (namespace `<prefix>-<name>`) through the shim, in a shell on the node;
   * `then` runs in the same shell right after (no pause). Stdout is the shim's result, then `then`'s.
   */
  cniAdd(name: string, then = ''): SpawnSyncReturns<string> {
    const env = { PATH: process.env.PATH!, ...(pluginEnv('ADD', `ctr-${name}-${this.seq++}`, `/var/run/netns/${this.o.prefix}-${name}`, { CNI_ARGS: `K8S_POD_NAMESPACE=x;K8S_POD_NAME=${name}` }) as Record<string, string>) };
    const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'skiff', type: 'skiff', podCIDRs: [this.o.podCIDR], mtu: 1400, bridge: 'skiff0', stateDir: join(this.dir, 'state'), agentSocket: join(this.dir, 'run', 'cni.sock') });
    return spawnSync('ip', ['netns', 'exec', this.node, 'sh', '-c', `${this.shim}${then}`], { input: conf, env, encoding: 'utf8', timeout: 20_000 });
  }

  /** One TCP connection attempt from a namespace; true when the server answered. */
  connects(fromNs: string, ip: string, port: number): boolean {
    const r = spawnSync('ip', ['netns', 'exec', fromNs, 'socat', '-T1', '-', `TCP4:${ip}:${port},connect-timeout=1`], { input: '', encoding: 'utf8', timeout: 5000 });
    return r.status === 0 && r.stdout.trim() !== '';
  }

  /** The agent stopped and its node state removed (agent --cleanup), the API server and the work directory gone. */
  async close(): Promise<void> {
    await this.stopAgent().catch(() => undefined);
    if (this.dir) spawnSync('ip', ['netns', 'exec', this.node, ...skiffCommand(), 'agent', '--cleanup', ...this.dirArgs(), ...(this.o.cleanupArgs ?? [])], { cwd: projectRoot, timeout: 30_000 });
    this.api?.kill('SIGKILL');
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
