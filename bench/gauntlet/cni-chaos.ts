// Scenario 2, CNI chaos: a runtime stand-in makes random ADD/DEL calls through the real shim for a
// pool of pod sandboxes while the agent is SIGKILLed and restarted at random moments and some shim
// calls are themselves killed mid-flight. The runtime behaves like containerd: a failed ADD is
// followed by DEL (retried until it succeeds), and a sandbox's netns is destroyed after its DEL.
// Then one CNI GC with the live attachments, and the books are checked: every allocation belongs
// to a live pod, no two live pods share an address, every bridge port is a live pod's, and no
// temp or lock files are left behind.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../common/self.js';
import { hostVethName } from '../../cni/plugin/netdev.js';
import { rng } from '../../dns/testing/fuzz.js';
import { addNetns, inNs, sh } from '../../test/support/netns.js';
import { NODE, startCluster, waitReady, type Cluster } from './cluster.js';
import { PREFIX, progress, sleep, startAgent, stopAgent } from './support.js';

const P = `${PREFIX}-cc`;
const log = (m: string): void => progress('cni-chaos', m);

export interface ChaosResult {
  cni_leaked_ips: number;
  cni_duplicate_ips: number;
  cni_leaked_links: number;
  cni_orphaned_files: number;
  cni_broken_pods: number;
}

interface Slot {
  ns: string;
  gen: number;
  live?: { id: string; ip: string; pod: string };
  busy: boolean;
}

function shim(c: Cluster, env: Record<string, string>, stdin: string, killAfterMs?: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('ip', ['netns', 'exec', c.ns, join(projectRoot, 'dist', 'bin', 'skiff-cni')], {
      env: { PATH: process.env.PATH!, SKIFF_CNI_SOCKET: join(c.dir, 'run', 'cni.sock'), CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', ...env },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stdin.on('error', () => undefined);
    const t = killAfterMs === undefined ? undefined : setTimeout(() => p.kill('SIGKILL'), killAfterMs);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
    p.stdin.on('error', () => undefined); // a child that exits unread reports through its exit code
    p.stdin.end(stdin);
  });
}

export async function runCniChaos(calls: number): Promise<ChaosResult> {
  const c = await startCluster(P, 247);
  const r = rng(4711);
  let stop = false;
  try {
    const list = JSON.parse(readFileSync(join(c.dir, 'net.d', '10-skiff.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
    const conf = { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] };
    const stdin = JSON.stringify(conf);
    const slots: Slot[] = [];
    for (let i = 0; i < 24; i++) {
      slots.push({ ns: `${P}-p${i}`, gen: 0, busy: false });
      await addNetns(slots[i]!.ns);
    }
    const stats = { add: 0, addFailed: 0, del: 0, interrupted: 0, kills: 0, delRetries: 0 };
    const env = (s: Slot, cmd: string, id: string, pod: string, uid: string): Record<string, string> => ({
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: id,
      CNI_NETNS: `/var/run/netns/${s.ns}`,
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod};K8S_POD_UID=${uid}`,
    });
    const interrupt = (): number | undefined => {
      if (r() >= 0.1) return undefined;
      stats.interrupted++;
      return Math.floor(r() * 40);
    };
    // DEL until it succeeds (the runtime never gives up on a sandbox), then the sandbox goes.
    const teardown = async (s: Slot, id: string, pod: string, uid: string): Promise<void> => {
      for (let k = 0; ; k++) {
        const d = await shim(c, env(s, 'DEL', id, pod, uid), stdin, interrupt());
        if (d.code === 0) break;
        stats.delRetries++;
        await sleep(100);
      }
      try {
        c.api.store.delete('pods', pod, 'default');
      } catch {
        /* never created or already gone */
      }
      await sh('ip', ['netns', 'del', s.ns]);
      await addNetns(s.ns);
      s.live = undefined;
    };
    const op = async (s: Slot): Promise<void> => {
      if (s.live) {
        stats.del++;
        const live = s.live;
        const uid = (c.api.store.get('pods', live.pod, 'default').metadata as { uid: string }).uid;
        await teardown(s, live.id, live.pod, uid);
        return;
      }
      stats.add++;
      const gen = ++s.gen;
      const id = `${s.ns.slice(P.length + 1)}g${gen}`;
      const pod = `chaos-${id}`;
      const created = c.api.store.create('pods', { metadata: { name: pod, namespace: 'default' }, spec: { nodeName: NODE, containers: [{ name: 'c', image: 'x' }] } });
      const uid = (created.metadata as { uid: string }).uid;
      const a = await shim(c, env(s, 'ADD', id, pod, uid), stdin, interrupt());
      const ip = a.code === 0 ? (JSON.parse(a.out) as { ips: { address: string }[] }).ips[0]?.address.split('/')[0] : undefined;
      if (ip) s.live = { id, ip, pod };
      else {
        stats.addFailed++;
        const why = a.code === null ? 'interrupted' : a.out.replace(/"cniVersion":"[^"]*",?/, '').slice(0, 120);
        failures.set(why, (failures.get(why) ?? 0) + 1);
        await teardown(s, id, pod, uid);
        // A runtime backs off before it recreates a sandbox whose network failed.
        await sleep(300);
      }
    };
    const failures = new Map<string, number>();
    const killer = (async () => {
      while (!stop) {
        // Killed at a random moment of a busy period, restarted at once; the next kill only
        // once it is serving again, so most calls meet a live agent and some meet a dying one.
        await sleep(2000 + r() * 5000);
        if (stop) break;
        stats.kills++;
        await stopAgent(c.agent, 'SIGKILL');
        await sleep(r() * 1000);
        c.agent = startAgent(c.ns, c.dir, c.configPath);
        await waitReady(c);
      }
    })();
    let done = 0;
    let finished = 0;
    const worker = async (): Promise<void> => {
      while (done < calls) {
        const free = slots.filter((s) => !s.busy);
        const s = free[Math.floor(r() * free.length)]!;
        s.busy = true;
        done++;
        try {
          await op(s);
        } finally {
          s.busy = false;
        }
        if (++finished % 100 === 0) log(`${done} calls; ${JSON.stringify(stats)}`);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    stop = true;
    await killer;
    await waitReady(c);
    const live = slots.filter((s) => s.live).map((s) => s.live!);
    log(`chaos over: ${JSON.stringify(stats)}; ${live.length} live pods; running GC; failed ADDs: ${JSON.stringify(Object.fromEntries(failures))}`);
    const gc = await shim(c, { CNI_COMMAND: 'GC', CNI_PATH: '/usr/lib/cni' }, JSON.stringify({ ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': live.map((l) => ({ containerID: l.id, ifname: 'eth0' })) }));
    if (gc.code !== 0) log(`GC failed: ${gc.code} ${gc.out}`);

    // The books.
    const ipamDir = join(c.dir, 'state', 'ipam', list.name);
    const names = readdirSync(ipamDir);
    const orphaned = names.filter((n) => n.startsWith('.') || n === 'lock').length;
    const files = names.filter((n) => !n.startsWith('.') && !n.startsWith('last_reserved_ip') && n !== 'lock');
    const owner = new Map(files.map((f) => [f, (JSON.parse(readFileSync(join(ipamDir, f), 'utf8')) as { containerID: string }).containerID]));
    const liveIds = new Set(live.map((l) => l.id));
    const leakedIPs = [...owner].filter(([, id]) => !liveIds.has(id));
    const seen = new Map<string, number>();
    for (const l of live) seen.set(l.ip, (seen.get(l.ip) ?? 0) + 1);
    let duplicates = [...seen.values()].filter((n) => n > 1).length;
    // A live pod whose address is recorded for another container would be handed out twice.
    duplicates += live.filter((l) => owner.get(l.ip) !== undefined && owner.get(l.ip) !== l.id).length;
    let broken = 0;
    for (const s of slots.filter((x) => x.live)) {
      const j = JSON.parse((await inNs(s.ns, 'ip', ['-j', '-4', 'addr', 'show', 'dev', 'eth0']).catch(() => ({ stdout: '[]' }))).stdout) as { addr_info: { local: string }[] }[];
      if (!j[0]?.addr_info.some((a) => a.local === s.live!.ip) || owner.get(s.live!.ip) !== s.live!.id) broken++;
    }
    const ports = (JSON.parse((await inNs(c.ns, 'ip', ['-j', 'link', 'show', 'master', 'skiff0'])).stdout || '[]') as { ifname: string }[]).map((l) => l.ifname);
    const liveIfs = new Set(live.map((l) => hostVethName(l.id, 'eth0')));
    const leakedLinks = ports.filter((p) => !liveIfs.has(p)).length;
    if (leakedIPs.length) log(`leaked addresses: ${leakedIPs.map(([ip, id]) => `${ip}(${id})`).join(' ')}`);
    log(`after GC: ${files.length} allocations for ${live.length} live pods; leaked ${leakedIPs.length} IPs, ${leakedLinks} links, ${duplicates} duplicates, ${orphaned} orphaned files, ${broken} broken pods`);
    return { cni_leaked_ips: leakedIPs.length, cni_duplicate_ips: duplicates, cni_leaked_links: leakedLinks, cni_orphaned_files: orphaned, cni_broken_pods: broken };
  } finally {
    stop = true;
    await c.close();
  }
}
