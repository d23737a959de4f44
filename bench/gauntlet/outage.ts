// Scenario 3: the API server goes away for N seconds; while it is gone the cluster changes and its
// history is compacted, so the agent's resume gets 410 and it must relist. Serving must not stop
// (DNS keeps answering from the cache, the proxy's and overlay's nft tables stay), and after the
// return the agent's view (/status: services, endpoints, peers) must equal the API's.
import { startFakeApiServer } from '../../sandbox/apiserver/index.js';
import { inNs } from '../../test/support/netns.js';
import { NODE, query, serviceObject, sliceObject, startCluster, type Cluster } from './cluster.js';
import { getInNs, PREFIX, progress, sleep, until } from './support.js';

const P = `${PREFIX}-ou`;
const log = (m: string): void => progress('outage', m);

export interface OutageResult {
  apiserver_outage_converged: boolean;
  outage_failed_queries: number;
  outage_converge_ms: number | null;
}

async function tables(c: Cluster): Promise<string[]> {
  return (await inNs(c.ns, 'nft', ['list', 'tables'])).stdout.split('\n').filter(Boolean).sort();
}

interface AgentView {
  services: number;
  endpoints: number;
  peers: number;
}

async function agentView(c: Cluster): Promise<AgentView | undefined> {
  try {
    const s = JSON.parse(await getInNs(c.ns, 'http://127.0.0.1:10249/status')) as { services: number; endpoints: number; peers: unknown[] };
    return { services: s.services, endpoints: s.endpoints, peers: s.peers.length };
  } catch {
    return undefined;
  }
}

function apiView(c: Cluster): AgentView {
  const st = c.api.store;
  const endpoints = st.list('endpointslices').items.reduce((n, s) => n + ((s as { endpoints?: { addresses: string[] }[] }).endpoints ?? []).reduce((m, e) => m + e.addresses.length, 0), 0);
  return { services: st.list('services').items.length, endpoints, peers: st.list('nodes').items.length - 1 };
}

export async function runOutage(seconds: number): Promise<OutageResult> {
  const c = await startCluster(P, 248);
  let failed = 0;
  let probing = true;
  try {
    c.api.store.create('services', serviceObject('gone', '10.96.0.21'));
    c.api.store.create('endpointslices', sliceObject('gone', ['10.244.0.7']));
    await until('gone.default resolves', async () => ((await query(c.nodeIP, 'gone.default.svc.cluster.local'))?.addresses[0] === '10.96.0.21' ? true : undefined), 20_000, 200);
    const before = await tables(c);
    log(`agent ready; nft tables in the node: ${before.join(', ')}`);
    // Steady probe: a Service that exists throughout must answer every time, outage or not.
    let sent = 0;
    const prober = (async () => {
      while (probing) {
        sent++;
        const a = await query(c.nodeIP, 'web.default.svc.cluster.local', 'A', 2000);
        if (!a || a.addresses[0] !== '10.96.0.20') failed++;
        await sleep(200);
      }
    })();
    const port = c.api.port;
    const store = c.api.store;
    await c.api.close();
    log(`API server down for ${seconds} s`);
    // The cluster moves on while the agent cannot see it.
    store.delete('services', 'gone', 'default');
    store.delete('endpointslices', 'gone-x', 'default');
    store.create('services', serviceObject('new1', '10.96.0.22'));
    store.create('endpointslices', sliceObject('new1', ['10.244.0.8', '10.244.0.9']));
    store.create('nodes', {
      metadata: { name: 'node-1', annotations: { 'skiff.io/vtep-mac': '0a:5a:00:00:00:01', 'skiff.io/public-ip': '100.64.0.1' } },
      spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] },
      status: { addresses: [{ type: 'InternalIP', address: '100.64.0.1' }], conditions: [{ type: 'Ready', status: 'True' }] },
    });
    store.patch('endpointslices', 'web-x', { endpoints: [{ addresses: ['10.244.0.5'], conditions: { ready: true }, nodeName: NODE }] }, { namespace: 'default' });
    store.compact();
    let lostTables = false;
    for (let t = 0; t < seconds; t += 5) {
      await sleep(Math.min(5, seconds - t) * 1000);
      if ((await tables(c)).join() !== before.join()) lostTables = true;
      if (c.agent.proc.exitCode !== null) throw new Error(`agent exited during the outage (${c.agent.proc.exitCode})`);
    }
    const failedDuring = failed;
    const back = performance.now();
    c.api = await startFakeApiServer({ host: c.hostIP, port, store, bookmarkIntervalMs: 1000 });
    log(`API server back (history compacted); ${failedDuring}/${sent} probes failed while it was down; tables ${lostTables ? 'CHANGED' : 'kept'}`);
    const want = apiView(c);
    let convergeMs: number | null = null;
    try {
      await until(
        'agent view = API view',
        async () => {
          const v = await agentView(c);
          if (!v || v.services !== want.services || v.endpoints !== want.endpoints || v.peers !== want.peers) return undefined;
          const n = await query(c.nodeIP, 'new1.default.svc.cluster.local');
          const g = await query(c.nodeIP, 'gone.default.svc.cluster.local');
          return n?.addresses[0] === '10.96.0.22' && g?.rcode === 'NXDOMAIN' ? true : undefined;
        },
        120_000,
        250,
      );
      convergeMs = Math.round(performance.now() - back);
    } catch (e) {
      log(`${(e as Error).message}: agent ${JSON.stringify(await agentView(c))} vs API ${JSON.stringify(want)}`);
    }
    const relists = c.api.requests.filter((r) => !/[?&]watch=/.test(r.url) && r.method === 'GET').length;
    log(`converged: ${convergeMs !== null} in ${convergeMs ?? '-'} ms after the return (${relists} list requests); view ${JSON.stringify(want)}`);
    probing = false;
    await prober;
    const after = await tables(c);
    return {
      apiserver_outage_converged: convergeMs !== null && failed === 0 && !lostTables && after.join() === before.join(),
      outage_failed_queries: failed,
      outage_converge_ms: convergeMs,
    };
  } finally {
    probing = false;
    await c.close();
  }
}
