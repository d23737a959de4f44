// The staged full sync against a real kernel: a new generation's sets filled by parallel nft
// processes, one switch transaction, the fallback when staging fails, and an agent restart
// over an existing table. Traffic checks that the switched table really serves.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../../test/support/env.js';
import { desiredService } from '../desired.js';
import { endpoint, nodeCtx, service, slice } from '../fixtures.js';
import type { ServicePort } from '../model.js';
import type { ServiceInfo } from '../../common/types.js';
import { ExecNft, type NftBackend } from '../nft/backend.js';
import { NftDataplane } from '../nft/dataplane.js';
import { chunkMessages, codecOf } from '../nft/elements.js';
import type { BatchBuilder } from '../../common/nft/batch.js';
import { NftLauncher } from '../../common/nft/launcher.js';
import { NftSession } from '../../common/nft/session.js';
import { nsBatches, POD_GW, Topology, nsRunner } from './topology.js';

const skip = missing('proxy nft staging', { root: true, tools: ['nft', 'curl'] });

/** The real backend, except that the first staged element load matching `failOn` fails. */
class FailingNft implements NftBackend {
  failOn: RegExp | undefined;
  constructor(private readonly inner: ExecNft) {}
  async apply(text: string): Promise<void> {
    if (this.failOn?.test(text) && !text.startsWith('add table')) {
      this.failOn = undefined;
      throw new Error('injected staging failure');
    }
    return this.inner.apply(text);
  }
  list(prefix: string): Promise<unknown> {
    return this.inner.list(prefix);
  }
  chains(prefix: string): Promise<string[]> {
    return this.inner.chains(prefix);
  }
  remove(prefix: string): Promise<void> {
    return this.inner.remove(prefix);
  }
  close(): void {
    this.inner.close();
  }
}

describe.skipIf(skip)('staged nftables full sync', () => {
  const topo = new Topology('skiffpx-s-');
  const sessions: NftSession[] = [];
  const launchers: NftLauncher[] = [];
  const backend = (): FailingNft => {
    const s = new NftSession(['ip', 'netns', 'exec', topo.node, 'nft', '-i']);
    sessions.push(s);
    // The staged loads go through the launcher, as in the agent.
    const l = new NftLauncher(['ip', 'netns', 'exec', topo.node, 'nft', '-f']);
    launchers.push(l);
    return new FailingNft(new ExecNft(nsRunner(topo.node), { session: s, launcher: l }));
  };
  /** `web` (10.96.0.10) on pod p1 or p2, plus n filler Services whose endpoints nobody serves. */
  const services = (n: number, pod: 'p1' | 'p2'): Map<string, ServicePort[]> => {
    const m = new Map<string, ServicePort[]>();
    const ip = pod === 'p1' ? '10.244.1.11' : '10.244.1.12';
    m.set('ns/web', desiredService(service('ns', 'web', { clusterIPs: ['10.96.0.10'] }), [slice('ns', 'web', [endpoint(ip)])], nodeCtx).ports);
    for (let i = 0; i < n; i++) {
      const eps = Array.from({ length: 3 }, (_, e) => endpoint(`10.245.${i >> 6}.${((i & 63) << 2) + e}`, { nodeName: 'node-b' }));
      m.set(`ns/f${i}`, desiredService(service('ns', `f${i}`, { clusterIPs: [`10.97.${i >> 8}.${i & 255}`] }), [slice('ns', `f${i}`, eps)], nodeCtx).ports);
    }
    return m;
  };
  const sets = async (): Promise<string[]> => {
    const out = JSON.parse(await topo.nft(['-j', 'list', 'sets', 'ip'])) as { nftables: { set?: { name: string } }[] };
    return out.nftables.flatMap((i) => (i.set ? [i.set.name] : [])).sort();
  };
  const maps = async (): Promise<string[]> => {
    const out = JSON.parse(await topo.nft(['-j', 'list', 'maps', 'ip'])) as { nftables: { map?: { name: string } }[] };
    return out.nftables.flatMap((i) => (i.map ? [i.map.name] : [])).sort();
  };

  beforeAll(async () => {
    await topo.create();
    await Promise.all([topo.addPod('p1', '10.244.1.11'), topo.addPod('p2', '10.244.1.12')]);
  }, 60_000);

  // A failed case must not leave its tables to the next one (which expects to start fresh).
  afterEach(async () => void (await topo.nft(['-f', '-'], 'add table ip skiff\ndelete table ip skiff\nadd table ip6 skiff\ndelete table ip6 skiff\n')));

  afterAll(async () => {
    for (const s of sessions) s.close();
    for (const l of launchers) l.close();
    topo.destroy();
  });

  it('stages into a fresh table in parallel chunks, switches, and serves; the next full sync replaces generation 1', async () => {
    const dp = new NftDataplane(backend(), [4], { stageChunk: 200 });
    await dp.full(services(300, 'p1'), nodeCtx);
    expect(dp.fallbacks).toBe(0);
    expect(await dp.verify()).toEqual([]);
    expect(await topo.curlFrom(topo.podNs('p2'), 'http://10.96.0.10/')).toBe(`p1 10.244.1.12`);
    expect(await sets()).toEqual(['cluster-ips-g1', 'hairpin-g1']);

    await dp.full(services(200, 'p2'), nodeCtx);
    expect(dp.fallbacks).toBe(0);
    expect(await dp.verify()).toEqual([]);
    expect(await topo.curlFrom(topo.podNs('p1'), 'http://10.96.0.10/')).toBe(`p2 10.244.1.11`);
    // Nothing of generation 1 is left, nor the tails only its Services used.
    expect((await maps()).filter((n) => !n.endsWith('-g2'))).toEqual([]);
    expect(await sets()).toEqual(['cluster-ips-g2', 'hairpin-g2']);
    await dp.cleanup();
  });

  /** Every kind of element the renderer writes, in both families. */
  const varied = (): Map<string, ServicePort[]> => {
    const m = new Map<string, ServicePort[]>();
    const add = (name: string, o: Partial<ServiceInfo>, eps: string[], ports?: number[]): void => {
      const ip6 = o.ipFamilies?.[0] === 'IPv6';
      const slices = ports
        ? ports.map((port, i) => slice('ns', name, [endpoint(eps[i]!)], { name: `${name}-${i}`, ports: [{ name: 'http', port, protocol: 'TCP' }] }))
        : eps.length ? [slice('ns', name, eps.map((ip, i) => endpoint(ip, { nodeName: i % 2 ? 'node-b' : 'node-a' })), ip6 ? { addressType: 'IPv6' } : {})] : [];
      m.set(`ns/${name}`, desiredService(service('ns', name, o), slices, nodeCtx).ports);
    };
    add('web', { clusterIPs: ['10.96.0.10'] }, ['10.244.1.11', '10.244.1.12']);
    add('np', { type: 'NodePort', clusterIPs: ['10.96.0.11'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }] }, ['10.244.1.11', '10.244.1.12', '10.245.0.3']);
    add('local', { type: 'LoadBalancer', clusterIPs: ['10.96.0.12'], externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, loadBalancerIPs: ['192.0.2.10'], loadBalancerSourceRanges: ['198.51.100.0/24'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30081 }] }, ['10.244.1.11', '10.245.0.4']);
    add('sticky', { clusterIPs: ['10.96.0.13'], sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 60 }, ['10.244.1.11', '10.244.1.12']);
    add('pairs', { clusterIPs: ['10.96.0.14'] }, ['10.244.1.11', '10.244.1.12'], [8080, 8081]);
    add('empty', { clusterIPs: ['10.96.0.15'], externalIPs: ['192.0.2.20'] }, []);
    add('udp', { clusterIPs: ['10.96.0.16'], ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 53 }] }, ['10.244.1.11']);
    add('six', { clusterIPs: ['fd00:96::10'], ipFamilies: ['IPv6'] }, ['fd00:244::b', 'fd00:244::c']);
    return m;
  };
  /** The tables as `nft -j` lists them, without handles, elements in a stable order. */
  const tables = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const family of ['ip', 'ip6']) {
      const items = (JSON.parse(await topo.nft(['-j', 'list', 'table', family, 'skiff'])) as { nftables: Record<string, Record<string, unknown>>[] }).nftables;
      for (const it of items) {
        const [kind, v] = Object.entries(it)[0]!;
        const { handle: _h, ...rest } = v;
        if (Array.isArray(rest.elem)) rest.elem = rest.elem.map((e) => JSON.stringify(e)).sort();
        out.push(`${kind} ${JSON.stringify(rest)}`);
      }
    }
    return out.sort();
  };

  it('over netlink, the staged elements make the same tables as through nft, and they serve', async (ctx) => {
    const { batches, error } = nsBatches(topo.node);
    if (!batches) return ctx.skip(error);
    const text = new NftDataplane(new ExecNft(nsRunner(topo.node)), [4, 6], { stageChunk: 5 });
    await text.full(varied(), nodeCtx);
    const want = await tables();
    expect(want.filter((l) => l.startsWith('map ') && l.includes('"elem"')).length).toBeGreaterThan(8);
    await text.cleanup();

    const backend = new ExecNft(nsRunner(topo.node), { batches });
    /** The backend, with its netlink commits going through `commit`. */
    const through = (commit: (b: BatchBuilder) => Promise<void>): NftBackend => ({ apply: (t) => backend.apply(t), list: (p) => backend.list(p), chains: (p) => backend.chains(p), remove: (p) => backend.remove(p), commit });
    let commits = 0;
    const dp = new NftDataplane(through((b) => (commits++, backend.commit!(b))), [4, 6], { stageChunk: 5 });
    await dp.full(varied(), nodeCtx);
    expect(dp.fallbacks).toBe(0);
    expect(commits).toBeGreaterThan(4);
    expect(await tables()).toEqual(want);
    expect(await dp.verify()).toEqual([]);
    expect(await topo.curlFrom(topo.client, 'http://10.96.0.13/')).toMatch(/^p[12] /);
    expect(await topo.curlFrom(topo.client, 'http://10.96.0.14/')).toMatch(/^p[12] /);

    // Endpoints replaced (as many as before) and a Service gone are element changes only: one
    // netlink batch, no nft text.
    const applied = commits;
    const moved = desiredService(service('ns', 'web', { clusterIPs: ['10.96.0.10'] }), [slice('ns', 'web', [endpoint('10.244.1.12'), endpoint('10.244.1.11', { nodeName: 'node-b' })])], nodeCtx).ports;
    await dp.partial([{ key: 'ns/web', ports: moved }, { key: 'ns/empty', ports: [] }], nodeCtx);
    expect(commits).toBe(applied + 1);
    // verify() compares every element the kernel lists with the mirror.
    expect(await dp.verify()).toEqual([]);
    expect(await topo.nft(['list', 'set', 'ip', 'skiff', 'hairpin-g1'])).toContain('10.244.1.12 . 10.244.1.12');
    expect(await topo.nft(['list', 'map', 'ip', 'skiff', 'no-endpoint-services-g1'])).not.toContain('10.96.0.15');
    expect(await topo.curlFrom(topo.client, 'http://10.96.0.10/')).toMatch(/^p[12] /);
    await dp.cleanup();

    // A batch the kernel refuses (an element of a set that does not exist) leaves the sync to the
    // one-transaction fallback, which writes the same tables.
    const bogus = { targets: [], items: new Map([['no-such-set', ['1', '10.0.0.1']]]) };
    const refusing = new NftDataplane(through((b) => backend.commit!((seq) => [...b(seq), ...chunkMessages('ip skiff', bogus, () => codecOf('type mark : ipv4_addr ;'), seq)])), [4, 6], { stageChunk: 5 });
    await refusing.full(varied(), nodeCtx);
    expect(refusing.fallbacks).toBe(1);
    expect(await tables()).toEqual(want);
    await refusing.cleanup();
    batches.close();
  });

  it('a failed staging falls back to one transaction, and an agent restart replaces the table whole', async () => {
    const b = backend();
    const dp = new NftDataplane(b, [4], { stageChunk: 200 });
    b.failOn = /endpoint-addrs-g1/;
    await dp.full(services(300, 'p1'), nodeCtx);
    expect(dp.fallbacks).toBe(1);
    expect(await dp.verify()).toEqual([]);
    expect(await topo.curlFrom(topo.client, 'http://10.96.0.10/')).toBe(`p1 ${POD_GW}`);

    // A new agent knows nothing of the table: its chains are live, so it is replaced in one go.
    const restarted = new NftDataplane(backend(), [4], { stageChunk: 200 });
    await restarted.full(services(100, 'p2'), nodeCtx);
    expect(restarted.fallbacks).toBe(0);
    expect(await restarted.verify()).toEqual([]);
    expect(await topo.curlFrom(topo.client, 'http://10.96.0.10/')).toBe(`p2 ${POD_GW}`);
    // And its next full sync stages.
    await restarted.full(services(100, 'p1'), nodeCtx);
    expect(await restarted.verify()).toEqual([]);
    expect(await sets()).toEqual(['cluster-ips-g2', 'hairpin-g2']);
    expect(await topo.curlFrom(topo.client, 'http://10.96.0.10/')).toBe(`p1 ${POD_GW}`);
    await restarted.cleanup();
  });
});
