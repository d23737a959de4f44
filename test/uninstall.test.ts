// The uninstall path: an agent runs on a node (a namespace with its own API server on loopback),
// sets up its overlay, proxy, DNS and policy, stops, and `skiff agent --cleanup` must leave nothing of
// skiff's behind: no link, no nft table, no address, no file, no Node annotation.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot, skiffCommand } from '../common/self.js';
import { missing } from './support/env.js';
import { addNetns, cleanupPrefix, inNs, linkNamespaces } from './support/netns.js';

const NS = 'skiffun-node';
const PEER = 'skiffun-peer';
const API = 'http://127.0.0.1:16444';
const skip = missing('uninstall', { root: true, tools: ['ip', 'nft', 'curl'] });

function startInNs(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn('ip', ['netns', 'exec', NS, ...args], { cwd: projectRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 45_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const curl = async (path: string, ...extra: string[]): Promise<string> => (await inNs(NS, 'curl', ['-sf', ...extra, `${API}${path}`])).stdout;

async function leftovers(dir: string): Promise<string[]> {
  const found: string[] = [];
  const links = JSON.parse((await inNs(NS, 'ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[];
  found.push(...links.filter((l) => l.ifname.startsWith('skiff') && l.ifname !== 'skiffun-eth').map((l) => `link ${l.ifname}`));
  const tables = (await inNs(NS, 'nft', ['list', 'tables'])).stdout.split('\n').filter((t) => t.includes('skiff'));
  found.push(...tables.map((t) => `nft ${t}`));
  const lo = (await inNs(NS, 'ip', ['-o', 'addr', 'show', 'dev', 'lo'])).stdout;
  if (lo.includes('10.96.0.10')) found.push('address 10.96.0.10 on lo');
  for (const p of ['state', 'run', 'net.d/10-skiff.conflist', 'bin/skiff']) if (existsSync(join(dir, p))) found.push(`file ${p}`);
  const node = JSON.parse(await curl('/api/v1/nodes/n1')) as { metadata: { annotations?: Record<string, string> } };
  found.push(...Object.keys(node.metadata.annotations ?? {}).filter((k) => k.startsWith('skiff.io/')).map((k) => `annotation ${k}`));
  return found;
}

describe.skipIf(skip)('uninstall (root)', () => {
  let api: ChildProcess | undefined;
  let agent: ChildProcess | undefined;
  let dir = '';
  let agentArgs: string[] = [];

  beforeAll(async () => {
    cleanupPrefix('skiffun');
    dir = mkdtempSync(join(tmpdir(), 'skiffun-'));
    mkdirSync(join(dir, 'net.d'));
    await addNetns(NS);
    await addNetns(PEER);
    // An underlay interface, so the overlay has a node IP and an MTU to derive from.
    await linkNamespaces({ ns: NS, ifname: 'skiffun-eth', cidr: '172.31.240.11/24' }, { ns: PEER, ifname: 'skiffun-ul', cidr: '172.31.240.1/24' });
    api = startInNs([...skiffCommand().slice(0, -1), join(projectRoot, 'sandbox/apiserver/index.ts'), '--port', '16444', '--kubeconfig-out', join(dir, 'kubeconfig')]);
    await waitFor('the API server', async () => (await curl('/healthz')) === 'ok');
    await inNs(NS, 'curl', ['-sf', '-X', 'POST', '-H', 'content-type: application/json', `${API}/api/v1/nodes`, '-d',
      JSON.stringify({ metadata: { name: 'n1' }, spec: { podCIDR: '10.244.7.0/24', podCIDRs: ['10.244.7.0/24'] }, status: { addresses: [{ type: 'InternalIP', address: '172.31.240.11' }], conditions: [{ type: 'Ready', status: 'True' }] } })]);
    agentArgs = [...skiffCommand(), 'agent', '--kubeconfig', join(dir, 'kubeconfig'), '--node-name', 'n1', '--state-dir', join(dir, 'state'), '--run-dir', join(dir, 'run'),
      '--set', `cni.confDir=${join(dir, 'net.d')}`, '--set', `cni.binDir=${join(dir, 'bin')}`, '--set', 'dns.healthPort=0', '--set', 'dns.readyPort=0', '--log-level', 'warn'];
  });

  afterAll(() => {
    agent?.kill('SIGKILL');
    api?.kill('SIGKILL');
    cleanupPrefix('skiffun');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('removes every link, table, address, file and annotation the agent made', async () => {
    agent = startInNs(agentArgs);
    let log = '';
    agent.stderr!.on('data', (d) => (log += d));
    await waitFor('the agent to be ready', async () => (await inNs(NS, 'curl', ['-sf', 'http://127.0.0.1:10256/readyz'])).stdout.includes('"ok":true')).catch((e: Error) => {
      throw new Error(`${e.message}\nagent log:\n${log.slice(-3000)}`);
    });
    await waitFor('the node annotations', async () => (await curl('/api/v1/nodes/n1')).includes('skiff.io/vtep-mac'));
    const before = await leftovers(dir);
    for (const thing of ['link skiff0', 'link skiff-vx', 'address 10.96.0.10 on lo', 'file net.d/10-skiff.conflist', 'annotation skiff.io/vtep-mac']) expect(before).toContain(thing);
    expect(before.some((t) => t.startsWith('nft'))).toBe(true);
    expect(before).toContain('nft table inet skiff-policy');

    agent.kill('SIGTERM');
    await new Promise((r) => agent!.once('exit', r));
    const cleanup = spawnSync('ip', ['netns', 'exec', NS, ...agentArgs, '--cleanup'], { cwd: projectRoot, encoding: 'utf8' });
    expect(cleanup.status, cleanup.stderr).toBe(0);
    expect(cleanup.stderr).not.toMatch(/"level":50/);
    expect(await leftovers(dir)).toEqual([]);
  }, 120_000);
});
