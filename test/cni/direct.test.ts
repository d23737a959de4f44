// Direct routing (flannel's DirectRouting) with the real cni component in three "nodes": n1 and n2
// share an underlay subnet (IPv4 and IPv6), n3 sits on another subnet of the same switch (reached
// through an on-link route, as through a router). Same-subnet pairs route pod traffic unencapsulated;
// n3 keeps VXLAN. Node namespaces run strict rp_filter, the setting direct routing must cope with.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatIP, parseIP } from '../../cni/ipam/ipnet.js';
import { missing } from '../support/env.js';
import { addNetns, cleanupPrefix, inNs, sh } from '../support/netns.js';
import { buildShim, cniExec, NodeAgent, pluginEnv, SharedNodes, stream, tempDir, until, whoami, whoamiServer } from './support/harness.js';

const P = 'skiffcni-dr';
const SW = `${P}-sw`;
type Node = { name: string; ns: string; ip: string; prefix: number; ip6?: string; podCIDR: string; podCIDR6: string; route: string };
const NODES: readonly Node[] = [
  { name: 'n1', ns: `${P}-n1`, ip: '192.168.81.1', prefix: 24, ip6: 'fd81::1', podCIDR: '10.95.1.0/24', podCIDR6: 'fd95:1::/64', route: '192.168.82.0/24' },
  { name: 'n2', ns: `${P}-n2`, ip: '192.168.81.2', prefix: 24, ip6: 'fd81::2', podCIDR: '10.95.2.0/24', podCIDR6: 'fd95:2::/64', route: '192.168.82.0/24' },
  { name: 'n3', ns: `${P}-n3`, ip: '192.168.82.3', prefix: 24, podCIDR: '10.95.3.0/24', podCIDR6: 'fd95:3::/64', route: '192.168.81.0/24' },
];
const [N1, N2, N3] = NODES as [Node, Node, Node];

const ipOut = (ns: string, args: string[]) => execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
const fdb = (ns: string) => execFileSync('ip', ['netns', 'exec', ns, 'bridge', 'fdb', 'show', 'dev', 'skiff-vx'], { encoding: 'utf8' });
const neigh = (ns: string) => ipOut(ns, ['neigh', 'show', 'dev', 'skiff-vx']);
const directRoutes = (ns: string) => ipOut(ns, ['route', 'show', 'proto', '95']) + ipOut(ns, ['-6', 'route', 'show', 'proto', '95']);
const route = (ns: string, cidr: string) => ipOut(ns, [cidr.includes(':') ? '-6' : '-4', 'route', 'show', cidr]).trim();
const txBytes = (ns: string, dev: string): number => (JSON.parse(ipOut(ns, ['-s', '-j', 'link', 'show', dev])) as { stats64: { tx: { bytes: number } } }[])[0]!.stats64.tx.bytes;
const canon = (x: string) => formatIP(parseIP(x).value, x.includes(':') ? 6 : 4);

describe.skipIf(missing('cni direct routing', { root: true, tools: ['ip', 'nsenter', 'cc', 'bridge', 'nft', 'socat', 'ss'] }))('cni direct routing (root)', () => {
  let dir: string;
  let shim: string;
  const shared = new SharedNodes();
  const agents = shared.agents;
  const nodeObjs = shared.nodes;
  const servers: ChildProcess[] = [];
  const pods = new Map<string, { ns: string; ip: string; ip6: string }>();

  const startAgent = (n: Node, directRouting: boolean): NodeAgent => {
    const config = {
      nodeName: n.name,
      clusterCIDRs: ['10.95.0.0/16', 'fd95::/48'],
      stateDir: join(dir, n.name, 'state'),
      runDir: join(dir, n.name, 'run'),
      cni: { confDir: join(dir, n.name, 'net.d'), binDir: join(dir, 'bin'), directRouting },
    };
    return shared.attach(n.name, new NodeAgent(n.ns, { mode: 'agent', socketPath: join(dir, n.name, 'run', 'cni.sock'), config }));
  };
  const restart = async (n: Node, directRouting: boolean): Promise<void> => {
    await agents.get(n.name)!.stop();
    await startAgent(n, directRouting).waitFor('ready');
  };
  const addPod = async (n: Node) => {
    const ns = `${P}-${n.name}p`;
    await addNetns(ns);
    const list = JSON.parse(readFileSync(join(dir, n.name, 'net.d', '10-skiff.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: object[] };
    const conf = JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] });
    const id = `dr${n.name}`;
    const r = await cniExec(n.ns, [shim], pluginEnv('ADD', id, `/var/run/netns/${ns}`, { CNI_ARGS: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${id}` }), conf);
    expect(r.code, r.raw).toBe(0);
    const ips = (r.out.ips as { address: string }[]).map((i) => i.address.split('/')[0]!);
    pods.set(n.name, { ns, ip: ips[0]!, ip6: ips[1]! });
  };
  const pod = (n: Node) => pods.get(n.name)!;

  beforeAll(async () => {
    cleanupPrefix(P);
    dir = tempDir('direct');
    shim = buildShim(dir);
    mkdirSync(join(dir, 'bin'));
    await addNetns(SW);
    await inNs(SW, 'ip', ['link', 'add', 'sw0', 'type', 'bridge']);
    await inNs(SW, 'ip', ['link', 'set', 'sw0', 'up']);
    for (const [i, n] of NODES.entries()) {
      await addNetns(n.ns);
      await sh('ip', ['link', 'add', 'eth0', 'netns', n.ns, 'type', 'veth', 'peer', 'name', `port${i}`, 'netns', SW]);
      await inNs(SW, 'ip', ['link', 'set', `port${i}`, 'master', 'sw0', 'up']);
      // Strict reverse-path filtering, as RHEL-like hosts set it: direct routing must loosen what it needs.
      await inNs(n.ns, 'sysctl', ['-qw', 'net.ipv4.conf.all.rp_filter=1']);
      const batch = [`addr add ${n.ip}/${n.prefix} dev eth0`, ...(n.ip6 ? [`addr add ${n.ip6}/64 dev eth0 nodad`] : []), 'link set eth0 up', `route add ${n.route} dev eth0`];
      await inNs(n.ns, 'ip', ['-batch', '-'], batch.join('\n') + '\n');
      mkdirSync(join(dir, n.name), { recursive: true });
      const addresses = [{ type: 'InternalIP', address: n.ip }, ...(n.ip6 ? [{ type: 'InternalIP', address: n.ip6 }] : [])];
      nodeObjs.set(n.name, { name: n.name, uid: `uid-${n.name}`, podCIDRs: [n.podCIDR, n.podCIDR6], addresses, labels: {}, annotations: {}, ready: true });
    }
    for (const n of NODES) startAgent(n, true);
    await Promise.all([...agents.values()].map((a) => a.waitFor('ready', 60_000)));
    await until('every peer routed', () => NODES.every((n) => NODES.every((p) => p === n || route(n.ns, p.podCIDR).includes('via'))) || undefined, 30_000);
    for (const n of NODES) await addPod(n);
    for (const [i, n] of NODES.entries()) servers.push(whoamiServer(pod(n).ns, 7401 + i), whoamiServer(pod(n).ns, 7411 + i, true));
  }, 120_000);

  afterAll(async () => {
    for (const s of servers) s.kill('SIGKILL');
    for (const a of agents.values()) a.kill();
    cleanupPrefix(P);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('routes a same-subnet peer via its node IP with no tunnel entries, and an other-subnet peer over VXLAN', () => {
    expect(route(N1.ns, N2.podCIDR)).toBe(`${N2.podCIDR} via ${N2.ip} dev eth0 proto 95`);
    expect(route(N1.ns, N2.podCIDR6)).toContain(`${N2.podCIDR6} via ${N2.ip6} dev eth0 proto 95`);
    expect(neigh(N1.ns)).not.toContain('10.95.2.0');
    expect(neigh(N1.ns)).not.toContain('fd95:2::');
    expect(fdb(N1.ns)).not.toContain(`dst ${N2.ip}`);
    // n3: IPv4 on another subnet, and no IPv6 node address at all: both its podCIDRs ride the tunnel.
    expect(route(N1.ns, N3.podCIDR)).toBe(`${N3.podCIDR} via 10.95.3.0 dev skiff-vx onlink`);
    expect(route(N1.ns, N3.podCIDR6)).toContain('via fd95:3:: dev skiff-vx');
    expect(fdb(N1.ns)).toContain(`dst ${N3.ip}`);
    expect(nodeObjs.get('n1')!.annotations['skiff.io/direct-routing']).toBe('true');
    // Loose reverse-path filtering on the two devices pod traffic may come in by.
    for (const dev of ['eth0', 'skiff-vx']) expect(execFileSync('ip', ['netns', 'exec', N1.ns, 'sysctl', '-n', `net.ipv4.conf.${dev}.rp_filter`], { encoding: 'utf8' }).trim()).toBe('2');
  });

  it('carries pod-to-pod traffic to a direct peer without NAT and without touching the VXLAN device', async () => {
    expect(await whoami(pod(N1).ns, pod(N2).ip, 7402)).toBe(pod(N1).ip);
    expect(await whoami(pod(N2).ns, pod(N1).ip, 7401)).toBe(pod(N2).ip);
    expect(canon(await whoami(pod(N1).ns, pod(N2).ip6, 7412))).toBe(pod(N1).ip6);
    const [vx, eth] = [txBytes(N1.ns, 'skiff-vx'), txBytes(N1.ns, 'eth0')];
    const size = 4 << 20;
    expect(await stream(pod(N1).ns, pod(N2).ns, pod(N2).ip, 7420, size)).toBe(size);
    expect(await stream(pod(N1).ns, pod(N2).ns, pod(N2).ip6, 7421, size)).toBe(size);
    expect(txBytes(N1.ns, 'skiff-vx') - vx).toBeLessThan(2000);
    expect(txBytes(N1.ns, 'eth0') - eth).toBeGreaterThan(2 * size);
  });

  it('carries pod-to-pod traffic to the other-subnet peer over VXLAN, both families', async () => {
    expect(await whoami(pod(N1).ns, pod(N3).ip, 7403)).toBe(pod(N1).ip);
    expect(await whoami(pod(N3).ns, pod(N1).ip, 7401)).toBe(pod(N3).ip);
    expect(canon(await whoami(pod(N1).ns, pod(N3).ip6, 7413))).toBe(pod(N1).ip6);
    const vx = txBytes(N1.ns, 'skiff-vx');
    const size = 2 << 20;
    expect(await stream(pod(N1).ns, pod(N3).ns, pod(N3).ip, 7422, size)).toBe(size);
    expect(txBytes(N1.ns, 'skiff-vx') - vx).toBeGreaterThan(size);
  });

  it('switches a peer to VXLAN when it moves off the subnet or stops routing directly, and back', async () => {
    const real = nodeObjs.get('n2')!;
    const n1 = agents.get('n1')!;
    const moved = { ...real, addresses: [{ type: 'InternalIP', address: '192.168.82.2' }, ...real.addresses.slice(1)], annotations: { ...real.annotations, 'skiff.io/public-ip': '192.168.82.2' } };
    n1.send({ op: 'upsert', kind: 'nodes', key: 'n2', obj: moved });
    await until('n2 over VXLAN', () => route(N1.ns, N2.podCIDR).includes('skiff-vx') || undefined);
    expect(fdb(N1.ns)).toContain(`dst 192.168.82.2`);
    expect(neigh(N1.ns)).toContain('10.95.2.0 lladdr');
    // Its IPv6 node address stayed on the subnet: that podCIDR stays direct, the tunnel carries only IPv4.
    expect(route(N1.ns, N2.podCIDR6)).toContain(`via ${N2.ip6} dev eth0`);
    expect(neigh(N1.ns)).not.toContain('fd95:2::');

    // n2 opts out (as after a flip of its key) but keeps its address: n1 tunnels to it while n2 still
    // answers directly, so replies come in on eth0 with the route back on skiff-vx (loose rp_filter).
    const { ['skiff.io/direct-routing']: _drop, ...optedOut } = real.annotations;
    n1.send({ op: 'upsert', kind: 'nodes', key: 'n2', obj: { ...real, annotations: optedOut } });
    await until('n2 tunnelled at its real address', () => (fdb(N1.ns).includes(`dst ${N2.ip}`) && route(N1.ns, N2.podCIDR6).includes('dev skiff-vx')) || undefined);
    expect(directRoutes(N1.ns)).not.toContain('10.95.2.0');
    const vx = txBytes(N1.ns, 'skiff-vx');
    expect(await whoami(pod(N1).ns, pod(N2).ip, 7402)).toBe(pod(N1).ip);
    expect(await stream(pod(N1).ns, pod(N2).ns, pod(N2).ip, 7423, 1 << 20)).toBe(1 << 20);
    expect(txBytes(N1.ns, 'skiff-vx') - vx).toBeGreaterThan(1 << 20);

    n1.send({ op: 'upsert', kind: 'nodes', key: 'n2', obj: real });
    await until('n2 direct again', () => route(N1.ns, N2.podCIDR).includes('dev eth0') || undefined);
    await until('tunnel entries gone', () => (!fdb(N1.ns).includes(`dst ${N2.ip}`) && !neigh(N1.ns).includes('10.95.2.0')) || undefined);
    expect(await whoami(pod(N1).ns, pod(N2).ip, 7402)).toBe(pod(N1).ip);
  }, 60_000);

  it("follows this node's own underlay addresses: a second subnet on eth0 makes its peer direct at the next full sync", async () => {
    const n1 = agents.get('n1')!;
    // A changed label: the watch cache passes on only real changes, and this node's own change
    // is what makes the agent run a full sync.
    let touch = 0;
    const self = (): void => {
      const o = nodeObjs.get('n1')!;
      n1.send({ op: 'upsert', kind: 'nodes', key: 'n1', obj: { ...o, labels: { ...o.labels, 'skiff-test/touch': String(++touch) } } });
    };
    expect(route(N1.ns, N3.podCIDR)).toContain('dev skiff-vx');
    // noprefixroute: n1 already routes 192.168.82.0/24 out of eth0 (the test's L3 between subnets).
    await inNs(N1.ns, 'ip', ['addr', 'add', '192.168.82.1/24', 'dev', 'eth0', 'noprefixroute']);
    try {
      self();
      await until('n3 direct from n1', () => route(N1.ns, N3.podCIDR).includes(`via ${N3.ip} dev eth0`) || undefined);
      expect(route(N1.ns, N3.podCIDR)).toBe(`${N3.podCIDR} via ${N3.ip} dev eth0 proto 95`);
    } finally {
      await inNs(N1.ns, 'ip', ['addr', 'del', '192.168.82.1/24', 'dev', 'eth0']);
    }
    self();
    await until('n3 tunnelled again', () => route(N1.ns, N3.podCIDR).includes('dev skiff-vx') || undefined);
    expect(await whoami(pod(N1).ns, pod(N3).ip, 7403)).toBe(pod(N1).ip);
  }, 60_000);

  it('flipping the key off removes the direct routes and moves both sides of each pair to VXLAN; on again restores them', async () => {
    await restart(N1, false);
    await until('n1 has no direct routes', () => directRoutes(N1.ns).trim() === '' || undefined);
    expect(nodeObjs.get('n1')!.annotations['skiff.io/direct-routing']).toBeUndefined();
    expect(route(N1.ns, N2.podCIDR)).toBe(`${N2.podCIDR} via 10.95.2.0 dev skiff-vx onlink`);
    // n2 sees n1 opt out and tunnels too.
    await until('n2 tunnels to n1', () => route(N2.ns, N1.podCIDR).includes('skiff-vx') || undefined);
    const vx = txBytes(N2.ns, 'skiff-vx');
    expect(await whoami(pod(N2).ns, pod(N1).ip, 7401)).toBe(pod(N2).ip);
    expect(await whoami(pod(N1).ns, pod(N2).ip, 7402)).toBe(pod(N1).ip);
    expect(canon(await whoami(pod(N1).ns, pod(N2).ip6, 7412))).toBe(pod(N1).ip6);
    expect(txBytes(N2.ns, 'skiff-vx')).toBeGreaterThan(vx);

    await restart(N1, true);
    await until('both direct again', () => (route(N1.ns, N2.podCIDR).includes('dev eth0') && route(N2.ns, N1.podCIDR).includes('dev eth0')) || undefined);
    expect(route(N1.ns, N3.podCIDR)).toContain('skiff-vx');
    expect(await whoami(pod(N1).ns, pod(N2).ip, 7402)).toBe(pod(N1).ip);
    expect(await whoami(pod(N3).ns, pod(N1).ip, 7401)).toBe(pod(N3).ip);
  }, 120_000);
});
