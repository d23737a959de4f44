// Scenario: a DaemonSet-style rolling upgrade under load, then a SIGKILL in the middle of a big
// full sync. Three nodes on one switch (192.168.235.0/24, the overlay's underlay), each with its
// own veth to the host for the API server, a server pod (python http.server) and a client pod.
// Every client sends HTTP through the ClusterIP and through the next node's NodePort and queries
// DNS, resolver-like (3 tries, 2 s apart), while each node's agent in turn is replaced by a new
// process (SIGTERM, start, ready, 3 s, next: maxUnavailable 1). Then 10,000 more Services arrive,
// node-0's agent is restarted and SIGKILLed while its full sync's nft load runs, and started once
// more: the Services that existed keep answering, and the new agent must bring the last of the
// 10,000 into node-0's datapath.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { projectRoot } from '../../common/self.js';
import { startFakeApiServer, type FakeApiServer, type KubeObject } from '../../sandbox/apiserver/index.js';
import { addNetns, cleanupPrefix, inNs, sh } from '../../test/support/netns.js';
import { waitReady } from './cluster.js';
import { agentConfig, nodeNamespace, PREFIX, progress, sleep, startAgent, stopAgent, tempDir, until, type AgentProcess } from './support.js';

const P = `${PREFIX}-ro`;
const NODES = 3;
const log = (m: string): void => progress('rollout', m);
const underlayIP = (i: number): string => `192.168.235.${i + 1}`;
const NODE_PORT = 30080;
/** Three agents and nine client loops on a shared 2-core machine start slowly. */
const READY_MS = 240_000;

export interface RolloutResult {
  rollout_failed_requests: number;
  rollout_failed_queries: number;
  rollout_requests: number;
  rollout_queries: number;
  kill_during_sync_failed_requests: number;
  kill_during_sync_requests: number;
  /** From the second start after the SIGKILL to the last new Service answering through node-0. */
  kill_during_sync_converged_ms: number | null;
}

interface Node {
  readonly i: number;
  readonly name: string;
  readonly ns: string;
  readonly dir: string;
  readonly config: string;
  agent: AgentProcess;
}

function addPod(api: FakeApiServer, node: Node, ns: string, id: string): Promise<string> {
  const list = JSON.parse(readFileSync(join(node.dir, 'net.d', '10-skiff.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
  const conf = JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] });
  const pod = api.store.create('pods', { metadata: { name: id, namespace: 'default' }, spec: { nodeName: node.name, containers: [{ name: 'c', image: 'x' }] } });
  const uid = (pod.metadata as { uid: string }).uid;
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', node.ns, join(projectRoot, 'dist', 'bin', 'skiff-cni')], {
      env: {
        PATH: process.env.PATH!, SKIFF_CNI_SOCKET: join(node.dir, 'run', 'cni.sock'), CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: `/var/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni',
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${id};K8S_POD_UID=${uid}`,
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('close', (code) => (code === 0 ? resolve((JSON.parse(out) as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!) : reject(new Error(`ADD ${id}: ${out}`))));
    p.stdin.on('error', () => undefined);
    p.stdin.end(conf);
  });
}

const nodeObject = (i: number): KubeObject => ({
  metadata: { name: `node-${i}` },
  spec: { podCIDR: `10.244.${i}.0/24`, podCIDRs: [`10.244.${i}.0/24`] },
  status: { addresses: [{ type: 'InternalIP', address: underlayIP(i) }], conditions: [{ type: 'Ready', status: 'True' }] },
});

const serviceObject = (name: string, ip: string, o: { namespace?: string; nodePort?: number } = {}): KubeObject => ({
  metadata: { name, namespace: o.namespace ?? 'default' },
  spec: {
    type: o.nodePort ? 'NodePort' : 'ClusterIP',
    clusterIP: ip,
    clusterIPs: [ip],
    ipFamilies: ['IPv4'],
    ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', ...(o.nodePort ? { nodePort: o.nodePort } : {}) }],
  },
});

const sliceObject = (svc: string, eps: readonly { ip: string; node: string }[]): KubeObject => ({
  metadata: { name: `${svc}-x`, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: eps.map((e) => ({ addresses: [e.ip], conditions: { ready: true, serving: true, terminating: false }, nodeName: e.node })),
});

/** A shell loop in a pod printing one result per line. */
function loop(ns: string, script: string, onLine: (l: string) => void): ChildProcess {
  const p = spawn('ip', ['netns', 'exec', ns, 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  createInterface({ input: p.stdout! }).on('line', onLine);
  return p;
}

/** The agent's `nft -f` child, if one runs now (the full sync's big load). */
function nftLoadRunning(agentPid: number): boolean {
  for (const t of readdirSync(`/proc/${agentPid}/task`)) {
    let children: string;
    try {
      children = readFileSync(`/proc/${agentPid}/task/${t}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const c of children.split(' ').filter(Boolean)) {
      try {
        const argv = readFileSync(`/proc/${c}/cmdline`, 'utf8').split('\0');
        if (argv[0]?.endsWith('nft') && argv.includes('-f')) return true;
      } catch {
        /* gone */
      }
    }
  }
  return false;
}

export async function runRollout(extraServices = 10_000): Promise<RolloutResult> {
  cleanupPrefix(P);
  const dir = tempDir('ro');
  const sw = `${P}-sw`;
  await addNetns(sw);
  await inNs(sw, 'ip', ['link', 'add', 'sw0', 'type', 'bridge']);
  await inNs(sw, 'ip', ['link', 'set', 'sw0', 'up']);
  const hostIP = (i: number): string => `192.168.${236 + i}.1`;
  for (let i = 0; i < NODES; i++) {
    const ns = `${P}-n${i}`;
    await nodeNamespace(ns, `${P}-h${i}`, hostIP(i), `192.168.${236 + i}.2`);
    await sh('ip', ['link', 'add', 'eth1', 'netns', ns, 'type', 'veth', 'peer', 'name', `port${i}`, 'netns', sw]);
    await inNs(sw, 'ip', ['link', 'set', `port${i}`, 'master', 'sw0', 'up']);
    await inNs(ns, 'ip', ['addr', 'add', `${underlayIP(i)}/24`, 'dev', 'eth1']);
    await inNs(ns, 'ip', ['link', 'set', 'eth1', 'up']);
    // The API server listens on node-0's host address; the host takes it on any interface.
    if (i > 0) await inNs(ns, 'ip', ['route', 'add', `${hostIP(0)}/32`, 'dev', 'eth0']);
  }
  const api = await startFakeApiServer({ host: hostIP(0), port: 0, bookmarkIntervalMs: 1000 });
  const kubeconfig = join(dir, 'kubeconfig');
  api.writeKubeconfig(kubeconfig);
  for (let i = 0; i < NODES; i++) api.store.create('nodes', nodeObject(i));
  api.store.create('services', serviceObject('kube-dns', '10.96.0.10', { namespace: 'kube-system' }));
  api.store.create('services', serviceObject('web', '10.96.0.20', { nodePort: NODE_PORT }));
  const nodes: Node[] = [];
  const procs: ChildProcess[] = [];
  try {
    for (let i = 0; i < NODES; i++) {
      const nodeDir = join(dir, `node-${i}`);
      mkdirSync(nodeDir);
      const config = agentConfig(nodeDir, `node-${i}`, kubeconfig, { clusterCIDRs: ['10.244.0.0/16'], dns: { upstreams: ['127.0.0.1:5399'], workers: 1 } });
      const ns = `${P}-n${i}`;
      nodes.push({ i, name: `node-${i}`, ns, dir: nodeDir, config, agent: startAgent(ns, nodeDir, config) });
    }
    for (const n of nodes) await waitReady(n, READY_MS);
    const servers: { ip: string; node: string }[] = [];
    for (const n of nodes) {
      const s = `${P}-s${n.i}`;
      await addNetns(s);
      servers.push({ ip: await addPod(api, n, s, `server${n.i}`), node: n.name });
      procs.push(spawn('ip', ['netns', 'exec', s, 'python3', '-m', 'http.server', '8080', '--bind', '0.0.0.0', '--directory', join(n.dir, 'net.d')], { stdio: 'ignore' }));
      await addNetns(`${P}-c${n.i}`);
      await addPod(api, n, `${P}-c${n.i}`, `client${n.i}`);
    }
    api.store.create('endpointslices', sliceObject('web', servers));

    type Phase = 'warm' | 'rollout' | 'kill';
    let phase: Phase | undefined;
    const count = { warm: { http: [0, 0], dns: [0, 0] }, rollout: { http: [0, 0], dns: [0, 0] }, kill: { http: [0, 0], dns: [0, 0] } };
    const samples = new Map<string, number>();
    const tally = (kind: 'http' | 'dns', ok: boolean, line: string): void => {
      if (!phase) return;
      count[phase][kind][ok ? 0 : 1]!++;
      if (!ok) samples.set(`${phase}:${kind}:${line.slice(0, 60)}`, (samples.get(`${phase}:${kind}:${line.slice(0, 60)}`) ?? 0) + 1);
    };
    for (const n of nodes) {
      const client = `${P}-c${n.i}`;
      const nodePort = `http://${underlayIP((n.i + 1) % NODES)}:${NODE_PORT}/`;
      const curl = (url: string, tag: string): string =>
        `while :; do curl -s -o /dev/null -w "${tag} %{http_code} %{exitcode}\\n" --max-time 5 ${url} || true; sleep 0.2; done`;
      procs.push(
        loop(client, curl('http://10.96.0.20/', `node-${n.i} clusterip`), (l) => tally('http', / 200 0$/.test(l), l)),
        loop(client, curl(nodePort, `node-${n.i} nodeport`), (l) => tally('http', / 200 0$/.test(l), l)),
        loop(client, 'while :; do echo "r=$(dig @10.96.0.10 +time=2 +tries=3 +short web.default.svc.cluster.local A 2>&1 | xargs)"; sleep 0.3; done', (l) =>
          tally('dns', /(^r=| )10\.96\.0\.20$/.test(l.trim()), `node-${n.i} ${l}`),
        ),
      );
    }
    // Warm-up: every loop answering before anything counts.
    phase = 'warm';
    await until('steady traffic from every client', async () => {
      const w = count.warm;
      if (w.http[1] || w.dns[1]) {
        w.http = [0, 0];
        w.dns = [0, 0];
        return undefined;
      }
      return w.http[0]! >= 6 * NODES && w.dns[0]! >= 2 * NODES ? true : undefined;
    }, 60_000, 1000);
    log(`steady load from ${NODES} clients (servers ${servers.map((s) => s.ip).join(', ')}); rolling the agents`);

    phase = 'rollout';
    for (const n of nodes) {
      const t = performance.now();
      await stopAgent(n.agent, 'SIGTERM');
      n.agent = startAgent(n.ns, n.dir, n.config);
      await waitReady(n, READY_MS);
      log(`${n.name}: new agent ready in ${Math.round(performance.now() - t)} ms; http ${count.rollout.http.join('/')} dns ${count.rollout.dns.join('/')} (ok/failed)`);
      await sleep(3000);
    }
    await sleep(3000);

    // 10,000 more Services (one endpoint each, spread over the three servers), then the SIGKILL.
    phase = undefined;
    const ipOf = (k: number): string => `10.97.${Math.floor(k / 250)}.${(k % 250) + 1}`;
    for (let k = 0; k < extraServices; k++) {
      api.store.create('services', serviceObject(`bulk-${k}`, ipOf(k)));
      api.store.create('endpointslices', sliceObject(`bulk-${k}`, [servers[k % NODES]!]));
    }
    const last = `http://${ipOf(extraServices - 1)}/`;
    const answers = async (ns: string, url: string): Promise<boolean> => {
      try {
        return (await inNs(ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', url])).stdout.trim() === '200';
      } catch {
        return false;
      }
    };
    await until('the 10,000 Services in every node', async () => ((await Promise.all(nodes.map((n) => answers(`${P}-c${n.i}`, last)))).every(Boolean) ? true : undefined), 300_000, 1000);
    log(`${extraServices} more Services in every node's datapath; restarting node-0's agent and killing it during its full sync`);
    phase = 'kill';
    const n0 = nodes[0]!;
    await stopAgent(n0.agent, 'SIGTERM');
    // Every agent start re-reads the table and syncs in full; the bulk Service goes away only on
    // node-0's side of the store, so the new agent must also remove it from the kernel.
    n0.agent = startAgent(n0.ns, n0.dir, n0.config);
    const pid = n0.agent.proc.pid!;
    let killedInLoad = true;
    await until('the full sync nft load', () => (nftLoadRunning(pid) ? true : undefined), 120_000, 10).catch(() => {
      killedInLoad = false;
    });
    n0.agent.proc.kill('SIGKILL');
    await n0.agent.exited;
    log(`node-0's agent SIGKILLed ${killedInLoad ? 'while its full sync loaded the table' : '(no nft load seen within 120 s)'}; http ${count.kill.http.join('/')} so far`);
    await sleep(2000);
    // Meanwhile one of the bulk Services changes: the restarted agent must converge on the store.
    const moved = extraServices - 2;
    api.store.delete('endpointslices', `bulk-${moved}-x`, 'default');
    api.store.create('endpointslices', { ...sliceObject(`bulk-${moved}`, [servers[0]!]), metadata: { name: `bulk-${moved}-y`, namespace: 'default', labels: { 'kubernetes.io/service-name': `bulk-${moved}` } } });
    api.store.delete('services', `bulk-${extraServices - 1}`, 'default');
    const t = performance.now();
    n0.agent = startAgent(n0.ns, n0.dir, n0.config);
    await waitReady(n0, READY_MS);
    let convergedMs: number | null = null;
    try {
      await until(
        "node-0's datapath equal to the store",
        async () => ((await answers(`${P}-c0`, `http://${ipOf(moved)}/`)) && !(await answers(`${P}-c0`, last)) ? true : undefined),
        120_000,
        250,
      );
      convergedMs = Math.round(performance.now() - t);
    } catch {
      /* reported as null */
    }
    await sleep(2000);
    phase = undefined;
    log(`failure kinds: ${JSON.stringify(Object.fromEntries(samples))}`);
    const r = count.rollout;
    const k = count.kill;
    log(`done: rollout http ${r.http[1]} failed of ${r.http[0]! + r.http[1]!}, dns ${r.dns[1]} failed of ${r.dns[0]! + r.dns[1]!}; kill during sync http ${k.http[1]} failed of ${k.http[0]! + k.http[1]!}, converged in ${convergedMs ?? '-'} ms`);
    return {
      rollout_failed_requests: r.http[1]!,
      rollout_failed_queries: r.dns[1]!,
      rollout_requests: r.http[0]! + r.http[1]!,
      rollout_queries: r.dns[0]! + r.dns[1]!,
      kill_during_sync_failed_requests: k.http[1]!,
      kill_during_sync_requests: k.http[0]! + k.http[1]!,
      kill_during_sync_converged_ms: convergedMs,
    };
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    for (const n of nodes) await stopAgent(n.agent, 'SIGTERM', 10_000);
    await api.close();
    cleanupPrefix(P);
    if (!process.env.SKIFFG_KEEP) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`[gauntlet] kept ${dir}\n`);
  }
}
