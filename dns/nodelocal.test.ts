// Node-local serving in a fresh namespace: the Service IP on lo, the notrack table as literal text,
// queries answered at the Service IP with no conntrack entry, and cleanup removing both.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../common/self.js';
import { missing } from '../test/support/env.js';
import { addNetns, cleanupPrefix, inNs, linkNamespaces } from '../test/support/netns.js';
import type { NodeInfo } from '../common/types.js';
import { applyNodeLocal, cleanupNodeLocal, desiredNft, fallbackPeers, hostRunner, type Runner } from './nodelocal.js';

const NS = `skiffdns-nl${process.pid % 10000}`;
const run: Runner = (argv, input) => hostRunner(['ip', 'netns', 'exec', NS, ...argv], input);

describe('desiredNft', () => {
  it('exempts DNS to and from the Service IPs from conntrack', () => {
    expect(desiredNft(['10.96.0.10', 'fd00:96::a'], 53)).toContain('ip6 saddr { fd00:96::a } udp sport 53 notrack');
  });
  it('sends pods to a random fallback peer of the same family, and has no fallback without peers', () => {
    const text = desiredNft(['10.96.0.10', 'fd00:96::a'], 53, ['192.168.1.2', '192.168.1.3', 'fd00::2']);
    expect(text).toContain('ip daddr { 10.96.0.10 } meta l4proto { tcp, udp } th dport 53 dnat ip to numgen random mod 2 map { 0 : 192.168.1.2, 1 : 192.168.1.3 }');
    expect(text).toContain('ip6 daddr { fd00:96::a } meta l4proto { tcp, udp } th dport 53 dnat ip6 to fd00::2');
    expect(desiredNft(['10.96.0.10'], 53, [])).not.toContain('dnat');
  });
});

describe('fallbackPeers', () => {
  const node = (name: string, ip: string, ready = true): NodeInfo => ({ name, uid: name, podCIDRs: [], addresses: [{ type: 'InternalIP', address: ip }], labels: {}, annotations: {}, ready });
  const nodes = Array.from({ length: 20 }, (_, i) => node(`n${i}`, `10.0.0.${i}`));
  it('never picks this node or a node that is not Ready, and picks at most the limit', () => {
    const withSelfIP = [...nodes, node('twin', '10.0.0.0'), node('down', '10.0.1.1', false)];
    const p = fallbackPeers('n0', withSelfIP, 3);
    expect(p).toHaveLength(3);
    expect(p).not.toContain('10.0.0.0');
    expect(p).not.toContain('10.0.1.1');
    expect(fallbackPeers('n0', [node('n0', '10.0.0.0')])).toEqual([]);
  });
  it('is stable, differs between nodes, and moves little when a node joins', () => {
    const a = fallbackPeers('n0', nodes, 3);
    expect(fallbackPeers('n0', [...nodes].reverse(), 3)).toEqual(a);
    const others = new Set(nodes.slice(1, 8).map((n) => fallbackPeers(n.name, nodes, 3).join()));
    expect(others.size).toBeGreaterThan(3);
    const after = fallbackPeers('n0', [...nodes, node('n99', '10.0.0.99')], 3);
    expect(after.filter((x) => a.includes(x)).length).toBeGreaterThanOrEqual(2);
  });
});

describe.skipIf(missing('dns node-local', { root: true, tools: ['nft', 'ip', 'dig', 'conntrack'] }))('node-local in a namespace', () => {
  let server: ChildProcess | undefined;
  beforeAll(async () => {
    cleanupPrefix(NS);
    await addNetns(NS);
  });
  afterAll(async () => {
    server?.kill('SIGKILL');
    cleanupPrefix(NS);
  });

  it('adds the address and the table, idempotently', async () => {
    await applyNodeLocal(['10.96.0.10', '127.0.0.1'], 53, run);
    await applyNodeLocal(['10.96.0.10', '127.0.0.1'], 53, run);
    const addrs = (await inNs(NS, 'ip', ['-o', 'addr', 'show', 'dev', 'lo'])).stdout;
    expect(addrs.match(/10\.96\.0\.10\/32/g)).toHaveLength(1);
    const table = (await inNs(NS, 'nft', ['list', 'table', 'inet', 'skiff-dns'])).stdout;
    expect(table.trim().replace(/\s+/g, ' ')).toBe(
      [
        'table inet skiff-dns {',
        'chain prerouting { type filter hook prerouting priority raw; policy accept;',
        'ip daddr 10.96.0.10 udp dport 53 socket transparent 0 notrack',
        'ip daddr 10.96.0.10 udp dport 53 socket transparent 1 notrack',
        'ip daddr 10.96.0.10 tcp dport 53 socket transparent 0 notrack',
        'ip daddr 10.96.0.10 tcp dport 53 socket transparent 1 notrack }',
        'chain output { type filter hook output priority raw; policy accept;',
        'ip daddr 10.96.0.10 udp dport 53 notrack',
        'ip saddr 10.96.0.10 udp sport 53 notrack',
        'ip daddr 10.96.0.10 tcp dport 53 notrack',
        'ip saddr 10.96.0.10 tcp sport 53 notrack }',
        'chain fallback { type nat hook prerouting priority dstnat - 10; policy accept; } }',
      ].join(' '),
    );
    await cleanupNodeLocal(['10.96.0.10'], run);
    expect((await inNs(NS, 'ip', ['-o', 'addr', 'show', 'dev', 'lo'])).stdout).not.toContain('10.96.0.10');
    await expect(inNs(NS, 'nft', ['list', 'table', 'inet', 'skiff-dns'])).rejects.toThrow();
  });

  it('leaves an address another interface holds where it is', async () => {
    await inNs(NS, 'ip', ['link', 'add', 'skiffdns-d0', 'type', 'bridge']);
    await inNs(NS, 'ip', ['addr', 'add', '172.31.250.11/24', 'dev', 'skiffdns-d0']);
    await applyNodeLocal(['10.96.0.10', '172.31.250.11'], 53, run);
    const lo = (await inNs(NS, 'ip', ['-o', 'addr', 'show', 'dev', 'lo'])).stdout;
    expect(lo).toContain('10.96.0.10');
    expect(lo).not.toContain('172.31.250.11');
    await cleanupNodeLocal(['10.96.0.10', '172.31.250.11'], run);
    expect((await inNs(NS, 'ip', ['-o', 'addr', 'show', 'dev', 'skiffdns-d0'])).stdout).toContain('172.31.250.11');
    await inNs(NS, 'ip', ['link', 'del', 'skiffdns-d0']);
  });

  it('serves at the Service IP on port 53 without conntrack entries', async () => {
    // A rule that needs conntrack, so the namespace tracks connections at all.
    await inNs(NS, 'nft', ['-f', '-'], 'table inet skiffdns-ct {\n chain input {\n type filter hook input priority 0; policy accept;\n ct state invalid counter\n }\n}\n');
    const script = join(projectRoot, 'dns', 'testing', 'serve.ts');
    server = spawn('ip', ['netns', 'exec', NS, process.execPath, '--import', 'tsx', script, '10.96.0.10'], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('server did not start')), 30_000);
      server!.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('READY')) {
          clearTimeout(t);
          resolve();
        }
      });
      server!.once('exit', (c) => reject(new Error(`server exited ${c}`)));
    });
    const ask = async (extra: string[]) => (await inNs(NS, 'dig', ['@10.96.0.10', '+time=2', '+tries=1', '+short', ...extra, 'web.default.svc.cluster.local', 'A'])).stdout.trim();
    expect(await ask([])).toBe('10.96.0.20');
    expect(await ask(['+tcp'])).toBe('10.96.0.20');
    // Control: the same address on another port is tracked.
    await inNs(NS, 'dig', ['@10.96.0.10', '-p', '5353', '+time=1', '+tries=1', 'x', 'A']).catch(() => undefined);
    const ct = await inNs(NS, 'conntrack', ['-L']).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
    expect(ct.stdout).toMatch(/dport=5353\b/);
    expect(ct.stdout).not.toMatch(/dport=53\b/);
    server.kill('SIGTERM');
    await new Promise((r) => server!.once('exit', r));
    await cleanupNodeLocal(['10.96.0.10'], run);
    expect((await inNs(NS, 'ip', ['-o', 'addr', 'show', 'dev', 'lo'])).stdout).not.toContain('10.96.0.10');
  });
});

// Two "nodes" and a pod: the pod's node A has the DNS Service IP on lo and the skiff-dns table
// with node B as fallback peer; B serves DNS on its own address. While A's listener runs the
// query is answered locally without a conntrack entry; once it is gone, B answers through the
// fallback DNAT; with no peer the query is refused, as before this fallback existed.
const FB = `skiffg-nl${process.pid % 10000}`;
const [A, B, POD] = [`${FB}-a`, `${FB}-b`, `${FB}-p`];

function serve(ns: string, ips: string[]): Promise<ChildProcess> {
  const script = join(projectRoot, 'dns', 'testing', 'serve.ts');
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', script, ...ips], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('server did not start')), 30_000);
    p.stdout!.on('data', (d: Buffer) => {
      if (!d.toString().includes('READY')) return;
      clearTimeout(t);
      resolve(p);
    });
    p.once('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
}

describe.skipIf(missing('dns fallback', { root: true, tools: ['nft', 'ip', 'dig', 'conntrack'] }))('fallback to another node while the local listener is gone', () => {
  const servers: ChildProcess[] = [];
  const runA: Runner = (argv, input) => hostRunner(['ip', 'netns', 'exec', A, ...argv], input);
  beforeAll(async () => {
    cleanupPrefix(FB);
    for (const ns of [A, B, POD]) await addNetns(ns);
    await linkNamespaces({ ns: POD, ifname: 'eth0', cidr: '10.244.0.2/24' }, { ns: A, ifname: 'skiffg-pod', cidr: '10.244.0.1/24' });
    await linkNamespaces({ ns: A, ifname: 'skiffg-ab', cidr: '192.168.239.1/30' }, { ns: B, ifname: 'skiffg-ba', cidr: '192.168.239.2/30' });
    await inNs(POD, 'ip', ['route', 'add', 'default', 'via', '10.244.0.1']);
    // What the overlay does in a cluster: B reaches A's pods.
    await inNs(B, 'ip', ['route', 'add', '10.244.0.0/24', 'via', '192.168.239.1']);
    await inNs(A, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    servers.push(await serve(B, ['10.96.0.10', '192.168.239.2']));
  }, 90_000);
  afterAll(() => {
    for (const s of servers) s.kill('SIGKILL');
    cleanupPrefix(FB);
  });

  const ask = async (): Promise<string> => {
    const r = await inNs(POD, 'dig', ['@10.96.0.10', '+time=2', '+tries=1', '+short', 'web.default.svc.cluster.local', 'A']).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
    return r.stdout.trim();
  };
  const tracked = async (): Promise<string> => (await inNs(A, 'conntrack', ['-L', '-p', 'udp']).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }))).stdout;

  it('answers locally untracked, then from the peer, and is refused without a peer', async () => {
    const local = await serve(A, ['10.96.0.10']);
    servers.push(local);
    await applyNodeLocal(['10.96.0.10'], 53, runA, ['192.168.239.2']);
    expect(await ask()).toBe('10.96.0.20');
    expect(await tracked()).not.toMatch(/dport=53\b/);

    local.kill('SIGKILL');
    await new Promise((r) => local.once('exit', r));
    expect(await ask()).toBe('10.96.0.20');
    // The query was tracked and DNATed: its reply comes from B's address.
    expect(await tracked()).toMatch(/dst=10\.96\.0\.10 sport=\d+ dport=53 .*src=192\.168\.239\.2 dst=10\.244\.0\.2 sport=53/);

    await applyNodeLocal(['10.96.0.10'], 53, runA, []);
    expect(await ask()).not.toContain('10.96.0.20');
  }, 90_000);
});
