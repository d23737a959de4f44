// The policy sync loop on a hand-driven cache and a recording runner: what reaches nft and
// conntrack, when, and what the CNI hook waits for.
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfig, type ConfigInput } from '../common/config.js';
import { Health } from '../common/health.js';
import { registry } from '../common/metrics.js';
import type { NetworkPolicyInfo, PolicyPodInfo } from '../common/types.js';
import { MemoryCache } from '../common/watch/store.js';
import { adminWatchConverters } from './admin.js';
import type { ConntrackTable, Flow } from './conntrack.js';
import { PolicyDataplane } from './dataplane.js';
import type { ElementWriter } from './setelem.js';
import type { Runner } from './exec.js';
import { PolicySyncer } from './syncer.js';

const sel = (labels: Record<string, string>) => ({ matchLabels: labels, matchExpressions: [] });
const pod = (name: string, ips: string[], labels: Record<string, string>, nodeName = 'n1'): PolicyPodInfo => ({ namespace: 'x', name, nodeName, hostNetwork: false, podIPs: ips, labels, namedPorts: [] });
const denyB: NetworkPolicyInfo = { namespace: 'x', name: 'b-from-a', podSelector: sel({ app: 'b' }), policyTypes: ['Ingress'], ingress: [{ peers: [{ podSelector: sel({ app: 'a' }) }], ports: [] }], egress: [] };

class FakeRunner {
  readonly calls: string[] = [];
  readonly nft: string[] = [];
  failNft = 0;
  conntrack = '';
  counters: { name: string; packets: number }[] = [];
  tableGone = false;
  /** How long each `conntrack -D` takes (a loaded node). */
  deleteMs = 0;
  /** While set, an `nft -f` returns only once it resolves (its text is recorded at once). */
  gate: Promise<void> | undefined;
  run: Runner = async (cmd, args, input) => {
    this.calls.push(`${cmd} ${args.join(' ')}`);
    if (cmd === 'conntrack' && args[0] === '-D' && this.deleteMs > 0) await new Promise((r) => setTimeout(r, this.deleteMs));
    if (cmd === 'nft' && args[0] === '-f') {
      if (this.failNft > 0) {
        this.failNft--;
        throw new Error('nft: injected failure');
      }
      // A transaction comes as a file (common/nft/runner.ts), cleanup through stdin.
      this.nft.push(args[1] === '-' ? (input ?? '') : readFileSync(args[1]!, 'utf8'));
      if (this.gate) await this.gate;
      return '';
    }
    if (cmd === 'nft' && args.includes('counters')) return JSON.stringify({ nftables: [{ metainfo: {} }, ...this.counters.map((c) => ({ counter: { family: 'inet', table: 'skiff-policy', name: c.name, packets: c.packets, bytes: 0 } }))] });
    if (cmd === 'nft' && args.includes('chains')) return JSON.stringify({ nftables: this.tableGone ? [] : [{ chain: { family: 'inet', table: 'skiff-policy', name: 'forward' } }] });
    if (cmd === 'conntrack' && args[0] === '-L') return args.includes('ipv4') ? this.conntrack : '';
    if (cmd === 'ip') return JSON.stringify([{ addr_info: [{ local: '10.244.7.1' }] }]);
    return '';
  };
}

function setup(policy: ConfigInput['policy'] = {}) {
  const cache = new MemoryCache();
  const runner = new FakeRunner();
  const config = parseConfig({ nodeName: 'n1', policy, dns: { enabled: false } });
  const syncer = new PolicySyncer({ cache, config, log: pino({ level: 'silent' }), health: new Health(), dataplane: new PolicyDataplane(runner.run), run: runner.run, attachTimeoutMs: 300 });
  const ac = new AbortController();
  const fill = (pods: PolicyPodInfo[], policies: NetworkPolicyInfo[] = []) => {
    cache.replace('namespaces', new Map([['x', { name: 'x', labels: {} }]]));
    cache.replace('policypods', new Map(pods.map((p) => [`x/${p.name}`, p])));
    cache.replace('networkpolicies', new Map(policies.map((p) => [`x/${p.name}`, p])));
    cache.replace('nodes', new Map());
    for (const k of ['clusternetworkpolicies', 'adminnetworkpolicies', 'baselineadminnetworkpolicies'] as const) cache.replace(k, new Map());
  };
  return { cache, runner, syncer, ac, fill, done: () => (ac.abort(), undefined) };
}

// Generous: CI runs this beside kernel suites on two loaded cores; a passing wait returns at once.
// A sync hands its nft text to the runner before its apply returns, and only then is `desired`
// set: tests that go on to attach pods (attachTimeoutMs 300 while no sync has finished) or read
// what was applied wait for `desired` too, not only for the text.
async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('PolicySyncer', () => {
  it('writes nothing before the caches are synced, then the whole table, then only differences', async () => {
    const { cache, runner, syncer, ac, fill } = setup();
    const running = syncer.run(ac.signal);
    cache.upsert('policypods', 'x/a', pod('a', ['10.244.7.2'], { app: 'a' }));
    await new Promise((r) => setTimeout(r, 20));
    expect(runner.nft).toEqual([]);
    fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', ['10.244.7.3'], { app: 'b' })], [denyB]);
    await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
    expect(runner.nft[0]).toMatch(/^add table inet skiff-policy\ndelete table inet skiff-policy\n/);
    expect(runner.nft[0]).toContain('add element inet skiff-policy ingress4 { 10.244.7.3 : jump in.x.b }');
    // A new app=a pod on another node: one element, nothing else.
    cache.upsert('policypods', 'x/r', pod('r', ['10.244.8.9'], { app: 'a' }, 'n2'));
    await until(() => runner.nft.length === 2, 'the pod change');
    expect(runner.nft[1]).toBe('add element inet skiff-policy s.x.deny.in0.pods4 { 10.244.8.9 }\n'.replace('deny', 'b-from-a'));
    // A label change that changes nothing policy sees writes nothing.
    cache.upsert('policypods', 'x/r', pod('r', ['10.244.8.9'], { app: 'a', other: '1' }, 'n2'));
    await syncer.sync();
    expect(runner.nft).toHaveLength(2);
    ac.abort();
    await running;
  });

  it('rewrites the whole table after a failed write, and after the table disappeared', async () => {
    const { cache, runner, syncer, ac, fill } = setup();
    fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', ['10.244.7.3'], { app: 'b' })], [denyB]);
    const running = syncer.run(ac.signal);
    await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
    runner.failNft = 1;
    cache.upsert('policypods', 'x/r', pod('r', ['10.244.8.9'], { app: 'a' }, 'n2'));
    await until(() => runner.calls.filter((c) => c.startsWith('nft -f ')).length === 2, 'the failed write');
    await syncer.sync();
    expect(runner.nft.at(-1)).toMatch(/^add table inet skiff-policy\ndelete table/);
    expect(runner.nft.at(-1)).toContain('10.244.8.9');
    const writes = runner.nft.length;
    runner.tableGone = true;
    await syncer.check();
    expect(runner.nft).toHaveLength(writes + 1);
    expect(runner.nft.at(-1)).toMatch(/^add table inet skiff-policy\ndelete table/);
    ac.abort();
    await running;
  });

  it('rewrites the whole table when the drift check finds it gone while a sync is still writing', async () => {
    const { cache, runner, syncer, ac, fill } = setup();
    fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', ['10.244.7.3'], { app: 'b' })], [denyB]);
    const running = syncer.run(ac.signal);
    await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
    let release!: () => void;
    runner.gate = new Promise((r) => (release = r));
    cache.upsert('policypods', 'x/r', pod('r', ['10.244.8.9'], { app: 'a' }, 'n2'));
    await until(() => runner.nft.length === 2, 'the pod change being written');
    // The table is deleted behind our back, and the periodic check sees it while that write runs.
    runner.tableGone = true;
    const listings = runner.calls.filter((c) => c.includes(' chains')).length;
    const checked = syncer.check();
    await until(() => runner.calls.filter((c) => c.includes(' chains')).length > listings, 'the check');
    runner.gate = undefined;
    release();
    await checked;
    expect(runner.nft).toHaveLength(3);
    expect(runner.nft[2]).toMatch(/^add table inet skiff-policy\ndelete table/);
    ac.abort();
    await running;
  });

  it('holds a CNI ADD until the new pod\'s address is in the rules', async () => {
    const { cache, runner, syncer, ac, fill } = setup();
    // The pod exists in the API (scheduled, labelled) but has no address yet: the ADD gives it.
    fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', [], { app: 'b' })], [denyB]);
    const running = syncer.run(ac.signal);
    await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
    expect(runner.nft[0]).not.toContain('in.x.b');
    await syncer.attached({ namespace: 'x', name: 'b', ips: ['10.244.7.3'] });
    expect(runner.nft.join('')).toContain('add element inet skiff-policy ingress4 { 10.244.7.3 : jump in.x.b }');
    // The kubelet reports the same address: nothing to change.
    cache.upsert('policypods', 'x/b', pod('b', ['10.244.7.3'], { app: 'b' }));
    const n = runner.nft.length;
    await syncer.sync();
    expect(runner.nft).toHaveLength(n);
    // DEL: the CNI's address goes with the pod's interface once the API has none either.
    cache.upsert('policypods', 'x/c', pod('c', [], { app: 'b' }));
    await syncer.attached({ namespace: 'x', name: 'c', ips: ['10.244.7.4'] });
    expect(runner.nft.at(-1)).toContain('10.244.7.4 : jump in.x.c');
    await syncer.detached({ namespace: 'x', name: 'c' });
    await syncer.sync();
    expect(runner.nft.at(-1)).toContain('delete element inet skiff-policy ingress4 { 10.244.7.4');
    ac.abort();
    await running;
  });

  it('an ADD resolves after the sync that carries its address, not after the syncs queued behind it', async () => {
    const { cache, runner, syncer, ac, fill } = setup();
    fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', [], { app: 'b' })], [denyB]);
    const running = syncer.run(ac.signal);
    await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
    let first!: () => void;
    let second!: () => void;
    runner.gate = new Promise((r) => (first = r));
    let added = false;
    const add = syncer.attached({ namespace: 'x', name: 'b', ips: ['10.244.7.3'] }).then(() => (added = true));
    await until(() => runner.nft.length === 2, "the ADD's write started");
    // A change arrives while the ADD's write runs: its sync is queued behind, and held.
    cache.upsert('networkpolicies', 'x/b-from-c', { ...denyB, name: 'b-from-c', ingress: [{ peers: [{ podSelector: sel({ app: 'c' }) }], ports: [] }] });
    runner.gate = new Promise((r) => (second = r));
    // The watch delivers batches in a later turn.
    await new Promise((r) => setTimeout(r, 50));
    first();
    await until(() => runner.nft.length === 3, 'the queued sync writing');
    await until(() => added, 'the ADD resolved while the queued sync is still held');
    expect(runner.nft[1]).toContain('10.244.7.3 : jump in.x.b');
    second();
    await add;
    ac.abort();
    await running;
  });

  it('fails an ADD for a pod it cannot see in a namespace with policies, lets it start elsewhere', async () => {
    const { runner, syncer, ac, fill } = setup();
    fill([pod('a', ['10.244.7.2'], { app: 'a' })], [denyB]);
    const running = syncer.run(ac.signal);
    await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
    await expect(syncer.attached({ namespace: 'x', name: 'ghost', ips: ['10.244.7.9'] })).rejects.toThrow(/not in the watch cache yet/);
    await expect(syncer.attached({ namespace: 'quiet', name: 'ghost', ips: ['10.244.7.9'] })).resolves.toBeUndefined();
    ac.abort();
    await running;
  });

  it('does not hold an ADD when the cluster has no policy at all, and fails it when rules cannot be written', async () => {
    const { cache, runner, syncer, ac, fill } = setup();
    fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', [], { app: 'b' })]);
    const running = syncer.run(ac.signal);
    await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
    runner.failNft = 1;
    await expect(syncer.attached({ namespace: 'x', name: 'b', ips: ['10.244.7.3'] })).resolves.toBeUndefined();
    await syncer.sync();
    cache.upsert('networkpolicies', 'x/b-from-a', denyB);
    await until(() => runner.nft.some((t) => t.includes('10.244.7.3 : jump in.x.b')), 'the policy with the attached address');
    runner.failNft = 5;
    cache.upsert('policypods', 'x/c', pod('c', [], { app: 'b' }));
    await expect(syncer.attached({ namespace: 'x', name: 'c', ips: ['10.244.7.4'] })).rejects.toThrow(/could not be written/);
    runner.failNft = 0;
    ac.abort();
    await running;
  });

  it('fails an ADD while no rules have been written yet', async () => {
    const { syncer } = setup();
    await expect(syncer.attached({ namespace: 'x', name: 'b', ips: ['10.244.7.3'] })).rejects.toThrow(/not in place yet/);
  });

  it('strict mode deletes the conntrack entries a change denies; off, it leaves them', async () => {
    const flows = `tcp      6 431999 ESTABLISHED src=10.244.7.4 dst=10.244.7.3 sport=40000 dport=80 src=10.244.7.3 dst=10.244.7.4 sport=80 dport=40000 [ASSURED] mark=0 use=1
tcp      6 431999 ESTABLISHED src=10.244.7.2 dst=10.244.7.3 sport=40001 dport=80 src=10.244.7.3 dst=10.244.7.2 sport=80 dport=40001 [ASSURED] mark=0 use=1
tcp      6 431999 ESTABLISHED src=10.244.7.1 dst=10.244.7.3 sport=40002 dport=80 src=10.244.7.3 dst=10.244.7.1 sport=80 dport=40002 [ASSURED] mark=0 use=1
`;
    for (const strict of [true, false]) {
      const { cache, runner, syncer, ac, fill } = setup({ strictEstablished: strict });
      fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', ['10.244.7.3'], { app: 'b' }), pod('c', ['10.244.7.4'], { app: 'c' })]);
      runner.conntrack = flows;
      const running = syncer.run(ac.signal);
      await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
      cache.upsert('networkpolicies', 'x/b-from-a', denyB);
      await until(() => runner.nft.length === 2, 'the policy');
      await syncer.sync();
      await syncer.settled();
      const deletes = runner.calls.filter((c) => c.startsWith('conntrack -D'));
      // Only c -> b: a is allowed, the node (10.244.7.1) always passes.
      expect(deletes).toEqual(strict ? ['conntrack -D -f ipv4 -p tcp --orig-src 10.244.7.4 --orig-dst 10.244.7.3 --sport 40000 --dport 80'] : []);
      // A new peer elsewhere only adds elements: nothing can be denied, conntrack is not read.
      const lists = runner.calls.filter((c) => c.startsWith('conntrack -L')).length;
      cache.upsert('policypods', 'x/r', pod('r', ['10.244.8.9'], { app: 'a' }, 'n2'));
      await until(() => runner.nft.length === 3, 'the new peer');
      await syncer.sync();
      await syncer.settled();
      expect(runner.calls.filter((c) => c.startsWith('conntrack -L')).length).toBe(lists);
      ac.abort();
      await running;
    }
  });

  it('strict mode never holds a sync: lifting a deny is written while the cut of the flows it denied still runs', async () => {
    // Hundreds of live flows c -> b (a load generator) and as many closed ones in TIME_WAIT.
    const live = Array.from({ length: 300 }, (_, i) => `tcp      6 431999 ESTABLISHED src=10.244.7.4 dst=10.244.7.3 sport=${30000 + i} dport=80 src=10.244.7.3 dst=10.244.7.4 sport=80 dport=${30000 + i} [ASSURED] mark=0 use=1`);
    const closed = Array.from({ length: 300 }, (_, i) => `tcp      6 100 TIME_WAIT src=10.244.7.4 dst=10.244.7.3 sport=${40000 + i} dport=80 src=10.244.7.3 dst=10.244.7.4 sport=80 dport=${40000 + i} [ASSURED] mark=0 use=1`);
    const { cache, runner, syncer, ac, fill } = setup();
    fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', ['10.244.7.3'], { app: 'b' }), pod('c', ['10.244.7.4'], { app: 'c' })]);
    runner.conntrack = [...live, ...closed].join('\n');
    // Each delete takes a while, as conntrack processes on a loaded node do: the whole cut would
    // take ~3.75 s (300 at 8 at once), far above what the lifted deny may take on a loaded CI machine.
    runner.deleteMs = 100;
    const deleting = (): number => runner.calls.filter((c) => c.startsWith('conntrack -D')).length;
    const running = syncer.run(ac.signal);
    await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
    cache.upsert('networkpolicies', 'x/b-from-a', denyB);
    await until(() => runner.nft.length === 2 && deleting() > 0, 'the deny and the start of the cut');
    // The deny is lifted: its write must not wait for the 300 deletes.
    const t = Date.now();
    cache.remove('networkpolicies', 'x/b-from-a');
    await until(() => runner.nft.length === 3, 'the deny lifted');
    expect(Date.now() - t).toBeLessThan(1500);
    expect(runner.nft[2]).toContain('delete element inet skiff-policy ingress4 { 10.244.7.3 }');
    // The cut judges on the latest state: once the deny is gone it stops cutting; closed flows are never touched.
    await syncer.settled();
    const deletes = runner.calls.filter((c) => c.startsWith('conntrack -D'));
    expect(deletes.length).toBeLessThan(300);
    expect(deletes.some((c) => / --sport 4\d{4} /.test(c))).toBe(false);
    ac.abort();
    await running;
  });

  it('strict mode: a burst of changes shares one conntrack listing, which comes after the burst', async () => {
    const { cache, runner, syncer, ac, fill } = setup();
    fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', ['10.244.7.3'], { app: 'b' }), pod('c', ['10.244.7.4'], { app: 'c' })]);
    runner.conntrack = 'tcp      6 431999 ESTABLISHED src=10.244.7.4 dst=10.244.7.3 sport=40000 dport=80 src=10.244.7.3 dst=10.244.7.4 sport=80 dport=40000 [ASSURED] mark=0 use=1';
    const running = syncer.run(ac.signal);
    await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
    const lists = (): number => runner.calls.filter((c) => c.startsWith('conntrack -L')).length;
    const t = Date.now();
    for (const port of [80, 81, 82, 83]) {
      cache.upsert('networkpolicies', 'x/b-from-a', { ...denyB, ingress: [{ peers: [{ podSelector: sel({ app: 'a' }) }], ports: [{ protocol: 'TCP', port }] }] });
      await syncer.sync();
      expect(lists()).toBe(0);
    }
    await syncer.settled();
    // Both families listed once, c -> b cut once, within strict mode's second.
    expect(lists()).toBe(2);
    expect(runner.calls.filter((c) => c.startsWith('conntrack -D'))).toHaveLength(1);
    expect(Date.now() - t).toBeLessThan(1000);
    ac.abort();
    await running;
  });

  it('strict mode: a new pod\'s ADD lists no conntrack, unless its address may still carry an earlier pod\'s flows', async () => {
    const cache = new MemoryCache();
    const runner = new FakeRunner();
    const config = parseConfig({ nodeName: 'n1', dns: { enabled: false } });
    // The agent's path: element changes over netlink (recorded here), conntrack read over ctnetlink.
    const writes: string[][] = [];
    const elements: ElementWriter = { write: async (_t, changes) => void writes.push(changes.map((c) => `${c.verb} ${c.set} ${c.key}`)), generation: async () => undefined, close: () => undefined };
    const stale = (src: string): Flow => ({ protocol: 'TCP', family: 4, orig: { src, dst: '10.244.7.2', sport: 40000, dport: 80 }, reply: { src: '10.244.7.2', dst: src, sport: 80, dport: 40000 } });
    // 10.244.7.9 belonged to a pod gone before the agent started: its flow to a is still there.
    let flows = [stale('10.244.7.9')];
    const lists: string[] = [];
    const deleted: Flow[] = [];
    const conntrack: ConntrackTable = { list: async () => (lists.push('list'), flows), delete: async (fs) => (deleted.push(...fs), fs.length) };
    const syncer = new PolicySyncer({ cache, config, log: pino({ level: 'silent' }), health: new Health(), dataplane: new PolicyDataplane(runner.run, { elements }), run: runner.run, conntrack, attachTimeoutMs: 300 });
    const ac = new AbortController();
    // b's pods may not talk to a.
    const aOut: NetworkPolicyInfo = { namespace: 'x', name: 'b-out', podSelector: sel({ app: 'b' }), policyTypes: ['Egress'], ingress: [], egress: [] };
    cache.replace('namespaces', new Map([['x', { name: 'x', labels: {} }]]));
    cache.replace('policypods', new Map([['x/a', pod('a', ['10.244.7.2'], { app: 'a' })], ['x/b0', pod('b0', ['10.244.7.6'], { app: 'b' })]]));
    cache.replace('networkpolicies', new Map([['x/b-out', aOut]]));
    cache.replace('nodes', new Map());
    for (const k of ['clusternetworkpolicies', 'adminnetworkpolicies', 'baselineadminnetworkpolicies'] as const) cache.replace(k, new Map());
    const running = syncer.run(ac.signal);
    await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
    await syncer.settled();
    await until(() => lists.length === 1, 'the first (full) cut');
    await syncer.settled();
    // A new pod on a new address: its dispatch is written, conntrack is not read.
    const add = async (name: string, ip: string): Promise<void> => {
      cache.upsert('policypods', `x/${name}`, pod(name, [], { app: 'b' }));
      await new Promise((r) => setImmediate(r));
      await syncer.sync();
      await syncer.attached({ namespace: 'x', name, ips: [ip] });
      await new Promise((r) => setTimeout(r, 250));
      await syncer.settled();
    };
    await add('b1', '10.244.7.3');
    expect(writes.flat()).toContain('add egress4 10.244.7.3');
    expect(lists).toHaveLength(1);
    // The address of the flow the first listing saw: judged, and the earlier pod's flow is cut.
    await add('b2', '10.244.7.9');
    expect(lists).toHaveLength(2);
    expect(deleted.map((f) => f.orig.src)).toEqual(['10.244.7.9']);
    // A local pod deleted while the agent runs: an ADD reusing its address is judged too.
    flows = [stale('10.244.7.3')];
    cache.remove('policypods', 'x/b1');
    await syncer.detached({ namespace: 'x', name: 'b1' });
    await syncer.sync();
    await syncer.settled();
    const before = lists.length;
    await add('b3', '10.244.7.3');
    expect(lists.length).toBe(before + 1);
    expect(deleted.map((f) => f.orig.src)).toEqual(['10.244.7.9', '10.244.7.3']);
    // A fresh address again: not listed.
    const n = lists.length;
    await add('b4', '10.244.7.5');
    expect(lists).toHaveLength(n);
    ac.abort();
    await running;
  });

  it('feeds cluster-wide admin policies to the engine: an AdminNetworkPolicy Deny is in the table', async () => {
    const { cache, runner, syncer, ac, fill } = setup();
    fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', ['10.244.7.3'], { app: 'b' })]);
    const running = syncer.run(ac.signal);
    await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
    expect(runner.nft[0]).not.toContain('in.x.b');
    const raw = { metadata: { name: 'no-a-to-b' }, spec: { priority: 10, subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'b' } } } }, ingress: [{ name: 'deny-a', action: 'Deny', from: [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'a' } } } }] }] } };
    const { convert, registerConverter } = await import('../common/watch/convert.js');
    registerConverter('adminnetworkpolicies', adminWatchConverters().adminnetworkpolicies);
    const c = convert('adminnetworkpolicies', raw);
    cache.upsert('adminnetworkpolicies', c.key, c.value);
    await until(() => runner.nft.length === 2, 'the admin policy');
    expect(runner.nft[1]).toContain('10.244.7.3 : jump in.x.b');
    expect(runner.nft[1]).toMatch(/in\.x\.b .*drop/);
    ac.abort();
    await running;
  });

  it('keeps the warm engine equal to a computation from scratch through a history of changes', async () => {
    const { cache, runner, syncer, ac, fill } = setup();
    fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', ['10.244.7.3'], { app: 'b' })], [denyB]);
    const running = syncer.run(ac.signal);
    await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
    const egress: NetworkPolicyInfo = { namespace: 'x', name: 'a-out', podSelector: sel({ app: 'a' }), policyTypes: ['Egress'], ingress: [], egress: [{ peers: [{ podSelector: sel({ app: 'b' }) }], ports: [{ protocol: 'TCP', port: 80 }] }] };
    const steps: (() => void)[] = [
      () => cache.upsert('policypods', 'x/c', pod('c', ['10.244.7.4'], { app: 'a' })),
      () => cache.upsert('networkpolicies', 'x/a-out', egress),
      () => cache.upsert('policypods', 'x/r', pod('r', ['10.244.8.9'], { app: 'b' }, 'n2')),
      () => cache.upsert('policypods', 'x/c', pod('c', ['10.244.7.4'], { app: 'b' })),
      () => cache.remove('networkpolicies', 'x/b-from-a'),
      () => cache.upsert('namespaces', 'x', { name: 'x', labels: { team: 't' } }),
      () => cache.remove('policypods', 'x/a'),
    ];
    const { desiredState } = await import('./desired.js');
    const { fullText, render } = await import('./render.js');
    for (const step of steps) {
      step();
      await new Promise((r) => setImmediate(r));
      await syncer.sync();
      const inputs = { policies: [...cache.store('networkpolicies').values()], pods: [...cache.store('policypods').values()], namespaces: [...cache.store('namespaces').values()] };
      // Same objects, same rules in each chain; declaration order may differ (map insertion order).
      const key = (l: string): string => (l.startsWith('add rule ') ? l.split(' ').slice(0, 5).join(' ') : l);
      // Stable: the rules of one chain keep their order.
      const canon = (t: string): string[] => t.split('\n').sort((x, y) => (key(x) < key(y) ? -1 : key(x) > key(y) ? 1 : 0));
      const scratch = canon(fullText(render(desiredState(inputs, { nodeName: 'n1' }), { families: [4] })));
      expect(canon(fullText((syncer as unknown as { o: { dataplane: PolicyDataplane } }).o.dataplane.current))).toEqual(scratch);
    }
    ac.abort();
    await running;
  });

  it('logs denied connections only when policy.logDenied is on', async () => {
    for (const logDenied of [false, true]) {
      const { runner, syncer, ac, fill } = setup({ logDenied });
      fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', ['10.244.7.3'], { app: 'b' })], [denyB]);
      const running = syncer.run(ac.signal);
      await until(() => runner.nft.length === 1 && syncer.desired !== undefined, 'the first sync applied');
      expect(runner.nft[0]!.includes(' log group ')).toBe(logDenied);
      if (logDenied) expect(runner.nft[0]).toMatch(/add rule inet skiff-policy deny-in limit rate .* log group 2719 prefix "skiff-policy deny in: "/);
      ac.abort();
      await running;
    }
  });

  it('exports denied connections per pod and direction from the table\'s counters', async () => {
    const { runner, syncer, ac, fill } = setup();
    fill([pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', ['10.244.7.3'], { app: 'b' })], [denyB]);
    const running = syncer.run(ac.signal);
    runner.counters = [{ name: 'drop-in.x.b', packets: 7 }, { name: 'someone-elses', packets: 3 }];
    // The nft text is handed over before the apply returns; the table is readable only after.
    const dataplane = (syncer as unknown as { o: { dataplane: PolicyDataplane } }).o.dataplane;
    await until(() => runner.nft.length === 1 && dataplane.current.counters.size > 0, 'the first sync applied');
    const text = await registry.metrics();
    expect(text).toContain('skiff_policy_denied_connections_total{namespace="x",pod="b",direction="ingress"} 7');
    expect(text).not.toContain('someone-elses');
    expect(text).toMatch(/skiff_policy_sync_duration_seconds_count\{kind="full"\} [1-9]/);
    expect(text).toContain('skiff_policy_isolated_pods{direction="ingress"} 1');
    ac.abort();
    await running;
  });
});
