// Scenario 1b: DNS through agent restarts where no other node can answer: a one-node cluster,
// and a host-network client (a process in the node's own namespace, whose queries never take the
// pod fallback path). The agent is SIGKILLed and rolled with SIGTERM as in restart.ts while a pod
// and the node itself query the cluster DNS IP; the sockets the previous agent leaves with its
// holder (dns/server/handoff.ts) queue the queries until the next agent answers them. A query
// fails only when every try (3, 2 s apart, as a resolver) went unanswered.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addNetns } from '../../test/support/netns.js';
import { sliceObject, startCluster } from './cluster.js';
import { addPod, loop } from './restart.js';
import { PREFIX, progress, sleep } from './support.js';

const P = `${PREFIX}-r1`;
const log = (m: string): void => progress('restart-one-node', m);

export interface RestartOneNodeResult {
  restart_one_node_failed_queries: number;
  restart_one_node_queries: number;
  restart_hostnet_failed_queries: number;
  restart_hostnet_queries: number;
}

const DIG = 'while :; do echo "r=$(dig @10.96.0.10 +time=2 +tries=3 +short web.default.svc.cluster.local A 2>&1 | xargs)"; sleep 0.1; done';

export async function runRestartOneNode(kills: number, rolls: number): Promise<RestartOneNodeResult> {
  const c = await startCluster(P, 241, {}, { compiled: true });
  const procs: ChildProcess[] = [];
  try {
    const list = JSON.parse(readFileSync(join(c.dir, 'net.d', '10-skiff.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
    const conf = JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] });
    const client = `${P}-c0`;
    await addNetns(client);
    await addPod(c, client, 'client', conf);
    c.api.store.update('endpointslices', { ...sliceObject('web', ['10.244.0.5']), metadata: { name: 'web-x', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } } });
    const pod = { ok: 0, failed: 0 };
    const host = { ok: 0, failed: 0 };
    let counting = false;
    const count = (t: { ok: number; failed: number }) => (l: string): void => {
      if (!counting) return;
      if (/(^r=| )10\.96\.0\.20$/.test(l.trim())) t.ok++;
      else {
        t.failed++;
        log(`failed: ${l.slice(0, 100)}`);
      }
    };
    procs.push(loop(client, DIG, count(pod)), loop(c.ns, DIG, count(host)));
    for (let i = 0; i < 100 && (pod.ok === 0 || host.ok === 0); i++) {
      counting = true;
      await sleep(200);
      if (pod.failed || host.failed) pod.ok = pod.failed = host.ok = host.failed = 0;
    }
    if (pod.ok === 0 || host.ok === 0) throw new Error(`no steady DNS before the restarts: pod ${JSON.stringify(pod)} host ${JSON.stringify(host)}`);
    pod.ok = pod.failed = host.ok = host.failed = 0;
    for (let i = 0; i < kills + rolls; i++) {
      const sig = i < kills ? 'SIGKILL' : 'SIGTERM';
      const t = performance.now();
      await c.restartAgent(sig);
      log(`${sig} #${i < kills ? i + 1 : i - kills + 1}: ready again in ${Math.round(performance.now() - t)} ms; pod ${pod.ok}/${pod.failed} host ${host.ok}/${host.failed} (ok/failed)`);
      await sleep(2000);
    }
    // Queries sent during the last restart may still be retrying.
    await sleep(7000);
    counting = false;
    log(`done: pod ${pod.failed} failed of ${pod.ok + pod.failed}; host network ${host.failed} failed of ${host.ok + host.failed}`);
    return {
      restart_one_node_failed_queries: pod.failed,
      restart_one_node_queries: pod.ok + pod.failed,
      restart_hostnet_failed_queries: host.failed,
      restart_hostnet_queries: host.ok + host.failed,
    };
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await c.close();
  }
}
