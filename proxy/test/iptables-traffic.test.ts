// The iptables fallback with real traffic, started through createProxy as the agent does: it
// must remove the nftables table a previous run left, then serve ClusterIP and NodePort. The
// same suite runs with each flavour of iptables; the auto detection has its own test.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../common/config.js';
import { Health } from '../../common/health.js';
import { MemoryCache } from '../../common/watch/store.js';
import { missing } from '../../test/support/env.js';
import { endpoint, service, slice } from '../fixtures.js';
import { createProxy } from '../index.js';
import { ExecNft } from '../nft/backend.js';
import { NftDataplane } from '../nft/dataplane.js';
import { nodeCtx } from '../fixtures.js';
import { IptablesDataplane } from '../iptables/dataplane.js';
import { toolsOf, type IptablesMode } from '../iptables/mode.js';
import { NODE_IP, POD_GW, Topology, nsRunner } from './topology.js';
import { inNs } from '../../test/support/netns.js';
import { until } from '../../test/support/until.js';

const tools = ['legacy', 'nft'].flatMap((m) => [`iptables-${m}-restore`, `iptables-${m}-save`]);
const skip = missing('proxy iptables traffic', { root: true, tools: ['nft', 'curl', ...tools] });

describe.skipIf(skip).each(['legacy', 'nft'] as const)('iptables proxy with real traffic (%s)', (mode: IptablesMode) => {
  const topo = new Topology(`skiffpx-i${mode[0]}-`);
  const cache = new MemoryCache();
  const ac = new AbortController();
  const run = nsRunner(topo.node);
  let component: ReturnType<typeof createProxy>;
  let running: Promise<void>;

  beforeAll(async () => {
    await topo.create();
    await Promise.all([topo.addPod('p1', '10.244.1.11'), topo.addPod('p2', '10.244.1.12'), topo.addPod('p3', '10.244.1.13')]);
    // Rules from an earlier nftables run, which switching backends must remove.
    await new NftDataplane(new ExecNft(run), [4]).full(new Map(), nodeCtx);
    expect(await topo.nft(['list', 'tables'])).toContain('table ip skiff');

    cache.upsert('services', 'ns/web', service('ns', 'web', { type: 'NodePort', ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }] }));
    cache.upsert('endpointslices', 'ns/web-abc', slice('ns', 'web', [endpoint('10.244.1.11'), endpoint('10.244.1.12')]));
    cache.upsert('services', 'ns/empty', service('ns', 'empty', { clusterIPs: ['10.96.0.20'] }));
    cache.markSynced('services');
    cache.markSynced('endpointslices');
    const config = parseConfig({ nodeName: 'node-a', proxy: { backend: 'iptables', iptablesMode: mode, minSyncPeriod: 0 } });
    component = createProxy({ config, cache, log: pino({ level: 'silent' }), health: new Health(), api: { patchNodeAnnotations: async () => undefined, patchNodeCondition: async () => undefined } }, { run, healthCheckHost: '127.0.0.1' });
    running = component.run(ac.signal);
    await until('iptables rules', async () => (await topo.curlFrom(topo.client, 'http://10.96.0.10/', 1)).startsWith('p'));
  }, 60_000);

  afterAll(async () => {
    ac.abort();
    await running?.catch(() => undefined);
    topo.destroy();
  });

  it('removed the nftables table when it started, and wrote its rules with this flavour only', async () => {
    expect(await topo.nft(['list', 'tables'])).not.toContain('table ip skiff');
    const other = mode === 'legacy' ? 'nft' : 'legacy';
    expect((await inNs(topo.node, toolsOf(mode, 4).save, [])).stdout).toContain(':SKIFF-SERVICES');
    expect((await inNs(topo.node, toolsOf(other, 4).save, [])).stdout).not.toContain('SKIFF');
  });

  it('ClusterIP balances over both endpoints, masquerading outside clients', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 16; i++) {
      const body = await topo.curlFrom(topo.client, 'http://10.96.0.10/');
      expect(body).toMatch(new RegExp(`^p[12] ${POD_GW}$`));
      seen.add(body.split(' ')[0]!);
    }
    expect([...seen].sort()).toEqual(['p1', 'p2']);
    expect(await topo.curlFrom(topo.podNs('p3'), 'http://10.96.0.10/')).toMatch(/^p[12] 10\.244\.1\.13$/);
  });

  it('NodePort and the no-endpoints reject', async () => {
    expect(await topo.curlFrom(topo.client, `http://${NODE_IP}:30080/`)).toMatch(/^p[12] /);
    expect(await topo.curlFrom(topo.client, 'http://10.96.0.20/')).toBe('exit 7'); // refused, not timed out
  });

  it('follows endpoint changes', async () => {
    cache.upsert('endpointslices', 'ns/web-abc', slice('ns', 'web', [endpoint('10.244.1.12')]));
    await until('endpoint change', async () => {
      const bodies = await Promise.all([1, 2, 3, 4, 5, 6].map(() => topo.curlFrom(topo.client, 'http://10.96.0.10/')));
      return bodies.every((b) => b.startsWith('p2'));
    });
  });

  it('cleanup removes every SKIFF chain and jump', async () => {
    ac.abort();
    await running;
    await component.cleanup();
    const save = (await inNs(topo.node, toolsOf(mode, 4).save, [])).stdout;
    expect(save).not.toContain('SKIFF');
  });
});

describe.skipIf(skip)('iptables flavour detection (auto)', () => {
  const topo = new Topology('skiffpx-id-');
  const run = nsRunner(topo.node);
  const hint = (m: IptablesMode): Promise<unknown> => inNs(topo.node, toolsOf(m, 4).cmd, ['-w', '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
  const unhint = (m: IptablesMode): Promise<unknown> => inNs(topo.node, toolsOf(m, 4).cmd, ['-w', '-t', 'mangle', '-X', 'KUBE-IPTABLES-HINT']);
  beforeAll(() => topo.create());
  afterAll(() => topo.destroy());

  it("follows kubelet's hint chain, else the flavour holding rules, else legacy; cleanup clears both", async () => {
    expect(await new IptablesDataplane(run, [4]).modeInUse()).toBe('legacy');
    await hint('nft');
    expect(await new IptablesDataplane(run, [4]).modeInUse()).toBe('nft');
    await unhint('nft');
    await hint('legacy');
    expect(await new IptablesDataplane(run, [4]).modeInUse()).toBe('legacy');
    await unhint('legacy');
    // Rules another tool wrote with nft make nft the host's flavour.
    await inNs(topo.node, toolsOf('nft', 4).cmd, ['-w', '-A', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'ACCEPT']);
    const dp = new IptablesDataplane(run, [4]);
    expect(await dp.modeInUse()).toBe('nft');
    await dp.full(new Map(), nodeCtx);
    // A run in the other flavour left rules too; cleanup removes skiff's from both, and only skiff's.
    await new IptablesDataplane(run, [4], 'legacy').full(new Map(), nodeCtx);
    for (const m of ['legacy', 'nft'] as const) expect((await inNs(topo.node, toolsOf(m, 4).save, [])).stdout).toContain(':SKIFF-SERVICES');
    await dp.cleanup();
    for (const m of ['legacy', 'nft'] as const) expect((await inNs(topo.node, toolsOf(m, 4).save, [])).stdout).not.toContain('SKIFF');
    expect((await inNs(topo.node, toolsOf('nft', 4).save, [])).stdout).toContain('--dport 9 -j ACCEPT');
  });
});
