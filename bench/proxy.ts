// Service proxy at scale, in network namespaces (root): 10,000 Services x 10 endpoints through the
// real sync loop into a namespace "node". Measures the full sync (an agent start: a fresh process
// with a filled cache and no table, repeated in child processes because one figure on a shared
// 2-core machine swings by a quarter), single-endpoint update latency
// (cache write until `nft -f` has returned, i.e. the rule is live), the iptables backend's full
// sync, and HTTP requests/s with a new connection per request through a ClusterIP versus straight
// to the pod, with 10 and with 10,000 Services programmed. Last stdout line: the JSON result.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { parseConfig } from '../common/config.js';
import { Health } from '../common/health.js';
import type { EndpointSliceInfo, ServiceInfo } from '../common/types.js';
import { MemoryCache } from '../common/watch/store.js';
import { convert } from '../common/watch/convert.js';
import { IptablesDataplane } from '../proxy/iptables/dataplane.js';
import type { IptablesMode } from '../proxy/iptables/mode.js';
import { ExecNft } from '../proxy/nft/backend.js';
import { NftDataplane } from '../proxy/nft/dataplane.js';
import { NftSession } from '../common/nft/session.js';
import type { NfTablesBatches } from '../common/nft/batch.js';
import { Proxier } from '../proxy/proxier.js';
import { warmUp } from '../proxy/warmup.js';
import { nsBatches, nsRunner, Topology } from '../proxy/test/topology.js';
import { HTTP_LOAD, percentile } from './stats.js';

const progress = (msg: string): void => void process.stderr.write(`[bench proxy] ${msg}\n`);

/** nf_tables batches into a namespace's kernel tables, when the netns addon is built. */
function netnsBatches(node: string): NfTablesBatches | undefined {
  const { batches, error } = nsBatches(node);
  if (error) progress(`${error}: staged elements go through nft`);
  return batches;
}

const svcIP = (i: number): string => `10.96.${(i >> 8) & 255}.${i & 255}`;
const fakeIP = (n: number): string => `10.${100 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;

/** CPU used so far by this process's finished children (nft), in ms. */
const childCpuMs = (): number => readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ').slice(13, 15).reduce((a, b) => a + Number(b), 0) * 10;

interface FullSyncRun {
  readonly ms: number;
  /** The warm-up the agent runs while its caches fill, before the sync (not part of ms). */
  readonly warmUpMs: number;
  readonly agentCpuMs: number;
  readonly nftCpuMs: number;
}

/** One timed full sync by `proxier` after its warm-up, with the CPU it and its nft processes used. */
async function timedFullSync(proxier: Proxier): Promise<FullSyncRun> {
  const w = performance.now();
  await proxier.warmUp();
  const warmUpMs = Math.round(performance.now() - w);
  const cpu0 = process.cpuUsage();
  const nft0 = childCpuMs();
  const t = performance.now();
  await proxier.sync();
  const ms = performance.now() - t;
  const cpu = process.cpuUsage(cpu0);
  return { ms: Math.round(ms), warmUpMs, agentCpuMs: Math.round((cpu.user + cpu.system) / 1000), nftCpuMs: Math.round(childCpuMs() - nft0) };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
}

// The cache holds what the watch cache's converter makes of API objects, as in the agent (the
// objects' shapes are what V8 optimises the sync for).
function service(ns: string, name: string, ip: string): ServiceInfo {
  const spec = { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ipFamilies: ['IPv4'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }], selector: { app: name }, sessionAffinity: 'None' };
  return convert('services', { metadata: { name, namespace: ns, uid: `${ns}-${name}` }, spec, status: { loadBalancer: {} } }).value;
}

function slice(ns: string, svc: string, endpoints: readonly { ip: string; node: string }[]): EndpointSliceInfo {
  const eps = endpoints.map((e, i) => ({ addresses: [e.ip], conditions: { ready: true, serving: true, terminating: false }, nodeName: e.node, targetRef: { kind: 'Pod', namespace: ns, name: `${svc}-${i}` } }));
  const metadata = { name: `${svc}-abc`, namespace: ns, labels: { 'kubernetes.io/service-name': svc } };
  return convert('endpointslices', { metadata, addressType: 'IPv4', ports: [{ name: 'http', protocol: 'TCP', port: 8080 }], endpoints: eps }).value;
}

const benchEndpoints = (i: number, perService: number): { ip: string; node: string }[] => Array.from({ length: perService }, (_, e) => ({ ip: fakeIP(i * perService + e), node: `node-${e}` }));

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      services: { type: 'string', default: '10000' },
      'endpoints-per-service': { type: 'string', default: '10' },
      updates: { type: 'string', default: '200' },
      seconds: { type: 'string', default: '1' },
      rounds: { type: 'string', default: '12' },
      concurrency: { type: 'string', default: '8' },
      'skip-iptables': { type: 'boolean', default: false },
      /** Full syncs as one `delete table` + everything transaction instead of staged (for comparison). */
      'unstaged-full': { type: 'boolean', default: false },
      /** Elements per staged nft transaction (default STAGE_CHUNK), for tuning. */
      'stage-chunk': { type: 'string' },
      /** nft processes loading at once (default STAGE_PROCESSES), for tuning. */
      'stage-processes': { type: 'string' },
      /** Services for the iptables backend's full sync (at most --services). */
      'iptables-services': { type: 'string', default: '10000' },
      /** auto (as the agent: the namespace's flavour, legacy when it has none), legacy or nft. */
      'iptables-mode': { type: 'string', default: 'auto' },
      /** Full syncs measured in fresh processes besides the main one (an agent start each). */
      'cold-runs': { type: 'string', default: '4' },
      /** The staged full sync's elements through nft text instead of netlink, for comparison. */
      'text-elements': { type: 'boolean', default: false },
      /** Full syncs without the agent's warm-up (proxy/warmup.ts), for comparison. */
      'no-warm-up': { type: 'boolean', default: false },
      /** Internal: be one such process, syncing into this namespace's empty table. */
      'cold-child': { type: 'string' },
      /** pod: load from a pod (pod-to-Service, no masquerade); outside: from outside the cluster (masqueraded). */
      client: { type: 'string', default: 'pod' },
    },
  });
  const services = Number(values.services);
  const perService = Number(values['endpoints-per-service']);
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const conc = values.concurrency!;
  if (services < 11) throw new Error('--services must be at least 11');
  const coldChild = values['cold-child'];
  const log = pino({ level: 'silent' });
  const config = parseConfig({ nodeName: 'node-a', proxy: { minSyncPeriod: 0 } });
  const newCache = (): MemoryCache => {
    const c = new MemoryCache();
    for (const k of ['services', 'endpointslices', 'nodes'] as const) c.markSynced(k);
    // The Service real traffic goes to; the others point at addresses nobody uses.
    c.upsert('services', 'bench/web', service('bench', 'web', '10.97.0.10'));
    c.upsert('endpointslices', 'bench/web-abc', slice('bench', 'web', [{ ip: '10.244.1.11', node: 'node-a' }]));
    return c;
  };
  const addServices = (c: MemoryCache, from: number, to: number): void => {
    for (let i = from; i < to; i++) {
      c.upsert('services', `bench-${i % 100}/svc-${i}`, service(`bench-${i % 100}`, `svc-${i}`, svcIP(i)));
      c.upsert('endpointslices', `bench-${i % 100}/svc-${i}-abc`, slice(`bench-${i % 100}`, `svc-${i}`, benchEndpoints(i, perService)));
    }
  };
  const sessions: { close(): void }[] = [];
  const dataplanes: NftDataplane[] = [];
  const proxierFor = (node: string, c: MemoryCache): Proxier => {
    // The staged full sync's own timing (rendered / loaded / switched) goes to the progress lines.
    const stageLog = pino({ level: 'debug' }, { write: (line: string) => void (line.includes('staged full sync') && progress(`  ${line.trim()}`)) });
    const session = new NftSession(['ip', 'netns', 'exec', node, 'nft', '-i']);
    sessions.push(session);
    // As in the agent, the staged elements go over netlink (here a socket opened in the node's namespace).
    const batches = values['text-elements'] ? undefined : netnsBatches(node);
    if (batches) sessions.push(batches);
    const dataplane = new NftDataplane(new ExecNft(nsRunner(node), { session, batches }), [4], { staging: !values['unstaged-full'], log: stageLog, ...(values['stage-chunk'] ? { stageChunk: Number(values['stage-chunk']) } : {}), ...(values['stage-processes'] ? { stageProcesses: Number(values['stage-processes']) } : {}) });
    dataplanes.push(dataplane);
    return new Proxier({ cache: c, config, log, health: new Health(), dataplane, ...(values['no-warm-up'] ? {} : { warmUp }) });
  };
  const bigCache = (): MemoryCache => {
    const c = newCache();
    addServices(c, 0, services - 1);
    return c;
  };

  if (coldChild !== undefined) {
    // One agent start: the cache is filled before the first sync, as after the initial LISTs.
    const proxier = proxierFor(coldChild, bigCache());
    await new Promise((r) => setImmediate(r));
    const run = await timedFullSync(proxier);
    for (const s of sessions) s.close();
    process.stdout.write(JSON.stringify(run) + '\n');
    return;
  }

  const small = new Topology('skiffpx-b1-');
  const big = new Topology('skiffpx-b2-');
  try {
    progress('creating namespaces: one node with 10 Services, one with all of them');
    for (const topo of [small, big]) {
      await topo.create();
      await topo.addPod('p1', '10.244.1.11');
      await topo.addPod('p3', '10.244.1.13');
    }
    const smallCache = newCache();
    addServices(smallCache, 0, 9);
    await proxierFor(small.node, smallCache).sync();

    // Agent starts in fresh processes, into the big node's table (deleted before each).
    const runs: FullSyncRun[] = [];
    const childArgs = [...process.execArgv, process.argv[1]!, 'proxy', '--services', String(services), '--endpoints-per-service', String(perService), '--cold-child', big.node];
    for (const flag of ['stage-chunk', 'stage-processes'] as const) if (values[flag]) childArgs.push(`--${flag}`, values[flag]);
    for (const flag of ['unstaged-full', 'no-warm-up', 'text-elements'] as const) if (values[flag]) childArgs.push(`--${flag}`);
    const dropTable = (): void => void execFileSync('ip', ['netns', 'exec', big.node, 'nft', 'add table ip skiff; delete table ip skiff']);
    const report = (where: string): void => {
      const x = runs.at(-1)!;
      progress(`full sync ${where}: ${x.ms} ms (CPU: agent ${x.agentCpuMs} ms, nft ${x.nftCpuMs} ms; warm-up before it ${x.warmUpMs} ms)`);
    };
    for (let i = 0; i < Number(values['cold-runs']); i++) {
      dropTable();
      const out = await new Promise<string>((resolve, reject) => {
        const p = spawn(process.execPath, childArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
        let o = '';
        p.stdout.on('data', (d) => (o += d));
        p.on('close', (code) => (code === 0 ? resolve(o) : reject(new Error(`cold full sync exit ${code}`))));
      });
      runs.push(JSON.parse(out.trim().split('\n').at(-1)!) as FullSyncRun);
      report('in a fresh process');
    }
    dropTable();

    progress(`adding ${services} Services x ${perService} endpoints to the cache`);
    const cache = bigCache();
    await new Promise((r) => setImmediate(r));
    const proxier = proxierFor(big.node, cache);
    runs.push(await timedFullSync(proxier));
    report('in this process');
    const fullMs = median(runs.map((x) => x.ms));
    progress(`full sync of ${services} Services: median ${fullMs} ms of ${runs.length} (${runs.map((x) => x.ms).join(', ')})`);
    let t = performance.now();
    await proxier.sync();
    progress(`second sync (nothing changed): ${(performance.now() - t).toFixed(1)} ms`);
    const rss = process.memoryUsage().rss;

    const updates: number[] = [];
    const sub = cache.subscribe(['services', 'endpointslices'], (b) => proxier.onBatch(b));
    for (let u = 0; u < Number(values.updates); u++) {
      const i = (u * 7919) % (services - 1);
      const eps = benchEndpoints(i, perService);
      eps[u % perService] = { ip: fakeIP(3_000_000 + u), node: 'node-x' };
      const s = slice(`bench-${i % 100}`, `svc-${i}`, eps);
      t = performance.now();
      cache.upsert('endpointslices', `bench-${i % 100}/svc-${i}-abc`, s);
      await new Promise((r) => setImmediate(r));
      await proxier.sync();
      updates.push(performance.now() - t);
    }
    sub();
    updates.sort((a, b) => a - b);
    progress(`update p50 ${percentile(updates, 50).toFixed(1)} ms, p99 ${percentile(updates, 99).toFixed(1)} ms`);

    const load = async (topo: Topology, url: string, secs: number): Promise<number> => {
      const ns = values.client === 'outside' ? topo.client : topo.podNs('p3');
      const out = await new Promise<string>((resolve, reject) => {
        const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', HTTP_LOAD, url, conc, String(secs)], { stdio: ['ignore', 'pipe', 'inherit'] });
        let o = '';
        p.stdout.on('data', (d) => (o += d));
        p.on('close', (code) => (code === 0 ? resolve(o) : reject(new Error(`load generator exit ${code}`))));
      });
      const r = JSON.parse(out) as { rps: number; errors: number };
      if (r.errors > 0) progress(`${url}: ${r.errors} errors`);
      return r.rps;
    };
    // Many short rounds, rotating the order of the three paths. The ratios are medians of each
    // round's ratio: the two cores are shared, and a burst of background load then spoils a
    // round or two instead of whichever path it happened to hit.
    progress(`requests/s, ${rounds} rounds of ${seconds}s per path (client: ${values.client})`);
    const paths = [
      // Port 8081 (the same server): straight to 8080, these connections and the ClusterIP ones
      // (DNATed to 10.244.1.11:8080 from the same client) would share conntrack reply tuples, and
      // a new connection whose tuple is still held by a TIME_WAIT entry of the other path is
      // dropped and retried a second later.
      { name: 'direct', run: (secs: number) => load(big, 'http://10.244.1.11:8081/', secs) },
      { name: 'clusterip', run: (secs: number) => load(big, 'http://10.97.0.10/', secs) },
      { name: 'clusterip10', run: (secs: number) => load(small, 'http://10.97.0.10/', secs) },
    ];
    const perRound = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    for (const p of paths) await p.run(0.5); // warm-up
    for (let i = 0; i < rounds; i++) {
      for (let j = 0; j < paths.length; j++) {
        const p = paths[(i + j) % paths.length]!;
        perRound.get(p.name)!.push(await p.run(seconds));
      }
    }
    const rps = (name: string): number => perRound.get(name)!.reduce((a, b) => a + b, 0) / rounds;
    const ratio = (a: string, b: string): number => Number(median(perRound.get(a)!.map((x, i) => x / perRound.get(b)![i]!)).toFixed(3));
    progress(`  direct ${rps('direct').toFixed(0)}/s, clusterIP ${rps('clusterip').toFixed(0)}/s, clusterIP with 10 Services ${rps('clusterip10').toFixed(0)}/s`);

    let iptablesMs: number | null = null;
    let iptablesMode: string | null = null;
    let iptablesUpdateMs: number | null = null;
    const iptServices = Math.min(services, Number(values['iptables-services']));
    if (!values['skip-iptables']) {
      const run = nsRunner(small.node);
      const ipt = new IptablesDataplane(run, [4], values['iptables-mode'] as IptablesMode | 'auto');
      const iptCtx = { nodeName: 'node-a', clusterCIDRs: config.clusterCIDRs, serviceCIDRs: config.serviceCIDRs, nodePortAddresses: [], masqueradeAll: false };
      const ports = new Map([...proxier.programmed()].slice(0, iptServices));
      t = performance.now();
      // The flavour is detected inside the timed sync, as at an agent's first sync.
      await ipt.full(ports, iptCtx);
      iptablesMs = performance.now() - t;
      iptablesMode = await ipt.modeInUse();
      progress(`iptables backend (${iptablesMode}) full sync of ${iptServices} Services: ${iptablesMs.toFixed(0)} ms`);
      // One endpoint moves, as in the nftables update figures: a partial restore of its chains.
      const [key, sps] = [...ports].at(-1)!;
      const moved = sps.map((sp) => ({ ...sp, clusterEndpoints: [{ ...sp.clusterEndpoints[0]!, ip: fakeIP(3_500_000) }, ...sp.clusterEndpoints.slice(1)] }));
      t = performance.now();
      await ipt.partial([{ key, ports: moved }], iptCtx);
      iptablesUpdateMs = performance.now() - t;
      progress(`iptables backend: one endpoint change ${iptablesUpdateMs.toFixed(0)} ms`);
      await ipt.cleanup();
    }

    const r = (n: number): number => Math.round(n);
    const result = {
      bench: 'proxy',
      services,
      endpoints: services * perService,
      full_sync_ms: r(fullMs),
      full_sync_runs_ms: runs.map((x) => x.ms),
      full_sync_staged: !values['unstaged-full'] && dataplanes.every((d) => d.fallbacks === 0),
      update_p50_ms: Number(percentile(updates, 50).toFixed(1)),
      update_p99_ms: Number(percentile(updates, 99).toFixed(1)),
      iptables_full_sync_ms: iptablesMs === null ? null : r(iptablesMs),
      iptables_services: iptServices,
      iptables_mode: iptablesMode,
      iptables_update_ms: iptablesUpdateMs === null ? null : r(iptablesUpdateMs),
      rps_clusterip: r(rps('clusterip')),
      rps_direct: r(rps('direct')),
      datapath_ratio: ratio('clusterip', 'direct'),
      rps_at_10_services: r(rps('clusterip10')),
      rps_at_10k_services: r(rps('clusterip')),
      scaling_ratio: ratio('clusterip', 'clusterip10'),
      rss_mb: r(rss / 2 ** 20),
    };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    for (const s of sessions) s.close();
    small.destroy();
    big.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
