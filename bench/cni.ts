// `npm run bench -- cni [--runs N] [--seconds S] [--rounds R] [--profile]`: skiff's ADD/DEL latency against the
// reference bridge + host-local plugins, run the same way in the same run, 50 parallel ADDs, and iperf3 pod-to-pod across two nodes
// against node-to-node on the same underlay and against flannel's VXLAN datapath built by hand on the same
// underlay (bridge + veth + VXLAN with static route/neighbour/FDB, no agent), and pod-to-pod between two
// nodes with cni.directRouting on (plain routing, no encapsulation). Last stdout line: one JSON object.
//
// Plugins are started two ways, both for skiff and the reference. The headline keys (add_ratio,
// del_ratio, parallel50_add_p99_ms) start each plugin as a runtime does: spawned by a process
// already in the node's namespace, each of a parallel batch from its own thread (NodeRuntime and
// bench/cni-runtime.c; containerd and CRI-O live in the node's namespace and spawn the plugin). The `_ip_netns_exec` keys start each one with
// `ip netns exec <node>`, as this bench did before: that adds a mount namespace, a sysfs remount
// and a second exec per call (~3 ms quiet, far more under load and in parallel), the same for both
// plugins, which pulls every ratio toward 1 and sets the parallel p99 by itself.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { projectRoot } from '../common/self.js';
import { addNetns, cleanupPrefix, inNs, sh } from '../test/support/netns.js';
import { buildShim, cniExec, type CniCall, NodeAgent, pluginEnv, SharedNodes, tempDir } from '../test/cni/support/harness.js';

const P = 'skiffcni-bn';
type BenchNode = { readonly name: string; readonly ns: string; readonly ip: string; readonly podCIDR: string };
const NODES: readonly [BenchNode, BenchNode] = [
  { name: 'b1', ns: `${P}-n1`, ip: '192.168.78.1', podCIDR: '10.97.0.0/20' },
  { name: 'b2', ns: `${P}-n2`, ip: '192.168.78.2', podCIDR: '10.97.16.0/20' },
];
// A second two-node cluster on the same switch and subnet with cni.directRouting on: its pod
// traffic is plainly routed, measured in the same rounds as the VXLAN pair above.
const DIRECT_NODES: readonly [BenchNode, BenchNode] = [
  { name: 'd1', ns: `${P}-d1`, ip: '192.168.78.3', podCIDR: '10.97.32.0/20' },
  { name: 'd2', ns: `${P}-d2`, ip: '192.168.78.4', podCIDR: '10.97.48.0/20' },
];

const log = (s: string): void => void process.stderr.write(`${s}\n`);

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = process.hrtime.bigint();
  const v = await fn();
  return [Number(process.hrtime.bigint() - t) / 1e6, v];
}

function iperf(serverNs: string, clientNs: string, ip: string, seconds: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = spawn('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-1', '-p', '5299'], { stdio: 'ignore' });
    setTimeout(() => {
      try {
        const out = execFileSync('ip', ['netns', 'exec', clientNs, 'iperf3', '-c', ip, '-p', '5299', '-t', String(seconds), '-O', '1', '-J'], { encoding: 'utf8', timeout: (seconds + 15) * 1000 });
        const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
        resolve(j.end.sum_received.bits_per_second / 1e9);
      } catch (e) {
        reject(e);
      } finally {
        server.kill('SIGKILL');
      }
    }, 400);
  });
}

/**
 * flannel's VXLAN datapath as flannel + the reference bridge plugin leave it, built by hand on the same
 * switch: two node namespaces with a bridge holding the pod gateway, a pod veth (MTU 1450) on it and a
 * VXLAN device with the other node's route, neighbour and FDB entry. No netfilter rules, so it is a
 * lower bound of flannel's per-packet cost: what the overlay itself costs on this machine.
 */
async function flannelPath(sw: string): Promise<{ clientNs: string; serverNs: string; serverIP: string }> {
  const nodes = [1, 2].map((i) => ({ ns: `${P}-f${i}`, pod: `${P}-fp${i}`, ip: `192.168.78.${10 + i}`, gw: `10.98.${i}.1`, podIP: `10.98.${i}.2` }));
  for (const [i, n] of nodes.entries()) {
    await addNetns(n.ns);
    await addNetns(n.pod);
    await sh('ip', ['link', 'add', 'eth0', 'netns', n.ns, 'type', 'veth', 'peer', 'name', `fport${i}`, 'netns', sw]);
    await inNs(sw, 'ip', ['link', 'set', `fport${i}`, 'master', 'sw0', 'up']);
    await sh('ip', ['link', 'add', 'eth0', 'netns', n.pod, 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'vpod', 'netns', n.ns, 'mtu', '1450']);
    const batch = [
      `addr add ${n.ip}/24 dev eth0`,
      'link set eth0 up',
      'link add cni0 type bridge',
      `addr add ${n.gw}/24 dev cni0`,
      'link set cni0 up',
      'link set vpod master cni0 up',
      `link add flannel.1 type vxlan id 1 dev eth0 local ${n.ip} dstport 8472 nolearning`,
      'link set flannel.1 mtu 1450 up',
    ];
    for (const b of batch) await inNs(n.ns, 'ip', b.split(' '));
    await inNs(n.ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await inNs(n.pod, 'ip', ['addr', 'add', `${n.podIP}/24`, 'dev', 'eth0']);
    await inNs(n.pod, 'ip', ['link', 'set', 'eth0', 'up']);
    await inNs(n.pod, 'ip', ['route', 'add', 'default', 'via', n.gw]);
  }
  const mac = (ns: string): string => (JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show', 'flannel.1'], { encoding: 'utf8' })) as { address: string }[])[0]!.address;
  for (const [i, n] of nodes.entries()) {
    const peer = nodes[1 - i]!;
    const peerMac = mac(peer.ns);
    const vtep = peer.gw.replace(/\.1$/, '.0');
    await inNs(n.ns, 'ip', ['route', 'add', peer.gw.replace(/\.1$/, '.0/24'), 'via', vtep, 'dev', 'flannel.1', 'onlink']);
    await inNs(n.ns, 'ip', ['neigh', 'replace', vtep, 'lladdr', peerMac, 'dev', 'flannel.1', 'nud', 'permanent']);
    await inNs(n.ns, 'bridge', ['fdb', 'append', peerMac, 'dev', 'flannel.1', 'dst', peer.ip, 'self', 'permanent']);
  }
  return { clientNs: nodes[0]!.pod, serverNs: nodes[1]!.pod, serverIP: nodes[1]!.podIP };
}

/** Two skiff nodes on the switch, each running the real cni component; their agents join `agents`. */
async function startCluster(sw: string, dir: string, nodes: readonly BenchNode[], directRouting: boolean, agents: NodeAgent[]): Promise<void> {
  const shared = new SharedNodes();
  const nodeObjs = shared.nodes;
  for (const n of nodes) {
    const port = `port-${n.name}`;
    await addNetns(n.ns);
    await sh('ip', ['link', 'add', 'eth0', 'netns', n.ns, 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
    await inNs(sw, 'ip', ['link', 'set', port, 'master', 'sw0', 'up']);
    await inNs(n.ns, 'ip', ['addr', 'add', `${n.ip}/24`, 'dev', 'eth0']);
    await inNs(n.ns, 'ip', ['link', 'set', 'eth0', 'up']);
    mkdirSync(join(dir, n.name), { recursive: true });
    nodeObjs.set(n.name, { name: n.name, uid: n.name, podCIDRs: [n.podCIDR], addresses: [{ type: 'InternalIP', address: n.ip }], labels: {}, annotations: {}, ready: true });
  }
  for (const n of nodes) {
    const config = {
      nodeName: n.name,
      clusterCIDRs: ['10.97.0.0/16'],
      stateDir: join(dir, n.name, 'state'),
      runDir: join(dir, n.name, 'run'),
      cni: { confDir: join(dir, n.name, 'net.d'), binDir: join(dir, 'nobin'), directRouting },
    };
    agents.push(shared.attach(n.name, new NodeAgent(n.ns, { mode: 'agent', socketPath: join(dir, n.name, 'run', 'cni.sock'), config })));
  }
  await Promise.all([...shared.agents.values()].map((a) => a.waitFor('ready', 60_000)));
  const routed = (): boolean => execFileSync('ip', ['-n', nodes[0]!.ns, 'route', 'show', nodes[1]!.podCIDR], { encoding: 'utf8' }).includes('via');
  for (let i = 0; i < 100 && !routed(); i++) await new Promise((r) => setTimeout(r, 100));
}

const pluginConf = (dir: string, node: string): string => {
  const list = JSON.parse(readFileSync(join(dir, node, 'net.d', '10-skiff.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: object[] };
  return JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] });
};

/** One pod on each node of a pair: iperf3's client on the first, its server on the second. */
async function podPair(dir: string, shim: string, nodes: readonly [BenchNode, BenchNode], tag: string): Promise<{ clientNs: string; serverNs: string; serverIP: string }> {
  const [pa, pb] = [`${P}-${tag}a`, `${P}-${tag}b`];
  await addNetns(pa);
  await addNetns(pb);
  const ra = await cniExec(nodes[0].ns, [shim], pluginEnv('ADD', `${tag}a`, `/var/run/netns/${pa}`), pluginConf(dir, nodes[0].name));
  const rb = await cniExec(nodes[1].ns, [shim], pluginEnv('ADD', `${tag}b`, `/var/run/netns/${pb}`), pluginConf(dir, nodes[1].name));
  if (ra.code !== 0 || rb.code !== 0) throw new Error(`pod ADD failed: ${ra.raw} ${rb.raw}`);
  return { clientNs: pa, serverNs: pb, serverIP: (rb.out.ips as { address: string }[])[0]!.address.split('/')[0]! };
}

/**
 * A stand-in for the container runtime on a node (bench/cni-runtime.c, built here): started per batch
 * inside the node namespace, it starts all of a batch's plugins at once and times each from just
 * before its spawn to its exit, so its own start through `ip netns exec` is outside the figure.
 */
class NodeRuntime {
  private next = 0;

  constructor(
    private readonly ns: string,
    private readonly binary: string,
    private readonly dir: string,
  ) {}

  static build(dir: string): string {
    const out = join(dir, 'cni-runtime');
    execFileSync('cc', ['-O2', '-pthread', '-o', out, join(projectRoot, 'bench', 'cni-runtime.c')]);
    return out;
  }

  async run(reqs: readonly { argv: readonly string[]; env: Record<string, string | undefined>; stdin: string }[]): Promise<[number, CniCall][]> {
    const dirs = reqs.map((r) => {
      const d = join(this.dir, `req${this.next++}`);
      mkdirSync(d, { recursive: true });
      const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...r.env };
      writeFileSync(join(d, 'argv'), r.argv.map((a) => `${a}\0`).join(''));
      writeFileSync(join(d, 'env'), Object.entries(env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}\0`).join(''));
      writeFileSync(join(d, 'stdin'), r.stdin);
      return d;
    });
    const { stdout } = await inNs(this.ns, this.binary, dirs);
    const lines = stdout.trim().split('\n');
    if (lines.length !== dirs.length) throw new Error(`cni-runtime answered ${lines.length} of ${dirs.length}: ${stdout}`);
    return lines.map((line, i) => {
      const [, code, ms] = line.split(' ');
      const raw = readFileSync(join(dirs[i]!, 'stdout'), 'utf8');
      rmSync(dirs[i]!, { recursive: true, force: true });
      let out: Record<string, unknown> = {};
      try {
        if (raw.trim()) out = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        out = { unparsable: raw };
      }
      return [Number(ms), { code: Number(code), out, raw }];
    });
  }

  async exec(argv: readonly string[], env: Record<string, string | undefined>, stdin: string): Promise<[number, CniCall]> {
    return (await this.run([{ argv, env, stdin }]))[0]!;
  }
}

const wall = (): number => performance.timeOrigin + performance.now();

/**
 * `--profile`: sequential ADDs then DELs through the shim with the agent's stage marks, printed as
 * p50 per stage. The bench's own spawn and exit times frame the agent's marks: before `accepted`
 * is the harness's `ip netns exec`, the shim's start and its connect; after `replied` the relay,
 * the shim's exit and the harness's. Two controls price the harness: `ip netns exec <node> true`,
 * and the shim alone answering a request it refuses by itself (no CNI_COMMAND, no connect).
 */
async function profile(dir: string, node: string, shim: string, conf: string, traceFile: string, runs: number): Promise<void> {
  const pods: string[] = [];
  for (let i = 0; i < runs; i++) {
    pods.push(`${P}-s${i}`);
    await addNetns(pods[i]!);
  }
  const control = { nsExec: [] as number[], shimAlone: [] as number[] };
  for (let i = 0; i < runs; i++) {
    control.nsExec.push((await timed(() => cniExec(node, ['true'], {}, '')))[0]);
    control.shimAlone.push((await timed(() => cniExec(node, [shim], {}, '{}')))[0]);
  }
  const frames: { command: string; start: number; end: number }[] = [];
  for (const command of ['ADD', 'DEL']) {
    for (let i = 0; i < runs; i++) {
      const start = wall();
      const r = await cniExec(node, [shim], pluginEnv(command, `s${i}`, `/var/run/netns/${pods[i]}`), conf);
      if (r.code !== 0) throw new Error(`skiff ${command} failed: ${r.raw}`);
      frames.push({ command, start, end: wall() });
    }
  }
  // 50 in parallel, started by a runtime stand-in: the agent's own time per ADD and how it spreads.
  const runtime = new NodeRuntime(node, NodeRuntime.build(dir), join(dir, 'rt'));
  const par: string[] = [];
  for (let i = 0; i < 50; i++) {
    par.push(`${P}-p${i}`);
    await addNetns(par[i]!);
  }
  const burstStart = wall();
  const parMs = (await runtime.run(par.map((ns, i) => ({ argv: [shim], env: pluginEnv('ADD', `p${i}`, `/var/run/netns/${ns}`), stdin: conf })))).map(([ms]) => ms);
  const traces = readFileSync(traceFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { command: string; marks: [string, number][] });
  const report: Record<string, Record<string, number>> = { control: { ip_netns_exec_true: round(pct(control.nsExec, 50), 3), shim_alone: round(pct(control.shimAlone, 50), 3) } };
  for (const command of ['ADD', 'DEL']) {
    const fs = frames.filter((f) => f.command === command);
    const ts = traces.filter((t) => t.command === command).slice(0, runs);
    if (ts.length !== fs.length) throw new Error(`${command}: ${ts.length} traces for ${fs.length} calls`);
    const stages = new Map<string, number[]>();
    const add = (k: string, v: number): void => void (stages.get(k) ?? stages.set(k, []).get(k)!).push(v);
    for (const [i, f] of fs.entries()) {
      let prev: [string, number] = ['spawn', f.start];
      for (const m of [...ts[i]!.marks, ['exited', f.end] as [string, number]]) {
        add(`${prev[0]}->${m[0]}`, m[1] - prev[1]);
        prev = m;
      }
      add('total', f.end - f.start);
      add('agent(accepted->replied)', ts[i]!.marks.at(-1)![1] - ts[i]!.marks[0]![1]);
    }
    report[command] = Object.fromEntries([...stages].map(([k, v]) => [k, round(pct(v, 50), 3)]));
  }
  const burst = traces.slice(-50);
  const stageOf = (t: { marks: [string, number][] }, a: string, b: string): number => t.marks.find((m) => m[0] === b)![1] - t.marks.find((m) => m[0] === a)![1];
  report.parallel50 = {
    runtime_p50: round(pct(parMs, 50), 3),
    runtime_p99: round(pct(parMs, 99), 3),
    last_accepted_after_start: round(Math.max(...burst.map((t) => t.marks[0]![1])) - burstStart, 3),
    last_replied_after_start: round(Math.max(...burst.map((t) => t.marks.at(-1)![1])) - burstStart, 3),
    agent_p50: round(pct(burst.map((t) => t.marks.at(-1)![1] - t.marks[0]![1]), 50), 3),
    agent_p99: round(pct(burst.map((t) => t.marks.at(-1)![1] - t.marks[0]![1]), 99), 3),
    ipam_wait_p99: round(pct(burst.map((t) => stageOf(t, 'parsed', 'ipam-lock')), 99), 3),
    ipam_total_p99: round(pct(burst.map((t) => stageOf(t, 'parsed', 'ipam')), 99), 3),
  };
  for (const [k, v] of Object.entries(report)) {
    log(`${k}:`);
    for (const [stage, ms] of Object.entries(v)) log(`  ${stage.padEnd(34)} ${ms.toFixed(3)} ms`);
  }
  process.stdout.write(JSON.stringify({ bench: 'cni-profile', runs, p50_ms: report }) + '\n');
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { profile: { type: 'boolean', default: false }, runs: { type: 'string', default: '40' }, seconds: { type: 'string', default: '3' }, rounds: { type: 'string', default: '5' } }, strict: true });
  const runs = Number(values.runs);
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  cleanupPrefix(P);
  const dir = tempDir('bench');
  const agents: NodeAgent[] = [];
  try {
    const shim = buildShim(dir);
    // Underlay: a switch namespace with a bridge, both nodes on it (MTU 1500).
    const sw = `${P}-sw`;
    await addNetns(sw);
    await inNs(sw, 'ip', ['link', 'add', 'sw0', 'type', 'bridge']);
    await inNs(sw, 'ip', ['link', 'set', 'sw0', 'up']);
    const traceFile = join(dir, 'trace.jsonl');
    // The agents inherit it: each request they serve appends its stage marks (cni/trace.ts).
    if (values.profile) process.env.SKIFF_CNI_TRACE = traceFile;
    await startCluster(sw, dir, NODES, false, agents);
    const skiffConf = pluginConf(dir, NODES[0].name);
    if (values.profile) {
      await profile(dir, NODES[0].ns, shim, skiffConf, traceFile, runs);
      return;
    }
    const refConf = JSON.stringify({
      cniVersion: '1.0.0',
      name: 'skiffref',
      type: 'bridge',
      bridge: 'skiffref0',
      isGateway: true,
      mtu: 1450,
      hairpinMode: true,
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.96.200.0/22' }]], dataDir: join(dir, 'host-local') },
    });
    const node = NODES[0].ns;
    const podNs = async (tag: string, count: number): Promise<string[]> => {
      const names = Array.from({ length: count }, (_, i) => `${P}-${tag}${i}`);
      for (const n of names) await addNetns(n);
      return names;
    };

    // Sequential ADD/DEL, interleaved so both plugins and both launchers see the same machine load.
    const runtime = new NodeRuntime(node, NodeRuntime.build(dir), join(dir, 'rt'));
    type Launch = (argv: readonly string[], env: Record<string, string | undefined>, stdin: string) => Promise<[number, CniCall]>;
    const launchers: Record<'rt' | 'nsexec', Launch> = {
      rt: (argv, env, stdin) => runtime.exec(argv, env, stdin),
      nsexec: (argv, env, stdin) => timed(() => cniExec(node, argv, env, stdin)),
    };
    const plugins = { skiff: { argv: [shim], conf: skiffConf }, ref: { argv: ['/usr/lib/cni/bridge'], conf: refConf } };
    type Key = `${'skiff' | 'ref'}_${'rt' | 'nsexec'}`;
    const keys: Key[] = ['skiff_rt', 'ref_rt', 'skiff_nsexec', 'ref_nsexec'];
    const pods = Object.fromEntries(await Promise.all(keys.map(async (k, j) => [k, await podNs(`${'srSR'[j]}`, runs)] as const))) as Record<Key, string[]>;
    const lat = Object.fromEntries(keys.map((k) => [k, { add: [] as number[], del: [] as number[] }])) as Record<Key, { add: number[]; del: number[] }>;
    for (const command of ['ADD', 'DEL'] as const) {
      for (let i = 0; i < runs; i++) {
        for (const k of keys) {
          const [plugin, how] = k.split('_') as ['skiff' | 'ref', 'rt' | 'nsexec'];
          const [ms, r] = await launchers[how](plugins[plugin].argv, pluginEnv(command, `${k}${i}`, `/var/run/netns/${pods[k][i]}`), plugins[plugin].conf);
          if (r.code !== 0) throw new Error(`${k} ${command} failed: ${r.raw}`);
          lat[k][command === 'ADD' ? 'add' : 'del'].push(ms);
        }
      }
    }
    for (const how of ['rt', 'nsexec'] as const) {
      const [s, r] = [lat[`skiff_${how}`], lat[`ref_${how}`]];
      log(`sequential (${how === 'rt' ? 'runtime-like' : 'ip netns exec'}) ADD p50 skiff=${pct(s.add, 50).toFixed(1)}ms ref=${pct(r.add, 50).toFixed(1)}ms; DEL p50 skiff=${pct(s.del, 50).toFixed(1)}ms ref=${pct(r.del, 50).toFixed(1)}ms`);
    }

    // 50 parallel ADDs, once per launcher.
    const parallel = async (how: 'rt' | 'nsexec', tag: string): Promise<number[]> => {
      const par = await podNs(tag, 50);
      const reqs = par.map((ns, i) => ({ argv: [shim], env: pluginEnv('ADD', `${tag}${i}`, `/var/run/netns/${ns}`), stdin: skiffConf }));
      // The stand-in starts the 50 together; `ip netns exec` ones are 50 processes started at once.
      const results = how === 'rt' ? await runtime.run(reqs) : await Promise.all(reqs.map((r) => launchers.nsexec(r.argv, r.env, r.stdin)));
      const out = results.map(([t, r]) => {
        if (r.code !== 0) throw new Error(`parallel ADD failed: ${r.raw}`);
        return t;
      });
      log(`50 parallel ADDs (${how === 'rt' ? 'runtime-like' : 'ip netns exec'}): p50=${pct(out, 50).toFixed(1)}ms p99=${pct(out, 99).toFixed(1)}ms`);
      return out;
    };
    // The floor under that figure on this machine: 50 shims started together that answer by
    // themselves (no CNI_COMMAND), so no agent, socket or kernel work.
    const floor = (await runtime.run(Array.from({ length: 50 }, () => ({ argv: [shim], env: {}, stdin: '{}' })))).map(([ms]) => ms);
    log(`50 parallel shims answering alone (runtime-like): p99=${pct(floor, 99).toFixed(1)}ms`);
    const parLat = await parallel('rt', 'p');
    const parLatNs = await parallel('nsexec', 'q');

    // Throughput: one pod per node, pod-to-pod over VXLAN vs node-to-node on the underlay.
    const vxlanPods = await podPair(dir, shim, NODES, 't');
    await startCluster(sw, dir, DIRECT_NODES, true, agents);
    const directPods = await podPair(dir, shim, DIRECT_NODES, 'd');
    const directRoute = execFileSync('ip', ['-n', DIRECT_NODES[0].ns, 'route', 'show', DIRECT_NODES[1].podCIDR], { encoding: 'utf8' }).trim();
    if (!directRoute.includes(`via ${DIRECT_NODES[1].ip} dev eth0`)) throw new Error(`direct pair not routed directly: ${directRoute}`);
    // Alternating short rounds and medians: on a shared 2-core machine a single long run measures
    // the neighbours' load more than the datapath.
    const flannel = await flannelPath(`${P}-sw`);
    const under: number[] = [];
    const overlay: number[] = [];
    const reference: number[] = [];
    const direct: number[] = [];
    for (let r = 0; r < rounds; r++) {
      under.push(await iperf(NODES[1].ns, NODES[0].ns, NODES[1].ip, seconds));
      overlay.push(await iperf(vxlanPods.serverNs, vxlanPods.clientNs, vxlanPods.serverIP, seconds));
      reference.push(await iperf(flannel.serverNs, flannel.clientNs, flannel.serverIP, seconds));
      direct.push(await iperf(directPods.serverNs, directPods.clientNs, directPods.serverIP, seconds));
      log(
        `iperf3 round ${r + 1}: underlay=${under.at(-1)!.toFixed(2)} pod-to-pod=${overlay.at(-1)!.toFixed(2)} flannel-path=${reference.at(-1)!.toFixed(2)} direct=${direct.at(-1)!.toFixed(2)} Gbit/s`,
      );
    }
    const underlay = pct(under, 50);
    const podToPod = pct(overlay, 50);
    const flannelGbps = pct(reference, 50);
    const directGbps = pct(direct, 50);

    const out = {
      bench: 'cni',
      skiff_add_p50_ms: round(pct(lat.skiff_rt.add, 50)),
      ref_add_p50_ms: round(pct(lat.ref_rt.add, 50)),
      add_ratio: round(pct(lat.skiff_rt.add, 50) / pct(lat.ref_rt.add, 50), 3),
      skiff_del_p50_ms: round(pct(lat.skiff_rt.del, 50)),
      ref_del_p50_ms: round(pct(lat.ref_rt.del, 50)),
      del_ratio: round(pct(lat.skiff_rt.del, 50) / pct(lat.ref_rt.del, 50), 3),
      parallel50_add_p99_ms: round(pct(parLat, 99)),
      parallel50_shim_alone_p99_ms: round(pct(floor, 99)),
      skiff_add_p50_ms_ip_netns_exec: round(pct(lat.skiff_nsexec.add, 50)),
      ref_add_p50_ms_ip_netns_exec: round(pct(lat.ref_nsexec.add, 50)),
      add_ratio_ip_netns_exec: round(pct(lat.skiff_nsexec.add, 50) / pct(lat.ref_nsexec.add, 50), 3),
      del_ratio_ip_netns_exec: round(pct(lat.skiff_nsexec.del, 50) / pct(lat.ref_nsexec.del, 50), 3),
      parallel50_add_p99_ms_ip_netns_exec: round(pct(parLatNs, 99)),
      pod_to_pod_gbps: round(podToPod, 3),
      underlay_gbps: round(underlay, 3),
      throughput_ratio: round(podToPod / underlay, 3),
      flannel_path_gbps: round(flannelGbps, 3),
      flannel_path_ratio: round(podToPod / flannelGbps, 3),
      direct_gbps: round(directGbps, 3),
      direct_throughput_ratio: round(directGbps / underlay, 3),
    };
    process.stdout.write(JSON.stringify(out) + '\n');
    if (process.env.SKIFF_BENCH_HOLD) await new Promise((r) => setTimeout(r, Number(process.env.SKIFF_BENCH_HOLD) * 1000));
  } finally {
    for (const a of agents) a.kill();
    cleanupPrefix(P);
    rmSync(dir, { recursive: true, force: true });
  }
}
