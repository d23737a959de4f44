// The plugin against a real kernel: one node namespace running the agent's CNI socket, pods as
// namespaces, every request through the C shim exactly as a runtime would make it.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../support/env.js';
import { addNetns, cleanupPrefix, inNs, sh } from '../support/netns.js';
import { skiffCommand } from '../../common/self.js';
import { buildShim, cniExec, NodeAgent, pluginEnv, tempDir, whoami, whoamiServer } from './support/harness.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { formatIP, parseIP } from '../../cni/ipam/ipnet.js';

const P = 'skiffcni-pl';
const canon = (ip: string): string => {
  const p = parseIP(ip);
  return formatIP(p.value, p.family);
};
const NODE = `${P}-node`;

describe.skipIf(missing('cni plugin', { root: true, tools: ['ip', 'nsenter', 'cc', 'bridge', 'socat', 'tc', 'iptables'] }))('cni plugin (root)', () => {
  let dir: string;
  let shim: string;
  let agent: NodeAgent;
  let socket: string;
  let stateDir: string;
  let seq = 0;
  const servers: ChildProcess[] = [];
  const conf = (extra: Record<string, unknown> = {}) =>
    JSON.stringify({ cniVersion: '1.1.0', name: 'skiff', type: 'skiff', podCIDRs: ['10.88.1.0/24', 'fd88:1::/64'], mtu: 1400, bridge: 'skiff0', stateDir, agentSocket: socket, ...extra });
  const call = (env: Record<string, string | undefined>, stdin = conf()) => cniExec(NODE, [shim], env, stdin);
  const newPod = async (): Promise<{ id: string; ns: string; path: string }> => {
    const n = seq++;
    const ns = `${P}-p${n}`;
    await addNetns(ns);
    return { id: `ctr${n}x${Date.now()}`, ns, path: `/var/run/netns/${ns}` };
  };
  const allocated = () => readdirSync(join(stateDir, 'ipam', 'skiff')).filter((n) => /^[0-9a-f.:]+$/.test(n) && n.includes('.') || n.includes(':'));

  beforeAll(async () => {
    cleanupPrefix(P);
    dir = tempDir('plugin');
    shim = buildShim(dir);
    socket = join(dir, 'cni.sock');
    stateDir = join(dir, 'state');
    await addNetns(NODE);
    agent = new NodeAgent(NODE, { mode: 'server', socketPath: socket });
    await agent.waitFor('ready');
  });

  afterAll(async () => {
    agent?.kill();
    for (const s of servers) s.kill('SIGKILL');
    cleanupPrefix(P);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ADD wires a dual-stack pod to the bridge and answers in the requested version', async () => {
    const a = await newPod();
    const r = await call(pluginEnv('ADD', a.id, a.path, { CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=a' }));
    expect(r.code, r.raw).toBe(0);
    const ips = r.out.ips as { address: string; gateway: string; interface: number }[];
    expect(ips.map((i) => i.address)).toEqual([expect.stringMatching(/^10\.88\.1\.\d+\/24$/), expect.stringMatching(/^fd88:1::[0-9a-f]+\/64$/)]);
    const ifs = r.out.interfaces as { name: string; sandbox?: string; mtu?: number }[];
    expect(ifs[ips[0]!.interface]).toMatchObject({ name: 'eth0', sandbox: a.path, mtu: 1400 });
    const link = JSON.parse((await inNs(a.ns, 'ip', ['-j', 'link', 'show', 'eth0'])).stdout)[0];
    expect(link.mtu).toBe(1400);
    const host = JSON.parse((await inNs(NODE, 'ip', ['-j', '-d', 'link', 'show', ifs[1]!.name])).stdout)[0];
    expect(host.master).toBe('skiff0');
    expect(host.linkinfo.info_slave_data.hairpin).toBe(true);
    // The node answers the pod through the gateway, over both families, and sees the pod address.
    servers.push(whoamiServer(NODE, 7101), whoamiServer(NODE, 7102, true));
    expect(await whoami(a.ns, '10.88.1.1', 7101)).toBe(ips[0]!.address.split('/')[0]);
    expect(canon(await whoami(a.ns, 'fd88:1::1', 7102))).toBe(ips[1]!.address.split('/')[0]);
    const old = await call(pluginEnv('ADD', (await newPod()).id, (await newPod()).path), conf({ cniVersion: '0.3.1' }));
    expect((old.out.ips as { version: string }[])[0]!.version).toBe('4');
  });

  it('ADD after another plugin keeps its result: interfaces, addresses, routes and dns, with indexes shifted', async () => {
    const a = await newPod();
    // What a plugin earlier in the chain (say, one adding a second interface) would have returned.
    const prevResult = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'net1', sandbox: a.path }],
      ips: [{ address: '192.0.2.7/24', interface: 0 }],
      routes: [{ dst: '192.0.2.0/24' }],
      dns: { nameservers: ['192.0.2.53'] },
    };
    const r = await call(pluginEnv('ADD', a.id, a.path), conf({ prevResult }));
    expect(r.code, r.raw).toBe(0);
    const ifs = r.out.interfaces as { name: string }[];
    const ips = r.out.ips as { address: string; interface: number }[];
    expect(ifs[0]).toEqual({ name: 'net1', sandbox: a.path });
    expect(ips[0]).toEqual({ address: '192.0.2.7/24', interface: 0 });
    // skiff's own entries follow, pointing at its own pod interface.
    expect(ifs[ips[1]!.interface]).toMatchObject({ name: 'eth0', sandbox: a.path });
    expect(ips[1]!.address).toMatch(/^10\.88\.1\.\d+\/24$/);
    expect(r.out.routes).toEqual(expect.arrayContaining([{ dst: '192.0.2.0/24' }]));
    expect(r.out.dns).toEqual({ nameservers: ['192.0.2.53'] });
  });

  it('ADD refuses an interface that already exists and never gives a second address', async () => {
    const a = await newPod();
    const first = await call(pluginEnv('ADD', a.id, a.path));
    expect(first.code).toBe(0);
    const before = allocated().length;
    const again = await call(pluginEnv('ADD', a.id, a.path));
    expect(again.code).not.toBe(0);
    expect(again.out.msg).toMatch(/already exists/);
    const other = await call(pluginEnv('ADD', `${a.id}b`, a.path));
    expect(other.code).not.toBe(0);
    expect(other.out.msg).toMatch(/eth0 already exists/);
    expect(allocated().length).toBe(before);
    // The first attachment still holds its address.
    expect((await call(pluginEnv('CHECK', a.id, a.path), conf({ prevResult: first.out }))).code).toBe(0);
  });

  it('pods on one bridge reach each other', async () => {
    const a = await newPod();
    const b = await newPod();
    const ra = await call(pluginEnv('ADD', a.id, a.path));
    const rb = await call(pluginEnv('ADD', b.id, b.path));
    const ipB = (rb.out.ips as { address: string }[])[0]!.address.split('/')[0]!;
    servers.push(whoamiServer(b.ns, 7103));
    const ipA = (ra.out.ips as { address: string }[])[0]!.address.split('/')[0]!;
    expect(await whoami(a.ns, ipB, 7103)).toBe(ipA);
  });

  it('CHECK passes on a healthy pod and fails when its address is gone', async () => {
    const a = await newPod();
    const r = await call(pluginEnv('ADD', a.id, a.path));
    expect((await call(pluginEnv('CHECK', a.id, a.path), conf({ prevResult: r.out }))).code).toBe(0);
    const addr = (r.out.ips as { address: string }[])[0]!.address;
    await inNs(a.ns, 'ip', ['addr', 'del', addr, 'dev', 'eth0']);
    const bad = await call(pluginEnv('CHECK', a.id, a.path), conf({ prevResult: r.out }));
    expect(bad.code).not.toBe(0);
    expect(bad.out.msg).toMatch(/lacks address/);
    expect((await call(pluginEnv('CHECK', a.id, a.path))).out.code).toBe(7);
  });

  it('DEL is idempotent: missing netns, interface and address all succeed, and the address is freed', async () => {
    const a = await newPod();
    const r = await call(pluginEnv('ADD', a.id, a.path));
    const ip = (r.out.ips as { address: string }[])[0]!.address.split('/')[0]!;
    expect(existsSync(join(stateDir, 'ipam', 'skiff', ip))).toBe(true);
    expect((await call(pluginEnv('DEL', a.id, a.path))).code).toBe(0);
    expect(existsSync(join(stateDir, 'ipam', 'skiff', ip))).toBe(false);
    expect((await inNs(a.ns, 'ip', ['-j', 'link', 'show'])).stdout).not.toContain('eth0');
    expect((await call(pluginEnv('DEL', a.id, a.path))).code).toBe(0);
    await sh('ip', ['netns', 'del', a.ns]);
    expect((await call(pluginEnv('DEL', a.id, a.path))).code).toBe(0);
    expect((await call(pluginEnv('DEL', a.id, undefined))).code).toBe(0);
  });

  it('GC releases every address and interface not in the valid attachments', async () => {
    const keep = await newPod();
    const drop = await newPod();
    const rk = await call(pluginEnv('ADD', keep.id, keep.path));
    const rd = await call(pluginEnv('ADD', drop.id, drop.path));
    const dropIf = (rd.out.interfaces as { name: string }[])[1]!.name;
    const dropIP = (rd.out.ips as { address: string }[])[0]!.address.split('/')[0]!;
    const valid = (await Promise.resolve(readdirSync(join(stateDir, 'ipam', 'skiff'))))
      .filter((n) => n.startsWith('10.'))
      .map((n) => n)
      .filter((n) => n !== dropIP);
    expect(valid.length).toBeGreaterThan(0);
    // Every other test's live attachments are kept valid: only `drop` is unknown to the runtime.
    const { readFileSync } = await import('node:fs');
    const attachments = valid.map((n) => {
      const m = JSON.parse(readFileSync(join(stateDir, 'ipam', 'skiff', n), 'utf8')) as { containerID: string; ifname: string };
      return { containerID: m.containerID, ifname: m.ifname };
    });
    const gc = await call({ CNI_COMMAND: 'GC', CNI_PATH: '/usr/lib/cni' }, conf({ 'cni.dev/valid-attachments': attachments }));
    expect(gc.code, gc.raw).toBe(0);
    expect(existsSync(join(stateDir, 'ipam', 'skiff', dropIP))).toBe(false);
    await expect(inNs(NODE, 'ip', ['link', 'show', dropIf])).rejects.toThrow();
    const keepIP = (rk.out.ips as { address: string }[])[0]!.address.split('/')[0]!;
    expect(existsSync(join(stateDir, 'ipam', 'skiff', keepIP))).toBe(true);
  });

  it('50 parallel ADDs get 50 distinct addresses', async () => {
    const pods = await Promise.all(Array.from({ length: 50 }, () => newPod()));
    const rs = await Promise.all(pods.map((p) => call(pluginEnv('ADD', p.id, p.path))));
    for (const r of rs) expect(r.code, r.raw).toBe(0);
    const ips = rs.map((r) => (r.out.ips as { address: string }[])[0]!.address);
    expect(new Set(ips).size).toBe(50);
    const dels = await Promise.all(pods.map((p) => call(pluginEnv('DEL', p.id, p.path))));
    for (const d of dels) expect(d.code).toBe(0);
  }, 60_000);

  it('VERSION, STATUS and malformed input answer with the spec codes through the shim', async () => {
    const v = await call({ CNI_COMMAND: 'VERSION' }, JSON.stringify({ cniVersion: '1.0.0', agentSocket: socket }));
    expect(v.out).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    expect((await call({ CNI_COMMAND: 'STATUS', CNI_PATH: '/usr/lib/cni' })).code).toBe(0);
    const a = await newPod();
    const cases: [Record<string, string | undefined>, string, number][] = [
      [{ ...pluginEnv('ADD', a.id, a.path), CNI_COMMAND: undefined }, conf(), 4],
      [pluginEnv('ADD', '../etc', a.path), conf(), 4],
      [{ ...pluginEnv('ADD', a.id, a.path), CNI_IFNAME: 'a/b' }, conf(), 4],
      [pluginEnv('ADD', a.id, a.path, { SKIFF_CNI_SOCKET: socket }), 'not json', 6],
      [pluginEnv('ADD', a.id, a.path), conf({ cniVersion: '0.1.0' }), 1],
      [pluginEnv('ADD', a.id, a.path), conf({ podCIDRs: 'x' }), 7],
      [pluginEnv('ADD', a.id, '/var/run/netns/skiffcni-nope'), conf(), 3],
    ];
    for (const [env, stdin, code] of cases) {
      const r = await call(env, stdin);
      expect(r.code, r.raw).not.toBe(0);
      expect(r.out.code, r.raw).toBe(code);
      expect(typeof r.out.msg).toBe('string');
    }
  });

  it('without an agent: ADD says try again later, DEL succeeds, STATUS is not available', async () => {
    const a = await newPod();
    const c = conf({ agentSocket: join(dir, 'nobody.sock') });
    const add = await call(pluginEnv('ADD', a.id, a.path), c);
    expect(add.out.code).toBe(11);
    expect((await call(pluginEnv('DEL', a.id, a.path), c)).code).toBe(0);
    expect((await call({ CNI_COMMAND: 'STATUS', CNI_PATH: '/usr/lib/cni' }, c)).out.code).toBe(50);
    // Whatever stdin holds, the error is valid JSON (call() parses it) and names the decoded path.
    const odd = await call(pluginEnv('ADD', a.id, a.path), conf({ cniVersion: '1.0.0', agentSocket: join(dir, 'no"bo\\dy.sock') }));
    expect(odd.out).toMatchObject({ code: 11, cniVersion: '1.0.0' });
    expect(odd.out.details).toBe(join(dir, 'no"bo\\dy.sock'));
    const v = await call({ CNI_COMMAND: 'VERSION' }, JSON.stringify({ cniVersion: '0.4.0', agentSocket: join(dir, 'nobody.sock') }));
    expect(v.out).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('the Node fallback (skiff cni) serves the same requests without an agent (iproute2 path)', async () => {
    const a = await newPod();
    const argv = [...skiffCommand(), 'cni'];
    const r = await cniExec(NODE, argv, pluginEnv('ADD', a.id, a.path, { SKIFF_CNI_NETLINK: 'off' }), conf({ agentSocket: undefined }));
    expect(r.code, r.raw).toBe(0);
    const ip = (r.out.ips as { address: string }[])[0]!.address.split('/')[0]!;
    servers.push(whoamiServer(NODE, 7104));
    expect(await whoami(a.ns, '10.88.1.1', 7104)).toBe(ip);
    const other = await cniExec(NODE, argv, pluginEnv('ADD', `${a.id}x`, a.path, { SKIFF_CNI_NETLINK: 'off' }), conf());
    expect(other.out.msg).toMatch(/eth0 already exists/);
    expect((await cniExec(NODE, argv, pluginEnv('DEL', a.id, a.path, { SKIFF_CNI_NETLINK: 'off' }), conf())).code).toBe(0);
    expect((await inNs(a.ns, 'ip', ['-j', 'link', 'show'])).stdout).not.toContain('eth0');
    expect(existsSync(join(stateDir, 'ipam', 'skiff', ip))).toBe(false);
    const bad = await cniExec(NODE, argv, { CNI_COMMAND: 'ADD' }, conf());
    expect(bad.out.code).toBe(4);
  }, 30_000);

  it('chains Debian portmap (hostPort) and bandwidth after skiff in one conflist', async () => {
    const a = await newPod();
    const b = await newPod();
    const base = { cniVersion: '1.0.0', name: 'skiff' };
    const skiffConf = conf({ cniVersion: '1.0.0' });
    const portmap = { ...base, type: 'portmap', capabilities: { portMappings: true }, snat: true, runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }] } };
    const bandwidth = { ...base, type: 'bandwidth', capabilities: { bandwidth: true }, runtimeConfig: { bandwidth: { ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 8_000_000, egressBurst: 80_000 } } };
    // What a runtime does: each plugin gets the previous one's result as prevResult.
    const r1 = await call(pluginEnv('ADD', a.id, a.path), skiffConf);
    expect(r1.code, r1.raw).toBe(0);
    const r2 = await cniExec(NODE, ['/usr/lib/cni/portmap'], pluginEnv('ADD', a.id, a.path), JSON.stringify({ ...portmap, prevResult: r1.out }));
    expect(r2.code, r2.raw).toBe(0);
    const r3 = await cniExec(NODE, ['/usr/lib/cni/bandwidth'], pluginEnv('ADD', a.id, a.path), JSON.stringify({ ...bandwidth, prevResult: r2.out }));
    expect(r3.code, r3.raw).toBe(0);
    expect((r3.out.ips as { address: string }[])[0]!.address).toBe((r1.out.ips as { address: string }[])[0]!.address);
    const hostIf = (r1.out.interfaces as { name: string }[])[1]!.name;
    expect((await inNs(NODE, 'tc', ['qdisc', 'show', 'dev', hostIf])).stdout).toMatch(/tbf/);
    // hostPort: another pod reaches pod a's port 80 through the node address.
    await call(pluginEnv('ADD', b.id, b.path), skiffConf);
    servers.push(whoamiServer(a.ns, 80));
    expect(await whoami(b.ns, '10.88.1.1', 18080)).toMatch(/^10\.88\.1\.\d+$/);
    // DEL runs the chain in reverse.
    for (const [argv, c] of [
      [['/usr/lib/cni/bandwidth'], JSON.stringify({ ...bandwidth, prevResult: r3.out })],
      [['/usr/lib/cni/portmap'], JSON.stringify({ ...portmap, prevResult: r3.out })],
      [[shim], JSON.stringify({ ...JSON.parse(skiffConf), prevResult: r3.out })],
    ] as const) {
      const d = await cniExec(NODE, argv, pluginEnv('DEL', a.id, a.path), c);
      expect(d.code, d.raw).toBe(0);
    }
    await expect(inNs(NODE, 'ip', ['link', 'show', hostIf])).rejects.toThrow();
  }, 30_000);

  it('accepts a namespace given as /proc/<pid>/ns/net (entered with nsenter)', async () => {
    const a = await newPod();
    const holder = spawn('ip', ['netns', 'exec', a.ns, 'sleep', '60'], { stdio: 'ignore' });
    servers.push(holder);
    const path = `/proc/${holder.pid}/ns/net`;
    await new Promise((r) => setTimeout(r, 200));
    const r = await call(pluginEnv('ADD', a.id, path));
    expect(r.code, r.raw).toBe(0);
    expect((await call(pluginEnv('CHECK', a.id, path), conf({ prevResult: r.out }))).code).toBe(0);
    expect((await inNs(a.ns, 'ip', ['-j', 'addr', 'show', 'eth0'])).stdout).toContain((r.out.ips as { address: string }[])[0]!.address.split('/')[0]);
    expect((await call(pluginEnv('DEL', a.id, path))).code).toBe(0);
  });
});
