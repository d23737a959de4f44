// Three "nodes" (namespaces on one underlay switch, MTU 1400) each running the real cni component
// over a MemoryCache, an "outside" host on the same switch, and pods added through the C shim,
// alone or as the runtime runs the whole conflist the agent wrote (skiff, portmap, bandwidth).
// The harness plays the API server: annotation patches from one agent reach every agent's cache.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatIP, parseIP } from '../../cni/ipam/ipnet.js';
import { missing } from '../support/env.js';
import { addNetns, cleanupPrefix, inNs, sh } from '../support/netns.js';
import { buildShim, cniExec, NodeAgent, pluginEnv, SharedNodes, stream, tempDir, udpDF, until, whoami, whoamiServer, type CniCall } from './support/harness.js';

const P = 'skiffcni-ov';
const SW = `${P}-sw`;
const OUT = `${P}-out`;
const UNDERLAY_MTU = 1400;
const NODES = [
  { name: 'n1', ns: `${P}-n1`, ip: '192.168.77.1', podCIDR: '10.99.1.0/24', podCIDR6: 'fd99:1::/64' },
  { name: 'n2', ns: `${P}-n2`, ip: '192.168.77.2', podCIDR: '10.99.2.0/24', podCIDR6: 'fd99:2::/64' },
  { name: 'n3', ns: `${P}-n3`, ip: '192.168.77.3', podCIDR: '10.99.3.0/24', podCIDR6: 'fd99:3::/64' },
] as const;
type TestNode = (typeof NODES)[number];

const fdb = (ns: string) => execFileSync('ip', ['netns', 'exec', ns, 'bridge', 'fdb', 'show', 'dev', 'skiff-vx'], { encoding: 'utf8' });
const neigh = (ns: string) => execFileSync('ip', ['-n', ns, 'neigh', 'show', 'dev', 'skiff-vx'], { encoding: 'utf8' });
const routes = (ns: string) => execFileSync('ip', ['-n', ns, 'route', 'show', 'dev', 'skiff-vx'], { encoding: 'utf8' });
const txBytes = (ns: string, dev: string): number => (JSON.parse(execFileSync('ip', ['-n', ns, '-s', '-j', 'link', 'show', dev], { encoding: 'utf8' })) as { stats64: { tx: { bytes: number } } }[])[0]!.stats64.tx.bytes;
const vtepMac = (ns: string) => (JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show', 'skiff-vx'], { encoding: 'utf8' })) as { address: string }[])[0]!.address;

describe.skipIf(missing('cni overlay', { root: true, tools: ['ip', 'nsenter', 'cc', 'bridge', 'nft', 'socat'] }))('cni overlay (root)', () => {
  let dir: string;
  let shim: string;
  const shared = new SharedNodes();
  const agents = shared.agents;
  const nodeObjs = shared.nodes;
  const servers: ChildProcess[] = [];
  const pods: { node: string; ns: string; path: string; id: string; ip: string; ip6: string }[] = [];

  const cfg = (n: TestNode) => ({
    nodeName: n.name,
    clusterCIDRs: ['10.99.0.0/16', 'fd99::/48'],
    stateDir: join(dir, n.name, 'state'),
    runDir: join(dir, n.name, 'run'),
    cni: { confDir: join(dir, n.name, 'net.d'), binDir: join(dir, 'bin') },
  });
  const startAgent = (n: TestNode): NodeAgent =>
    shared.attach(n.name, new NodeAgent(n.ns, { mode: 'agent', socketPath: join(dir, n.name, 'run', 'cni.sock'), config: cfg(n) }));
  const pluginConf = (node: string): string => {
    const list = JSON.parse(readFileSync(join(dir, node, 'net.d', '10-skiff.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: object[] };
    return JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] });
  };
  const addPod = async (node: TestNode, i: number) => {
    const ns = `${P}-${node.name}p${i}`;
    await addNetns(ns);
    const path = `/var/run/netns/${ns}`;
    const id = `ov${node.name}p${i}`;
    const r = await cniExec(node.ns, [shim], pluginEnv('ADD', id, path, { CNI_ARGS: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${id}` }), pluginConf(node.name));
    expect(r.code, r.raw).toBe(0);
    const ips = (r.out.ips as { address: string }[]).map((i) => i.address.split('/')[0]!);
    const pod = { node: node.name, ns, path, id, ip: ips[0]!, ip6: ips[1]! };
    pods.push(pod);
    return pod;
  };

  beforeAll(async () => {
    cleanupPrefix(P);
    dir = tempDir('overlay');
    shim = buildShim(dir);
    // The chained plugins the agent probes, in a bin dir of our own (the agent may install into it).
    mkdirSync(join(dir, 'bin'));
    for (const p of ['portmap', 'bandwidth']) symlinkSync(`/usr/lib/cni/${p}`, join(dir, 'bin', p));
    await addNetns(SW);
    await inNs(SW, 'ip', ['link', 'add', 'sw0', 'mtu', String(UNDERLAY_MTU), 'type', 'bridge']);
    await inNs(SW, 'ip', ['link', 'set', 'sw0', 'up']);
    const hosts = [...NODES.map((n) => ({ ns: n.ns, ip: n.ip })), { ns: OUT, ip: '192.168.77.100' }];
    for (const [i, h] of hosts.entries()) {
      await addNetns(h.ns);
      await sh('ip', ['link', 'add', 'eth0', 'netns', h.ns, 'mtu', String(UNDERLAY_MTU), 'type', 'veth', 'peer', 'name', `port${i}`, 'netns', SW, 'mtu', String(UNDERLAY_MTU)]);
      await inNs(SW, 'ip', ['link', 'set', `port${i}`, 'master', 'sw0', 'up']);
      await inNs(h.ns, 'ip', ['addr', 'add', `${h.ip}/24`, 'dev', 'eth0']);
      await inNs(h.ns, 'ip', ['link', 'set', 'eth0', 'up']);
    }
    for (const n of NODES) {
      mkdirSync(join(dir, n.name), { recursive: true });
      nodeObjs.set(n.name, { name: n.name, uid: `uid-${n.name}`, podCIDRs: [n.podCIDR, n.podCIDR6], addresses: [{ type: 'InternalIP', address: n.ip }], labels: {}, annotations: {}, ready: true });
    }
    for (const n of NODES) startAgent(n);
    await Promise.all([...agents.values()].map((a) => a.waitFor('ready')));
    // Each node has the others' VTEPs once the annotations went round.
    await until('peer entries', () => NODES.every((n) => routes(n.ns).split('\n').filter((l) => l.includes(' via ')).length === NODES.length - 1) || undefined);
  }, 90_000);

  afterAll(async () => {
    for (const s of servers) s.kill('SIGKILL');
    for (const a of agents.values()) a.kill();
    cleanupPrefix(P);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('publishes the VTEP MAC and node IP, derives the MTU from the underlay, writes the conflist', () => {
    for (const n of NODES) {
      const o = nodeObjs.get(n.name)!;
      expect(o.annotations['skiff.io/vtep-mac']).toBe(vtepMac(n.ns));
      expect(o.annotations['skiff.io/public-ip']).toBe(n.ip);
      const link = JSON.parse(execFileSync('ip', ['-n', n.ns, '-j', '-d', 'link', 'show', 'skiff-vx'], { encoding: 'utf8' }))[0];
      expect(link.mtu).toBe(UNDERLAY_MTU - 50);
      expect(link.linkinfo.info_data.id).toBe(1);
      const list = JSON.parse(readFileSync(join(dir, n.name, 'net.d', '10-skiff.conflist'), 'utf8'));
      expect(list.plugins[0]).toMatchObject({ type: 'skiff', podCIDRs: [n.podCIDR, n.podCIDR6], mtu: UNDERLAY_MTU - 50 });
      expect(list.plugins.map((p: { type: string }) => p.type)).toEqual(['skiff', 'portmap', 'bandwidth']);
      expect(list.cniVersion).toBe('1.0.0'); // Debian's portmap/bandwidth speak up to 1.0.0
    }
    const other = NODES[1];
    expect(routes(NODES[0].ns)).toContain(`${other.podCIDR} via 10.99.2.0 onlink`);
    expect(fdb(NODES[0].ns)).toContain(`${vtepMac(other.ns)} dst ${other.ip}`);
    expect(neigh(NODES[0].ns)).toContain(`10.99.2.0 lladdr ${vtepMac(other.ns)} PERMANENT`);
  });

  it('sets its own Node\'s NetworkUnavailable=False once, after the pod network is up', async () => {
    for (const [name, a] of agents) {
      const said = await until(`${name}'s condition`, () => {
        const c = a.messages.filter((m) => m.type === 'condition');
        return c.length ? c : undefined;
      });
      expect(said).toEqual([{ type: 'condition', name, condition: { type: 'NetworkUnavailable', status: 'False', reason: 'SkiffIsUp', message: 'skiff set up the pod network on this node' } }]);
    }
  });

  it('STATUS through the shim succeeds once the agent is ready', async () => {
    const status = await cniExec(NODES[0].ns, [shim], { CNI_COMMAND: 'STATUS', CNI_PATH: '/usr/lib/cni' }, JSON.stringify({ ...JSON.parse(pluginConf('n1')), cniVersion: '1.1.0' }));
    expect(status.code, status.raw).toBe(0);
  });

  it('pod to pod across nodes, without NAT, both ways', async () => {
    const a = await addPod(NODES[0], 1);
    const b = await addPod(NODES[1], 1);
    servers.push(whoamiServer(b.ns, 7301), whoamiServer(a.ns, 7302));
    expect(await whoami(a.ns, b.ip, 7301)).toBe(a.ip);
    expect(await whoami(b.ns, a.ip, 7302)).toBe(b.ip);
  });

  it('IPv6 pod to pod across nodes rides the same tunnel', async () => {
    const a = pods.find((p) => p.node === 'n1')!;
    const b = pods.find((p) => p.node === 'n2')!;
    expect(routes(NODES[0].ns)).toBeDefined();
    expect(execFileSync('ip', ['-n', NODES[0].ns, '-6', 'route', 'show', 'dev', 'skiff-vx'], { encoding: 'utf8' })).toContain('fd99:2::/64 via fd99:2::');
    servers.push(whoamiServer(b.ns, 7310, true));
    const seen = await whoami(a.ns, b.ip6, 7310);
    const canon = (x: string) => formatIP(parseIP(x).value, 6);
    expect(canon(seen)).toBe(a.ip6);
  });

  it('pod to node and node to pod keep the pod address; pod to outside is masqueraded', async () => {
    const a = pods.find((p) => p.node === 'n1')!;
    const b = pods.find((p) => p.node === 'n2')!;
    servers.push(whoamiServer(NODES[1].ns, 7303), whoamiServer(OUT, 7304), whoamiServer(b.ns, 7305));
    expect(await whoami(a.ns, NODES[1].ip, 7303)).toBe(a.ip);
    expect(await whoami(a.ns, '192.168.77.100', 7304)).toBe(NODES[0].ip);
    expect(await whoami(NODES[0].ns, b.ip, 7305)).toMatch(/^10\.99\.1\./);
    const table = (await inNs(NODES[0].ns, 'nft', ['list', 'table', 'inet', 'skiff-masq'])).stdout;
    expect(table).toContain('192.168.77.2');
  });

  it('a full-MTU datagram with DF crosses the overlay; one byte more cannot leave', async () => {
    const a = pods.find((p) => p.node === 'n1')!;
    const b = pods.find((p) => p.node === 'n2')!;
    const max = UNDERLAY_MTU - 50 - 28;
    expect(await udpDF(a.ns, b.ns, b.ip, 7306, max)).toBe(max);
    expect(await udpDF(a.ns, b.ns, b.ip, 7307, max + 1)).toBe(0);
  });

  it('pods on three nodes reach each other without NAT; bulk TCP and node-to-pod cross to the third', async () => {
    const a = pods.find((p) => p.node === 'n1')!;
    const b = pods.find((p) => p.node === 'n2')!;
    const c = await addPod(NODES[2], 1);
    servers.push(whoamiServer(c.ns, 7330));
    expect(await whoami(a.ns, c.ip, 7330)).toBe(a.ip);
    expect(await whoami(b.ns, c.ip, 7330)).toBe(b.ip);
    expect(await whoami(c.ns, a.ip, 7302)).toBe(c.ip);
    expect(await whoami(c.ns, b.ip, 7301)).toBe(c.ip);
    expect(await whoami(NODES[1].ns, c.ip, 7330)).toMatch(/^10\.99\.2\./);
    expect(await whoami(c.ns, NODES[1].ip, 7303)).toBe(c.ip); // pod to another node: not masqueraded
    const vx = txBytes(NODES[0].ns, 'skiff-vx');
    const size = 4 << 20;
    expect(await stream(a.ns, c.ns, c.ip, 7331, size)).toBe(size);
    expect(txBytes(NODES[0].ns, 'skiff-vx') - vx).toBeGreaterThan(size);
  });

  it("the largest datagram the pod's own MTU allows crosses with DF; one byte more cannot leave", async () => {
    const a = pods.find((p) => p.node === 'n1')!;
    const c = pods.find((p) => p.node === 'n3')!;
    const mtu = (JSON.parse(execFileSync('ip', ['-n', a.ns, '-j', 'link', 'show', 'eth0'], { encoding: 'utf8' })) as { mtu: number }[])[0]!.mtu;
    expect(mtu).toBe(UNDERLAY_MTU - 50);
    expect(await udpDF(a.ns, c.ns, c.ip, 7332, mtu - 28)).toBe(mtu - 28);
    expect(await udpDF(a.ns, c.ns, c.ip, 7333, mtu - 27)).toBe(0);
  });

  it('a pod added through the whole conflist the agent wrote gets its hostPort and bandwidth; DEL in reverse', async () => {
    const node = NODES[1];
    const list = JSON.parse(readFileSync(join(dir, node.name, 'net.d', '10-skiff.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: { type: string; capabilities?: Record<string, boolean> }[] };
    const ns = `${P}-n2hp`;
    await addNetns(ns);
    const id = 'ovhostport';
    const env = (cmd: string) => pluginEnv(cmd, id, `/var/run/netns/${ns}`, { CNI_ARGS: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${id}` });
    // What the runtime passes, each plugin only what its capabilities ask for.
    const runtime: Record<string, unknown> = { portMappings: [{ hostPort: 18081, containerPort: 7340, protocol: 'tcp' }], bandwidth: { ingressRate: 80_000_000, ingressBurst: 800_000, egressRate: 80_000_000, egressBurst: 800_000 } };
    const confOf = (p: (typeof list.plugins)[number], prevResult: unknown) => {
      const runtimeConfig = Object.fromEntries(Object.keys(p.capabilities ?? {}).map((k) => [k, runtime[k]]));
      return JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...p, runtimeConfig, ...(prevResult ? { prevResult } : {}) });
    };
    const exec = (p: (typeof list.plugins)[number], cmd: string, prev: unknown): Promise<CniCall> => cniExec(node.ns, [p.type === 'skiff' ? shim : `/usr/lib/cni/${p.type}`], env(cmd), confOf(p, prev));
    let result: unknown;
    for (const p of list.plugins) {
      const r = await exec(p, 'ADD', result);
      expect(r.code, `${p.type}: ${r.raw}`).toBe(0);
      result = r.out;
    }
    const ip = ((result as { ips: { address: string }[] }).ips)[0]!.address.split('/')[0]!;
    servers.push(whoamiServer(ns, 7340));
    // The hostPort from outside (the client's address kept) and from a pod on another node.
    expect(await whoami(OUT, node.ip, 18081)).toBe('192.168.77.100');
    expect(await whoami(pods.find((p) => p.node === 'n1')!.ns, node.ip, 18081)).toMatch(/^(10\.99\.1\.\d+|192\.168\.77\.1)$/);
    const hostIf = JSON.parse(execFileSync('ip', ['-n', node.ns, '-j', 'link', 'show', 'master', 'skiff0'], { encoding: 'utf8' }) as string).map((l: { ifname: string }) => l.ifname) as string[];
    const qdiscs = hostIf.map((i) => execFileSync('ip', ['netns', 'exec', node.ns, 'tc', 'qdisc', 'show', 'dev', i], { encoding: 'utf8' })).join('');
    expect(qdiscs).toContain('tbf');
    for (const p of [...list.plugins].reverse()) {
      const r = await exec(p, 'DEL', result);
      expect(r.code, `${p.type}: ${r.raw}`).toBe(0);
    }
    expect(existsSync(join(dir, node.name, 'state', 'ipam', 'skiff', ip))).toBe(false);
    await expect(whoami(OUT, node.ip, 18081, 2)).rejects.toThrow();
  });

  it('STATUS answers 50 while the node has no podCIDR, and 0 again once it has', async () => {
    const n3 = NODES[2];
    const status = () => cniExec(n3.ns, [shim], { CNI_COMMAND: 'STATUS', CNI_PATH: '/usr/lib/cni' }, JSON.stringify({ ...JSON.parse(pluginConf('n3')), cniVersion: '1.1.0' }));
    const real = nodeObjs.get('n3')!;
    agents.get('n3')!.send({ op: 'upsert', kind: 'nodes', key: 'n3', obj: { ...real, podCIDRs: [] } });
    const refused = await until('STATUS 50', async () => {
      const r = await status();
      return r.code !== 0 ? r : undefined;
    });
    expect(refused.out).toMatchObject({ code: 50, details: 'node n3 has no podCIDR yet' });
    agents.get('n3')!.send({ op: 'upsert', kind: 'nodes', key: 'n3', obj: real });
    await until('STATUS 0', async () => ((await status()).code === 0 ? true : undefined));
  });

  it('a changed VTEP MAC replaces FDB and neighbour entries; a removed node leaves nothing', async () => {
    const n1 = NODES[0].ns;
    const real = nodeObjs.get('n2')!;
    const realMac = real.annotations['skiff.io/vtep-mac']!;
    const fake = '0a:00:00:00:00:99';
    agents.get('n1')!.send({ op: 'upsert', kind: 'nodes', key: 'n2', obj: { ...real, annotations: { ...real.annotations, 'skiff.io/vtep-mac': fake } } });
    await until('new fdb entry', () => fdb(n1).includes(fake) || undefined);
    expect(fdb(n1)).not.toContain(realMac);
    expect(neigh(n1)).toContain(`lladdr ${fake}`);
    agents.get('n1')!.send({ op: 'remove', kind: 'nodes', key: 'n2' });
    await until('entries removed', () => (!routes(n1).includes('10.99.2.0/24') && !fdb(n1).includes(fake) && !neigh(n1).includes(fake)) || undefined);
    agents.get('n1')!.send({ op: 'upsert', kind: 'nodes', key: 'n2', obj: real });
    await until('entries back', () => fdb(n1).includes(realMac) || undefined);
    const a = pods.find((p) => p.node === 'n1')!;
    const b = pods.find((p) => p.node === 'n2')!;
    expect(await whoami(a.ns, b.ip, 7301)).toBe(a.ip);
  });

  it('a restarted agent keeps live entries and its MAC, removes stale ones, and releases leaked addresses', async () => {
    const n = NODES[0];
    const macBefore = vtepMac(n.ns);
    await agents.get('n1')!.stop();
    await inNs(n.ns, 'ip', ['route', 'add', '10.99.9.0/24', 'via', '10.99.9.0', 'dev', 'skiff-vx', 'onlink']);
    await inNs(n.ns, 'ip', ['neigh', 'add', '10.99.9.0', 'lladdr', '0a:00:00:00:09:09', 'dev', 'skiff-vx', 'nud', 'permanent']);
    await inNs(n.ns, 'bridge', ['fdb', 'add', '0a:00:00:00:09:09', 'dev', 'skiff-vx', 'dst', '192.168.77.9', 'self', 'permanent']);
    // An address whose DEL never came: its namespace is gone and it is older than the grace period.
    const leak = join(dir, 'n1', 'state', 'ipam', 'skiff', '10.99.1.200');
    writeFileSync(leak, JSON.stringify({ containerID: 'gone', ifname: 'eth0', netns: '/var/run/netns/skiffcni-ov-gone', podNamespace: 'default', podName: 'gone' }));
    utimesSync(leak, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    const live = pods.find((p) => p.node === 'n1')!;
    const a = startAgent(n);
    // The harness's pod store must hold the live pod, or reconcile would rightly release it too.
    a.send({ op: 'upsert', kind: 'pods', key: `default/${live.id}`, obj: { namespace: 'default', name: live.id, uid: '', nodeName: 'n1', hostNetwork: false, podIPs: [live.ip], phase: 'Running', ready: true, deleting: false, labels: {} } });
    await a.waitFor('ready');
    await until('stale entries removed', () => (!routes(n.ns).includes('10.99.9.0') && !fdb(n.ns).includes('0a:00:00:00:09:09') && !neigh(n.ns).includes('10.99.9.0')) || undefined);
    expect(vtepMac(n.ns)).toBe(macBefore);
    expect(routes(n.ns)).toContain('10.99.2.0/24 via 10.99.2.0');
    await until('leak released', () => !existsSync(leak) || undefined);
    expect(existsSync(join(dir, 'n1', 'state', 'ipam', 'skiff', live.ip))).toBe(true);
    const b = pods.find((p) => p.node === 'n2')!;
    expect(await whoami(live.ns, b.ip, 7301)).toBe(live.ip);
  });

  it('cleanup removes the links, the masquerade table and the conflist', async () => {
    const n = NODES[1];
    await agents.get('n2')!.stop('cleanup');
    agents.delete('n2');
    const links = (await inNs(n.ns, 'ip', ['-j', 'link', 'show'])).stdout;
    expect(links).not.toContain('skiff');
    await expect(inNs(n.ns, 'nft', ['list', 'table', 'inet', 'skiff-masq'])).rejects.toThrow();
    expect(existsSync(join(dir, 'n2', 'net.d', '10-skiff.conflist'))).toBe(false);
  });
});
