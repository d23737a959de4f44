// Node-local serving in a fresh namespace: the Service IP on lo, the notrack table as literal text,
// queries answered at the Service IP with no conntrack entry, and cleanup removing both.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../common/self.js';
import { missing } from '../test/support/env.js';
import { addNetns, cleanupPrefix, inNs } from '../test/support/netns.js';
import { applyNodeLocal, cleanupNodeLocal, desiredNft, hostRunner, type Runner } from './nodelocal.js';

const NS = `skiffdns-nl${process.pid % 10000}`;
const run: Runner = (argv, input) => hostRunner(['ip', 'netns', 'exec', NS, ...argv], input);

describe('desiredNft', () => {
  it('exempts DNS to and from the Service IPs from conntrack', () => {
    expect(desiredNft(['10.96.0.10', 'fd00:96::a'], 53)).toContain('ip6 saddr { fd00:96::a } udp sport 53 notrack');
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
        'ip daddr 10.96.0.10 udp dport 53 notrack',
        'ip daddr 10.96.0.10 tcp dport 53 notrack }',
        'chain output { type filter hook output priority raw; policy accept;',
        'ip daddr 10.96.0.10 udp dport 53 notrack',
        'ip saddr 10.96.0.10 udp sport 53 notrack',
        'ip daddr 10.96.0.10 tcp dport 53 notrack',
        'ip saddr 10.96.0.10 tcp sport 53 notrack } }',
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
