// `npm run bench -- gauntlet [--only a,b] [--outage-seconds 60] [--scale-nodes 5000] ...`: the
// resilience and scale gauntlet. Each scenario runs alone in its own skiffg-* namespaces and
// cleans up; one that fails or is not run reports null for its fields. Progress on stderr; the
// last stdout line is one JSON object.
import { parseArgs } from 'node:util';
import { runCniChaos } from './gauntlet/cni-chaos.js';
import { runDnsFlap } from './gauntlet/dns-flap.js';
import { runFuzz } from './gauntlet/fuzz.js';
import { runOutage } from './gauntlet/outage.js';
import { runRestart } from './gauntlet/restart.js';
import { runRestartOneNode } from './gauntlet/restart-one-node.js';
import { runRollout } from './gauntlet/rollout.js';
import { runScale } from './gauntlet/scale.js';

const SCENARIOS = ['restart', 'rollout', 'cni-chaos', 'outage', 'fuzz', 'dns-flap', 'scale'] as const;
type Scenario = (typeof SCENARIOS)[number];

const FIELDS: Record<Scenario, string[]> = {
  restart: ['restart_failed_requests', 'restart_failed_queries', 'restart_one_node_failed_queries', 'restart_hostnet_failed_queries'],
  rollout: ['rollout_failed_requests', 'rollout_failed_queries', 'kill_during_sync_failed_requests'],
  'cni-chaos': ['cni_leaked_ips', 'cni_duplicate_ips', 'cni_leaked_links'],
  outage: ['apiserver_outage_converged'],
  fuzz: ['fuzz_crashes'],
  'dns-flap': [],
  scale: ['overlay_5000_nodes_cold_ms', 'overlay_one_node_change_ms', 'rss_mb_at_scale', 'watches_per_agent'],
};

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      only: { type: 'string' },
      'outage-seconds': { type: 'string', default: '60' },
      'scale-nodes': { type: 'string', default: '5000' },
      'scale-services': { type: 'string', default: '10000' },
      'scale-pods': { type: 'string', default: '150000' },
      'scale-disable': { type: 'string' },
      'fuzz-packets': { type: 'string', default: '100000' },
      'cni-calls': { type: 'string', default: '1000' },
      'rollout-services': { type: 'string', default: '10000' },
    },
  });
  const only = values.only ? values.only.split(',') : [...SCENARIOS];
  for (const s of only) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`--only: unknown scenario "${s}" (${SCENARIOS.join(', ')})`);
  if (process.getuid?.() !== 0) throw new Error('the gauntlet needs root (network namespaces)');
  const out: Record<string, unknown> = { bench: 'gauntlet' };
  for (const s of SCENARIOS) for (const f of FIELDS[s]) out[f] = null;
  const failures: string[] = [];
  const runners: Record<Scenario, () => Promise<Record<string, unknown>>> = {
    restart: async () => ({ ...(await runRestart(5, 5)), ...(await runRestartOneNode(5, 5)) }),
    rollout: async () => ({ ...(await runRollout(Number(values['rollout-services']))) }),
    'cni-chaos': async () => ({ ...(await runCniChaos(Number(values['cni-calls']))) }),
    outage: async () => ({ ...(await runOutage(Number(values['outage-seconds']))) }),
    fuzz: async () => ({ ...(await runFuzz(Number(values['fuzz-packets']))) }),
    'dns-flap': async () => ({ ...(await runDnsFlap()) }),
    scale: async () =>
      ({ ...(await runScale({ nodes: Number(values['scale-nodes']), services: Number(values['scale-services']), endpointsPerService: 10, pods: Number(values['scale-pods']), disable: values['scale-disable'] })) }),
  };
  for (const s of SCENARIOS) {
    if (!only.includes(s)) continue;
    const t = performance.now();
    try {
      Object.assign(out, await runners[s]());
      process.stderr.write(`[gauntlet] ${s} done in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
    } catch (e) {
      failures.push(s);
      process.stderr.write(`[gauntlet] ${s} FAILED: ${(e as Error).stack ?? String(e)}\n`);
    }
  }
  if (failures.length) out.failed_scenarios = failures;
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
