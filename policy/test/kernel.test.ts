// The rendered table in a real kernel: a node namespace with a bridge like skiff0 (three local
// pods, bridged to each other as the CNI does, so same-node traffic relies on br_netfilter), a
// "remote node" namespace reached by routing (one remote pod), TCP and UDP servers on 80 and 81 in
// every pod. Rules are loaded with `nft -f` exactly as rendered (full load, then diffs), and each
// check probes real connections. Everything carries the `skiffpe` prefix and is removed after.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { desiredState, type PolicyInputs } from '../desired.js';
import type { NetworkPolicy, PolicyPod } from '../model.js';
import { toClusterNetworkPolicy, type ClusterPolicy } from '../admin.js';
import { toNetworkPolicy } from '../convert.js';
import { TABLE, diffPlan, diffText, fullText, render, type PolicyTable } from '../render.js';
import { parseCommands } from '../nlcommands.js';
import { listenDenied, type DeniedPacket } from '../denied-log.js';
import { RawNetlinkSocket } from 'netlink';
import { loadNetnsAddon } from '../../cni/plugin/netns-addon.js';
import { NftSession } from '../../common/nft/session.js';
import { PolicyDataplane } from '../dataplane.js';
import { netlinkElements } from '../setelem.js';
import { execRunner } from '../exec.js';
import { missing } from '../../test/support/env.js';
import { addNetns, cleanupPrefix, inNs, sh, spawnInNs } from '../../test/support/netns.js';

const P = 'skiffpe-';
const NODE = `${P}node`;
const REMOTE = `${P}rem`;
const skip = missing('policy kernel test', { root: true, tools: ['nft', 'ip'] });

const SERVER = `
const name = process.argv[1];
for (const port of [80, 81]) {
  require('net').createServer((s) => { s.on('error', () => {}); s.end(name + ' tcp ' + port); }).listen(port);
  const u = require('dgram').createSocket('udp4');
  u.on('message', (m, r) => u.send(name + ' udp ' + port, r.port, r.address));
  u.bind(port);
}
`;

// Probes every target at once; prints one JSON list of answers ("timeout", "error CODE" or the reply).
const CLIENT = `
const targets = JSON.parse(process.argv[1]);
Promise.all(targets.map(([proto, ip, port]) => new Promise((done) => {
  const t = setTimeout(() => done('timeout'), 1500);
  const end = (v) => { clearTimeout(t); done(v); };
  if (proto === 'tcp') {
    const s = require('net').connect(port, ip);
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('end', () => { end(data); s.destroy(); });
    s.on('error', (e) => end('error ' + e.code));
  } else {
    const s = require('dgram').createSocket('udp4');
    s.on('message', (m) => { end(String(m)); s.close(); });
    s.on('error', (e) => end('error ' + e.code));
    s.send('x', port, ip);
  }
}))).then((r) => { console.log(JSON.stringify(r)); process.exit(0); });
`;

interface TestPod {
  readonly ns: string;
  readonly name: string;
  readonly ip: string;
  readonly netns: string;
}

// x/a, x/b, y/a on this node (bridged); y/b on the remote node (routed).
const PODS: TestPod[] = [
  { ns: 'x', name: 'a', ip: '10.244.1.11', netns: `${P}xa` },
  { ns: 'x', name: 'b', ip: '10.244.1.12', netns: `${P}xb` },
  { ns: 'y', name: 'a', ip: '10.244.1.21', netns: `${P}ya` },
  { ns: 'y', name: 'b', ip: '10.244.2.22', netns: REMOTE },
];
const pod = (k: string): TestPod => PODS.find((p) => `${p.ns}/${p.name}` === k)!;
const SERVICE_IP = '10.96.0.50';
const DNS_IP = '10.96.0.10';

// The node's own listeners: "DNS" on the DNS Service IP, and TCP 8080 on every node address.
const NODE_SERVER = `
const u = require('dgram').createSocket('udp4');
u.on('message', (m, r) => u.send('node udp 53', r.port, r.address));
u.bind(53, '${DNS_IP}');
require('net').createServer((s) => { s.on('error', () => {}); s.end('node tcp 8080'); }).listen(8080);
`;

function policyPods(): PolicyPod[] {
  return PODS.map((p) => ({
    namespace: p.ns,
    name: p.name,
    nodeName: p.netns === REMOTE ? 'remote' : 'local',
    hostNetwork: false,
    podIPs: [p.ip],
    labels: { pod: p.name },
    namedPorts: [80, 81].flatMap((port) => (['TCP', 'UDP'] as const).map((protocol) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, port, protocol }))),
  }));
}

function policy(ns: string, name: string, spec: unknown): NetworkPolicy {
  const r = toNetworkPolicy({ metadata: { namespace: ns, name }, spec });
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}

const sel = (matchLabels: Record<string, string>) => ({ matchLabels });

function cnp(name: string, tier: 'Admin' | 'Baseline', priority: number, spec: Record<string, unknown>): ClusterPolicy {
  const r = toClusterNetworkPolicy({ metadata: { name }, spec: { tier, priority, ...spec } });
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}
// x/a: ingress TCP 80 + UDP 81 from x/b; TCP 81 from y/b (another node, routed).
const X_A = policy('x', 'x-a', {
  podSelector: sel({ pod: 'a' }),
  ingress: [
    { from: [{ podSelector: sel({ pod: 'b' }) }], ports: [{ port: 80 }, { protocol: 'UDP', port: 81 }] },
    { from: [{ namespaceSelector: sel({ ns: 'y' }), podSelector: sel({ pod: 'b' }) }], ports: [{ port: 81 }] },
  ],
});
// y/a: egress only to 10.244.2.0/24 on TCP 80 (y/b's node) and to named port serve-81-tcp of pods in x.
const Y_A = policy('y', 'y-a', {
  podSelector: sel({ pod: 'a' }),
  policyTypes: ['Egress'],
  egress: [
    { to: [{ ipBlock: { cidr: '10.244.2.0/24' } }], ports: [{ port: 80 }] },
    { to: [{ namespaceSelector: sel({ ns: 'x' }) }], ports: [{ port: 'serve-81-tcp' }] },
  ],
});

function inputs(policies: NetworkPolicy[]): PolicyInputs {
  return { policies, pods: policyPods(), namespaces: [{ name: 'x', labels: { ns: 'x' } }, { name: 'y', labels: { ns: 'y' } }] };
}

const tableFor = (policies: NetworkPolicy[]): PolicyTable => render(desiredState(inputs(policies), { nodeName: 'local' }));

async function nft(text: string): Promise<void> {
  await inNs(NODE, 'nft', ['-f', '-'], text);
}

type Probe = [from: string, proto: 'tcp' | 'udp', to: string, port: number];

/** Runs the probes (grouped per client namespace, in parallel) and returns "reply" or "blocked" for each. */
async function probe(list: Probe[]): Promise<string[]> {
  const byNs = new Map<string, number[]>();
  list.forEach(([from], i) => {
    const ns = from === 'node' ? NODE : pod(from).netns;
    byNs.set(ns, [...(byNs.get(ns) ?? []), i]);
  });
  const out: string[] = new Array<string>(list.length);
  await Promise.all(
    [...byNs].map(async ([ns, idx]) => {
      const targets = idx.map((i) => {
        const [, proto, to, port] = list[i]!;
        return [proto, to === 'service' ? SERVICE_IP : /^\d/.test(to) ? to : pod(to).ip, port];
      });
      const res = JSON.parse((await inNs(ns, process.execPath, ['-e', CLIENT, JSON.stringify(targets)])).stdout) as string[];
      idx.forEach((i, j) => (out[i] = res[j]!.includes(' tcp ') || res[j]!.includes(' udp ') ? 'reply' : 'blocked'));
    }),
  );
  return out;
}

const show = (list: Probe[], res: string[]): string[] => list.map(([f, p, t, port], i) => `${f} -> ${t} ${p}/${port}: ${res[i]}`);

describe.skipIf(skip)('policy rules in the kernel', () => {
  const servers: ChildProcess[] = [];
  let current: PolicyTable;

  beforeAll(async () => {
    cleanupPrefix(P);
    await addNetns(NODE);
    await addNetns(REMOTE);
    await inNs(NODE, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    // What the CNI's skiff0 needs for Services and what policy needs for same-node pods.
    await inNs(NODE, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=1']);
    await sh('ip', ['-n', NODE, 'link', 'add', `${P}br`, 'type', 'bridge']);
    await sh('ip', ['-n', NODE, 'addr', 'add', '10.244.1.1/24', 'dev', `${P}br`]);
    await sh('ip', ['-n', NODE, 'link', 'set', `${P}br`, 'up']);
    for (const [i, p] of PODS.filter((x) => x.netns !== REMOTE).entries()) {
      await addNetns(p.netns);
      await sh('ip', ['-n', NODE, 'link', 'add', `${P}v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', p.netns]);
      await sh('ip', ['-n', NODE, 'link', 'set', `${P}v${i}`, 'master', `${P}br`, 'up']);
      await sh('ip', ['-n', p.netns, 'addr', 'add', `${p.ip}/24`, 'dev', 'eth0']);
      await sh('ip', ['-n', p.netns, 'link', 'set', 'eth0', 'up']);
      await sh('ip', ['-n', p.netns, 'route', 'add', 'default', 'via', '10.244.1.1']);
    }
    // The remote node: routed, as VXLAN or direct routing would be.
    await sh('ip', ['-n', NODE, 'link', 'add', `${P}up`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', REMOTE]);
    await sh('ip', ['-n', NODE, 'addr', 'add', '192.168.99.1/24', 'dev', `${P}up`]);
    await sh('ip', ['-n', NODE, 'link', 'set', `${P}up`, 'up']);
    await sh('ip', ['-n', NODE, 'route', 'add', '10.244.2.0/24', 'via', '192.168.99.2']);
    await sh('ip', ['-n', REMOTE, 'addr', 'add', '192.168.99.2/24', 'dev', 'eth0']);
    await sh('ip', ['-n', REMOTE, 'addr', 'add', '10.244.2.22/32', 'dev', 'eth0']);
    await sh('ip', ['-n', REMOTE, 'link', 'set', 'eth0', 'up']);
    await sh('ip', ['-n', REMOTE, 'route', 'add', 'default', 'via', '192.168.99.1', 'src', '10.244.2.22']);
    // A Service like the proxy's: DNAT at prerouting -100, before policy's forward hooks.
    await nft(`add table ip ${P}nat\nadd chain ip ${P}nat pre { type nat hook prerouting priority -100 ; }\nadd rule ip ${P}nat pre ip daddr ${SERVICE_IP} tcp dport 80 dnat to 10.244.2.22:80\n`);
    for (const p of PODS) servers.push(spawnInNs(p.netns, process.execPath, ['-e', SERVER, `${p.ns}/${p.name}`]));
    // Everything reaches everything before any policy (and the servers are up).
    const all: Probe[] = PODS.flatMap((a) => PODS.filter((b) => b !== a).map((b): Probe => [`${a.ns}/${a.name}`, 'tcp', `${b.ns}/${b.name}`, 80]));
    for (let i = 0; ; i++) {
      const r = await probe(all);
      if (r.every((x) => x === 'reply')) break;
      if (i > 20) throw new Error(`pods never reached each other: ${show(all, r).join('; ')}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    current = tableFor([X_A, Y_A]);
    await nft(fullText(current));
  }, 60_000);

  afterAll(() => {
    for (const s of servers) s.kill('SIGKILL');
    cleanupPrefix(P);
  });

  it('ingress: allowed ports and peers pass, same node (bridged) and remote (routed); the rest is dropped and counted', async () => {
    const list: Probe[] = [
      ['x/b', 'tcp', 'x/a', 80],
      ['x/b', 'tcp', 'x/a', 81],
      ['x/b', 'udp', 'x/a', 81],
      ['x/b', 'udp', 'x/a', 80],
      ['y/b', 'tcp', 'x/a', 81],
      ['y/b', 'tcp', 'x/a', 80],
      ['node', 'tcp', 'x/a', 81],
      // Not isolated: x/b takes anything.
      ['x/a', 'tcp', 'x/b', 81],
    ];
    expect(show(list, await probe(list))).toEqual([
      'x/b -> x/a tcp/80: reply',
      'x/b -> x/a tcp/81: blocked',
      'x/b -> x/a udp/81: reply',
      'x/b -> x/a udp/80: blocked',
      'y/b -> x/a tcp/81: reply',
      'y/b -> x/a tcp/80: blocked',
      'node -> x/a tcp/81: reply',
      'x/a -> x/b tcp/81: reply',
    ]);
    const counters = JSON.parse((await inNs(NODE, 'nft', ['-j', 'list', 'counter', 'inet', 'skiff-policy', 'drop-in.x.a'])).stdout) as { nftables: { counter?: { packets: number } }[] };
    // Three connections, though the two TCP ones each sent a retransmit within the probe's 1.5 s.
    expect(counters.nftables.find((o) => o.counter)!.counter!.packets).toBe(3);
  });

  it('egress: CIDR, named port on the destination, and a Service judged on its endpoint after DNAT', async () => {
    const list: Probe[] = [
      ['y/a', 'tcp', 'y/b', 80],
      ['y/a', 'tcp', 'y/b', 81],
      ['y/a', 'tcp', 'x/b', 81],
      ['y/a', 'tcp', 'x/b', 80],
      ['y/a', 'udp', 'x/b', 81],
      // The Service address is in no rule; its endpoint y/b:80 is.
      ['y/a', 'tcp', 'service', 80],
    ];
    expect(show(list, await probe(list))).toEqual([
      'y/a -> y/b tcp/80: reply',
      'y/a -> y/b tcp/81: blocked',
      'y/a -> x/b tcp/81: reply',
      'y/a -> x/b tcp/80: blocked',
      'y/a -> x/b udp/81: blocked',
      'y/a -> service tcp/80: reply',
    ]);
  });

  it('diffs: dropping a policy opens its pod, restoring it closes it again; a relabelled peer is one element delete or add', async () => {
    const open = tableFor([Y_A]);
    await nft(diffText(current, open));
    const list: Probe[] = [
      ['x/b', 'tcp', 'x/a', 81],
      ['y/a', 'tcp', 'x/b', 80],
    ];
    expect(show(list, await probe(list))).toEqual(['x/b -> x/a tcp/81: reply', 'y/a -> x/b tcp/80: blocked']);
    await nft(diffText(open, current));
    expect(show(list, await probe(list))).toEqual(['x/b -> x/a tcp/81: blocked', 'y/a -> x/b tcp/80: blocked']);
    // x/b relabelled out of x-a's peers: one element delete, and it is shut out; back: one add.
    const relabel = (labels: Record<string, string>) => render(desiredState({ ...inputs([X_A, Y_A]), pods: policyPods().map((p) => (p.namespace === 'x' && p.name === 'b' ? { ...p, labels } : p)) }, { nodeName: 'local' }));
    const relabelled = relabel({ pod: 'b2' });
    const out = diffText(current, relabelled);
    expect(out).toBe('delete element inet skiff-policy s.x.x-a.in0.pods4 { 10.244.1.12 }\n');
    await nft(out);
    const x80: Probe[] = [['x/b', 'tcp', 'x/a', 80]];
    expect(show(x80, await probe(x80))).toEqual(['x/b -> x/a tcp/80: blocked']);
    const back = diffText(relabelled, relabel({ pod: 'b' }));
    expect(back).toBe('add element inet skiff-policy s.x.x-a.in0.pods4 { 10.244.1.12 }\n');
    await nft(back);
    expect(show(x80, await probe(x80))).toEqual(['x/b -> x/a tcp/80: reply']);
  });

  it('admin tiers: Deny beats a NetworkPolicy allow, Accept beats its deny, Pass hands over, Baseline only where nothing isolates', async () => {
    const xa = { pods: { namespaceSelector: sel({ ns: 'x' }), podSelector: sel({ pod: 'a' }) } };
    const pod = (ns: string, name: string) => ({ pods: { namespaceSelector: sel({ ns }), podSelector: sel({ pod: name }) } });
    const admin = [
      cnp('guard-xa', 'Admin', 10, {
        subject: xa,
        ingress: [
          { action: 'Deny', from: [pod('x', 'b')], protocols: [{ tcp: { destinationPort: { number: 80 } } }] },
          { action: 'Pass', from: [pod('y', 'b')] },
          { action: 'Accept', from: [pod('y', 'a')] },
        ],
      }),
      cnp('baseline-no-y', 'Baseline', 10, { subject: { namespaces: sel({ ns: 'x' }) }, ingress: [{ action: 'Deny', from: [{ namespaces: sel({ ns: 'y' }) }] }] }),
    ];
    const tiered = render(desiredState({ ...inputs([X_A, Y_A]), admin }, { nodeName: 'local' }));
    await nft(diffText(current, tiered));
    const list: Probe[] = [
      ['x/b', 'tcp', 'x/a', 80],
      ['x/b', 'udp', 'x/a', 81],
      ['y/b', 'tcp', 'x/a', 81],
      ['y/b', 'tcp', 'x/a', 80],
      ['y/a', 'tcp', 'x/a', 81],
      ['y/a', 'tcp', 'x/b', 81],
      ['y/b', 'tcp', 'x/b', 80],
      ['x/a', 'tcp', 'x/b', 80],
    ];
    expect(show(list, await probe(list))).toEqual([
      'x/b -> x/a tcp/80: blocked',
      'x/b -> x/a udp/81: reply',
      'y/b -> x/a tcp/81: reply',
      'y/b -> x/a tcp/80: blocked',
      'y/a -> x/a tcp/81: reply',
      'y/a -> x/b tcp/81: blocked',
      'y/b -> x/b tcp/80: blocked',
      'x/a -> x/b tcp/80: reply',
    ]);
    await nft(diffText(tiered, current));
    const back: Probe[] = [['y/b', 'tcp', 'x/b', 80]];
    expect(show(back, await probe(back))).toEqual(['y/b -> x/b tcp/80: reply']);
  });

  it('egress to the node itself (input hook): node-local DNS passes when egress allows port 53, the rest of the node does not', async () => {
    // Node-local DNS as skiff runs it: the DNS Service IP on the node's lo, answered by a local socket.
    await inNs(NODE, 'ip', ['addr', 'add', `${DNS_IP}/32`, 'dev', 'lo']);
    servers.push(spawnInNs(NODE, process.execPath, ['-e', NODE_SERVER]));
    const dnsPolicy = policy('y', 'dns', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: sel({ 'kubernetes.io/metadata.name': 'kube-system' }) }], ports: [{ protocol: 'UDP', port: 53 }] }] });
    const withDns = render(desiredState(inputs([X_A, Y_A, dnsPolicy]), { nodeName: 'local', dnsAddresses: [DNS_IP] }));
    const without = render(desiredState(inputs([X_A, Y_A]), { nodeName: 'local', dnsAddresses: [DNS_IP] }));
    const list: Probe[] = [
      ['y/a', 'udp', DNS_IP, 53],
      ['y/a', 'tcp', '10.244.1.1', 8080],
      // Not egress-isolated: reaches the node.
      ['x/b', 'udp', DNS_IP, 53],
    ];
    await nft(diffText(current, without));
    for (let i = 0; ; i++) {
      const r = show(list, await probe(list));
      if (r[2]!.endsWith('reply')) {
        expect(r).toEqual([`y/a -> ${DNS_IP} udp/53: blocked`, 'y/a -> 10.244.1.1 tcp/8080: blocked', `x/b -> ${DNS_IP} udp/53: reply`]);
        break;
      }
      if (i > 10) throw new Error(`node server never answered: ${r.join('; ')}`);
    }
    await nft(diffText(without, withDns));
    expect(show(list, await probe(list))).toEqual([`y/a -> ${DNS_IP} udp/53: reply`, 'y/a -> 10.244.1.1 tcp/8080: blocked', `x/b -> ${DNS_IP} udp/53: reply`]);
    current = withDns;
  });

  it('the netlink element path: diffs in three steps leave exactly the table a full load makes, and traffic follows', async (ctx) => {
    const { addon, error } = loadNetnsAddon();
    if (!addon) return ctx.skip(`netns addon: ${error}`);
    const writer = netlinkElements(() => addon.inNetns(`/run/netns/${NODE}`, () => new RawNetlinkSocket(12, { recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 })));
    const dp = new PolicyDataplane(execRunner(['ip', 'netns', 'exec', NODE]), { elements: writer, session: new NftSession(['ip', 'netns', 'exec', NODE, 'nft', '-i']), generation: () => writer.generation() });
    // The table as a sorted list of its objects (sets with their elements, chains, rules), handles
    // left out: creation order (a diff adds chains later than a full load) does not count.
    const listed = async (): Promise<string[]> => {
      const items = (JSON.parse((await inNs(NODE, 'nft', ['-j', 'list', 'table', 'inet', 'skiff-policy'])).stdout) as { nftables: Record<string, unknown>[] }).nftables;
      const strip = (v: unknown): unknown => (Array.isArray(v) ? v.map(strip) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'handle').map(([k, x]) => [k, strip(x)])) : v);
      return items.filter((i) => !('metainfo' in i)).map((i) => JSON.stringify(strip(i))).sort();
    };
    // y/a's egress with other CIDRs (an except cut out of one: adjacent intervals) and ports (the
    // ports set's concatenated ranges over netlink), a rule whose pods share its ipBlocks' interval
    // set (y/b inside 10.244.2.0/24 and x/b, 10.244.1.12/32 itself, left out: the kernel refuses
    // overlaps; x/a right before it: adjacent intervals), and x/a's rules gone.
    const Y_A2 = policy('y', 'y-a', {
      podSelector: sel({ pod: 'a' }),
      policyTypes: ['Egress'],
      egress: [
        { to: [{ ipBlock: { cidr: '10.244.0.0/16', except: ['10.244.1.0/24', '10.244.2.22/32'] } }, { ipBlock: { cidr: '172.20.0.0/14' } }], ports: [{ port: 80 }, { port: 90, endPort: 95 }, { protocol: 'UDP', port: 53 }] },
        { to: [{ namespaceSelector: sel({ ns: 'x' }) }], ports: [{ port: 'serve-80-tcp' }] },
        { to: [{ namespaceSelector: {} }, { ipBlock: { cidr: '10.244.2.0/24' } }, { ipBlock: { cidr: '10.244.1.12/32' } }], ports: [{ port: 82 }] },
      ],
    });
    const other = tableFor([Y_A2]);
    // Both ways the first step (new sets, chains, rules, counters; rewritten chains) goes in the
    // netlink batch too, not through nft (nlcommands.ts): the listings below compare it.
    for (const [a, b] of [[current, other], [other, current]] as const) expect(parseCommands(TABLE, diffPlan(a, b).before.trimEnd().split('\n'))).toBeDefined();
    expect([...other.elements.get('s.y.y-a.eg2.nets4')!.keys()].sort()).toEqual(['10.244.1.11', '10.244.1.12/32', '10.244.1.21', '10.244.2.0/24']);
    try {
      expect(await dp.apply(current)).toMatchObject({ full: true });
      const full = await listed();
      const r = await dp.apply(other);
      expect(r).toMatchObject({ changed: true, full: false, mayDeny: true });
      const viaNetlink = await listed();
      const list: Probe[] = [
        ['x/b', 'tcp', 'x/a', 81],
        ['y/a', 'tcp', 'x/b', 80],
        ['y/a', 'tcp', 'x/b', 81],
        ['y/a', 'tcp', 'y/b', 80],
      ];
      expect(show(list, await probe(list))).toEqual(['x/b -> x/a tcp/81: reply', 'y/a -> x/b tcp/80: reply', 'y/a -> x/b tcp/81: blocked', 'y/a -> y/b tcp/80: blocked']);
      await nft(fullText(other));
      expect(viaNetlink).toEqual(await listed());
      // And back: the kernel matches the full load of `current` again.
      dp.invalidate();
      await dp.apply(other);
      expect(await dp.apply(current)).toMatchObject({ full: false });
      expect(await listed()).toEqual(full);
      expect(show(list, await probe(list))).toEqual(['x/b -> x/a tcp/81: blocked', 'y/a -> x/b tcp/80: blocked', 'y/a -> x/b tcp/81: reply', 'y/a -> y/b tcp/80: reply']);
      // A refused batch (deleting an element someone else already removed) fails the apply; the next is full.
      await inNs(NODE, 'nft', ['delete', 'element', 'inet', 'skiff-policy', 'ingress4', '{ 10.244.1.11 }']);
      await expect(dp.apply(other)).rejects.toThrow(/refused a batch: errno 2/);
      expect(await dp.apply(other)).toMatchObject({ full: true });
      // The periodic check: answered by the ruleset generation while only our writes moved it;
      // someone else's commit (the table deleted) is seen.
      expect(await dp.present()).toBe(true);
      await inNs(NODE, 'nft', ['delete', 'table', 'inet', 'skiff-policy']);
      expect(await dp.present()).toBe(false);
      await nft(fullText(current));
    } finally {
      dp.close();
    }
  });

  it('policy.logDenied: a denied connection reaches the NFLOG reader once, its retransmits never; the counter counts it once', async (ctx) => {
    const { addon, error } = loadNetnsAddon();
    if (!addon) return ctx.skip(`netns addon: ${error}`);
    const logged = render(desiredState(inputs([X_A, Y_A]), { nodeName: 'local' }), { logDenied: true });
    await nft(fullText(logged));
    const seen: DeniedPacket[] = [];
    const reader = await listenDenied((p) => seen.push(p), { open: () => addon.inNetns(`/run/netns/${NODE}`, () => new RawNetlinkSocket(12, { recvBufferSize: 1 << 20, sendBufferSize: 1 << 16 })) });
    try {
      // Ingress denied at x/a (a SYN, and its retransmit 1 s later), egress denied at y/a, one allowed.
      const list: Probe[] = [
        ['x/b', 'tcp', 'x/a', 81],
        ['y/a', 'udp', 'x/b', 80],
        ['x/b', 'tcp', 'x/a', 80],
      ];
      expect(show(list, await probe(list))).toEqual(['x/b -> x/a tcp/81: blocked', 'y/a -> x/b udp/80: blocked', 'x/b -> x/a tcp/80: reply']);
      await new Promise((res) => setTimeout(res, 300));
      const strip = ({ srcPort, ...p }: DeniedPacket): Omit<DeniedPacket, 'srcPort'> => (expect(srcPort).toBeGreaterThan(1023), p);
      expect(seen.map(strip).sort((a, b) => a.direction.localeCompare(b.direction))).toEqual([
        { direction: 'egress', src: pod('y/a').ip, dst: pod('x/b').ip, protocol: 'UDP', dstPort: 80 },
        { direction: 'ingress', src: pod('x/b').ip, dst: pod('x/a').ip, protocol: 'TCP', dstPort: 81 },
      ]);
      const packets = async (name: string): Promise<number> =>
        (JSON.parse((await inNs(NODE, 'nft', ['-j', 'list', 'counter', 'inet', 'skiff-policy', name])).stdout) as { nftables: { counter?: { packets: number } }[] }).nftables.find((o) => o.counter)!.counter!.packets;
      expect([await packets('drop-in.x.a'), await packets('drop-out.y.a')]).toEqual([1, 1]);
    } finally {
      reader.close();
      await nft(fullText(current));
    }
  });

  it('a full load over the live table replaces it in one transaction; established flows are accepted before any lookup; SCTP rules load', async () => {
    // A full load over the live table is one atomic replace.
    await nft(fullText(current));
    const list: Probe[] = [['x/b', 'tcp', 'x/a', 80]];
    expect(show(list, await probe(list))).toEqual(['x/b -> x/a tcp/80: reply']);
    const listed = (await inNs(NODE, 'nft', ['list', 'chain', 'inet', 'skiff-policy', 'egress'])).stdout;
    expect(listed).toContain('ct state established,related accept');
    expect(listed.indexOf('established')).toBeLessThan(listed.indexOf('vmap'));
    // SCTP rules load (this kernel has no SCTP sockets to probe them with) and isolate for TCP.
    const sctp = policy('x', 'sctp', { podSelector: sel({ pod: 'b' }), ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }, { protocol: 'SCTP', port: 85, endPort: 90 }] }] });
    const withSctp = render(desiredState(inputs([X_A, Y_A, sctp]), { nodeName: 'local' }));
    await nft(diffText(current, withSctp));
    expect((await inNs(NODE, 'nft', ['list', 'chain', 'inet', 'skiff-policy', 'r.x.sctp.in0'])).stdout).toContain('meta l4proto . th dport @s.x.sctp.in0.ports accept');
    expect((await inNs(NODE, 'nft', ['list', 'set', 'inet', 'skiff-policy', 's.x.sctp.in0.ports'])).stdout).toMatch(/sctp \. 80,\s+sctp \. 85-90/);
    const tcpToB: Probe[] = [['x/a', 'tcp', 'x/b', 80]];
    expect(show(tcpToB, await probe(tcpToB))).toEqual(['x/a -> x/b tcp/80: blocked']);
    await nft(diffText(withSctp, current));
  });
});

describe.skipIf(skip)('policy table presence (the periodic check)', () => {
  const ns = `${P}pr`;
  afterAll(() => cleanupPrefix(`${P}pr`));

  it('sees the table by its chains, and its absence', async () => {
    cleanupPrefix(`${P}pr`);
    await addNetns(ns);
    const dp = new PolicyDataplane(async (cmd, args, input) => (await inNs(ns, cmd, args, input)).stdout);
    expect(await dp.present()).toBe(false);
    // Another table of the family with chains is not ours.
    await inNs(ns, 'nft', ['-f', '-'], 'add table inet other\nadd chain inet other forward\n');
    expect(await dp.present()).toBe(false);
    await inNs(ns, 'nft', ['-f', '-'], 'add table inet skiff-policy\nadd chain inet skiff-policy forward { type filter hook forward priority 0 ; }\n');
    expect(await dp.present()).toBe(true);
    await inNs(ns, 'nft', ['delete', 'table', 'inet', 'skiff-policy']);
    expect(await dp.present()).toBe(false);
  });
});
