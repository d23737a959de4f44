// NetworkPolicy as upstream's netpol e2e suite checks it, on a 2-node sandbox with the whole agent:
// namespaces x, y, z with pods a, b, c spread over both nodes, each serving TCP and UDP on 80 and
// 81 (named ports serve-<port>-<proto>). Every case applies its policies, probes every ordered pod
// pair on both ports and both protocols (all at once, 1 s timeouts, retried until the matrices match
// or a deadline passes, since enforcement trails the API write), and prints expected, observed and
// mismatch tables when it fails. The case's hand-written tables name the ports upstream probes; the
// others are expected as an independent evaluator of the policies says (oracle.ts), which agrees
// with every hand-written table. One sandbox serves every case; policies and labels are reset and
// full connectivity confirmed between cases. The cases are in cases.ts.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, sandboxCli, skiffCli } from '../sandbox/cli.js';
import { missing } from '../support/env.js';
import type { KubeObject, ResourceName } from '../../sandbox/apiserver/resources.js';
import { ApiRequestError, SandboxClient } from '../../sandbox/client.js';
import { ALL_KINDS } from '../../common/types.js';
import { podIPs, podReady } from '../../sandbox/endpointslices.js';
import { AGENT_METRICS_PORT, layout, nodeLayouts, podNetns } from '../../sandbox/names.js';
import { ALL_CASES, record, type Case, type Ctx, type Probe, type Step } from './cases.js';
import { asObserved, baseNamespaceLabels, basePodLabels, compare, NAMESPACES, PODS, portName, Reachability, type Ns, type PodId, type PodName, type Port, type Protocol } from './model.js';
import { Cluster } from './oracle.js';
import { cnp, denyIngress, np, nsNamed, pods } from './policies.js';
import { Prober, probeMatrix, SERVER } from './probe.js';
import { lockSandbox } from '../support/lock.js';

const NAME = 'skiffnp';
const SUBNET = '172.31.230.0/24';
const STATE = `/tmp/${NAME}-state`;
const env = { ...process.env, SKIFF_SANDBOX_DIR: STATE, SKIFF_SANDBOX_NAME: NAME };
const L = layout({ name: NAME, nodes: 2, subnet: SUBNET, stateDir: STATE });
const NODES = nodeLayouts(L);
const cli = sandboxCli(env);
const skiff = skiffCli(env);
const kubectl = (args: string[], input?: string) => runCommand('kubectl', ['--kubeconfig', L.kubeconfig, ...args], env, input);

const PROBE_TIMEOUT_MS = 1000;
/** How long a step may take to come into force before its mismatch is a failure. */
const CONVERGE_MS = 20_000;
const SETTLE_MS = 300;
const POLICY_KINDS: readonly ResourceName[] = ['networkpolicies', 'clusternetworkpolicies', 'adminnetworkpolicies', 'baselineadminnetworkpolicies'];
const RESOURCE_OF: Record<string, ResourceName> = { NetworkPolicy: 'networkpolicies', ClusterNetworkPolicy: 'clusternetworkpolicies', AdminNetworkPolicy: 'adminnetworkpolicies', BaselineAdminNetworkPolicy: 'baselineadminnetworkpolicies' };

/** Every step is probed on all of these. */
const EVERY_PORT: readonly { port: Port; protocol: Protocol }[] = (['TCP', 'UDP'] as const).flatMap((protocol) => ([80, 81] as const).map((port) => ({ port, protocol })));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Pods alternate between the nodes in PODS order, so every namespace has pods on both. */
const nodeIndexOf = (p: PodId): number => (PODS.indexOf(p) % 2) + 1;

const podObject = (id: PodId): KubeObject => {
  const [ns, name] = id.split('/') as [Ns, PodName];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: basePodLabels(name) },
    spec: {
      nodeName: NODES[nodeIndexOf(id) - 1]!.name,
      containers: [
        {
          name: 'serve',
          command: [process.execPath, '-e', SERVER],
          env: [{ name: 'POD', value: id }],
          ports: [80, 81].flatMap((port) => (['TCP', 'UDP'] as const).map((protocol) => ({ name: portName(port as 80 | 81, protocol), containerPort: port, protocol }))),
        },
      ],
    },
  };
};

const MANIFEST = [...NAMESPACES.map((ns) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: baseNamespaceLabels(ns) } })), ...PODS.map(podObject)].map((o) => JSON.stringify(o)).join('\n---\n');

/** A policy series in the agent's /metrics is how an agent says it enforces policy at all. */
const POLICY_SERIES = /^skiff_policy_[a-z_]+[{ ]/m;

describe.skipIf(missing('netpol', { root: true, tools: ['ip', 'nft', 'flock', 'kubectl'] }))('NetworkPolicy: the upstream netpol matrix on a 2-node sandbox (root)', () => {
  let client: SandboxClient;
  let lock: ChildProcess | undefined;
  const ips = new Map<PodId, string>();
  const probers = new Map<PodId, Prober>();
  const podCidrs = new Map<number, string>();
  const ctx: Ctx = { ip: (p) => ips.get(p)!, nodeOf: nodeIndexOf, podCidr: (n) => podCidrs.get(n)! };
  const started = Date.now();

  let rounds = 0;
  async function converge(probe: Probe, title: string): Promise<void> {
    const deadline = Date.now() + CONVERGE_MS;
    for (let attempt = 1; ; attempt++) {
      rounds++;
      const observed = await probeMatrix(probers, ips, probe.port, probe.protocol, PROBE_TIMEOUT_MS);
      const cmp = compare(probe.reach, observed, `${title}, ${probe.protocol}/${probe.port}, attempt ${attempt}`);
      if (cmp.wrong === 0) return;
      if (process.env.SKIFF_NETPOL_DEBUG) console.log(cmp.text);
      if (Date.now() > deadline) throw new Error(cmp.text);
      await sleep(250);
    }
  }

  /**
   * Gives the agents a moment to program a write before the first matrix: a matrix run against the
   * old rules costs a full 1 s timeout round. Polling the agents' sync timestamp in /metrics was
   * tried and cost more (every scrape lists the table's counters). converge() still retries.
   */
  const settle = (): Promise<void> => sleep(SETTLE_MS);

  async function upsert(obj: KubeObject): Promise<void> {
    const resource = RESOURCE_OF[obj.kind!]!;
    const ns = obj.metadata.namespace;
    try {
      await client.create(resource, obj, ns);
    } catch (e) {
      if (!(e instanceof ApiRequestError) || e.status !== 409) throw e;
      await client.request('PUT', client.path(resource, ns, obj.metadata.name), obj);
    }
  }

  async function setLabels(resource: 'pods' | 'namespaces', name: string, ns: string | undefined, want: Record<string, string>): Promise<void> {
    const cur = (await client.get(resource, name, ns)).metadata.labels ?? {};
    const patch: Record<string, string | null> = { ...want };
    for (const k of Object.keys(cur)) if (!(k in want)) patch[k] = null;
    if (Object.entries(patch).some(([k, v]) => cur[k] !== (v ?? undefined))) await client.patch(resource, name, { metadata: { labels: patch } }, ns);
  }

  async function runStep(step: Step, title: string, cluster: Cluster): Promise<void> {
    for (const [id, change] of step.podLabels ?? []) {
      const [ns, name] = id.split('/') as [Ns, PodName];
      await client.patch('pods', name, { metadata: { labels: change } }, ns);
    }
    for (const [ns, change] of step.nsLabels ?? []) await client.patch('namespaces', ns, { metadata: { labels: change } });
    for (const obj of step.apply ?? []) await upsert(obj);
    for (const obj of step.remove ?? []) await client.delete(RESOURCE_OF[obj.kind!]!, obj.metadata.name!, obj.metadata.namespace);
    record(step, cluster);
    for (const hand of step.probes) {
      const cmp = compare(hand.reach, asObserved(cluster.expected(hand.port, hand.protocol)), `${title}: the case's table against the oracle, ${hand.protocol}/${hand.port}`);
      expect(cmp.wrong, cmp.text).toBe(0);
    }
    await settle();
    await Promise.all(EVERY_PORT.map(({ port, protocol }) => converge({ port, protocol, reach: cluster.expected(port, protocol) }, title)));
  }

  /** Every policy gone, every changed label back, and all pairs connected again. */
  async function reset(relabeled: boolean): Promise<void> {
    for (const r of POLICY_KINDS) {
      for (const o of (await client.list(r)).items) await client.delete(r, o.metadata.name!, o.metadata.namespace).catch(() => undefined);
    }
    if (relabeled) {
      for (const ns of NAMESPACES) await setLabels('namespaces', ns, undefined, baseNamespaceLabels(ns));
      for (const id of PODS) {
        const [ns, name] = id.split('/') as [Ns, PodName];
        await setLabels('pods', name, ns, basePodLabels(name));
      }
    }
    await settle();
    await Promise.all(EVERY_PORT.map(({ port, protocol }) => converge({ port, protocol, reach: new Reachability(true) }, 'after reset')));
  }

  beforeAll(async () => {
    lock = await lockSandbox(NAME);
    await cli(['down']);
    const up = await cli(['up', '--nodes', '2', '--subnet', SUBNET, '--timeout', '90', '--agent-timeout', '90']);
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
    client = SandboxClient.load(L.kubeconfig);
    const applied = await cli(['apply', '-f', '-'], MANIFEST);
    expect(applied.code, applied.stderr).toBe(0);
    const end = Date.now() + 90_000;
    let pods: KubeObject[] = [];
    while (Date.now() < end) {
      pods = (await Promise.all(NAMESPACES.map((ns) => client.list('pods', ns)))).flatMap((l) => l.items);
      if (pods.length === PODS.length && pods.every(podReady)) break;
      await sleep(250);
    }
    expect(pods.filter(podReady).map((p) => `${p.metadata.namespace}/${p.metadata.name}`).sort()).toEqual([...PODS].sort());
    for (const p of pods) {
      const id = `${p.metadata.namespace}/${p.metadata.name}` as PodId;
      ips.set(id, podIPs(p).find((ip) => ip.includes('.'))!);
      probers.set(id, new Prober(podNetns(NAME, p.metadata.uid!)));
    }
    for (const n of NODES) podCidrs.set(n.index, ((await client.get('nodes', n.name)).spec as { podCIDR: string }).podCIDR);
    // Servers up and the pod network whole before any policy: every pair on every port and protocol.
    for (const { port, protocol } of EVERY_PORT) await converge({ port, protocol, reach: new Reachability(true) }, 'before any policy');

    // Every agent enforces policy (it is on by default): its series are in /metrics on the metrics port.
    const metrics = await Promise.all(NODES.map((n) => fetch(`http://${n.ip}:${AGENT_METRICS_PORT}/metrics`, { signal: AbortSignal.timeout(3000) }).then((r) => r.text(), () => '')));
    expect(NODES.filter((_, i) => !POLICY_SERIES.test(metrics[i]!)).map((n) => n.name), 'agents without NetworkPolicy series in /metrics').toEqual([]);
    console.log(`netpol: sandbox, 9 pods and a full matrix ready after ${Math.round((Date.now() - started) / 1000)} s`);
  }, 240_000);

  afterAll(async () => {
    for (const p of probers.values()) p.close();
    console.log(`netpol: whole suite ${Math.round((Date.now() - started) / 1000)} s`);
    if (!process.env.SKIFF_KEEP_SANDBOX) await cli(['down']);
    lock?.stdin?.end();
  }, 60_000);

  it('skiff sandbox apply answers a bad policy with the API server\'s 422 and stores nothing', async () => {
    const bad = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'bad-range', namespace: 'x' }, spec: { podSelector: {}, ingress: [{ ports: [{ port: 81, endPort: 80 }] }] } };
    const r = await cli(['apply', '-f', '-'], JSON.stringify(bad));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('NetworkPolicy.networking.k8s.io "bad-range" is invalid: spec.ingress[0].ports[0].endPort: Invalid value: 81: must be greater than or equal to `port`');
    expect((await client.list('networkpolicies', 'x')).items).toEqual([]);
  });

  it('through a Service: a pod reaches itself while isolated (hairpin), others are judged on the endpoint after the DNAT; kubectl applies the policies; skiff policy why agrees with the probes', async () => {
    await client.create('services', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc-a', namespace: 'x' }, spec: { selector: { pod: 'a' }, ports: [{ name: 'http', port: 8080, targetPort: 80, protocol: 'TCP' }] } }, 'x');
    try {
      const svcIP = ((await client.get('services', 'svc-a', 'x')).spec as { clusterIP: string }).clusterIP;
      const viaService = async (want: Partial<Record<PodId, boolean>>, title: string): Promise<void> => {
        const deadline = Date.now() + CONVERGE_MS;
        for (;;) {
          const seen = Object.fromEntries(await Promise.all(Object.keys(want).map(async (from) => [from, await probers.get(from as PodId)!.probe(svcIP, 8080, 'TCP', PROBE_TIMEOUT_MS)] as const)));
          if (Object.entries(want).every(([from, ok]) => seen[from] === ok)) return;
          if (Date.now() > deadline) expect(seen, title).toEqual(want);
          await sleep(250);
        }
      };
      await viaService({ 'x/a': true, 'x/b': true, 'y/a': true, 'y/b': true, 'z/a': true }, 'the Service before any policy');

      // x isolated for ingress; x/a admits namespace y. Its own traffic through the Service is not
      // stopped by its own isolation (a pod cannot block itself), and the rest is judged on x/a.
      // An Admin tier Deny keeps y/b from x/a: egress judged on the endpoint, not the Service IP.
      const policies = [
        denyIngress('x'),
        np('x', 'a-from-y', pods('a'), { ingress: [{ from: [{ namespaceSelector: nsNamed('y') }] }] }),
        cnp('yb-not-to-xa', 'Admin', 10, { pods: { namespaceSelector: nsNamed('y'), podSelector: pods('b') } }, { egress: [{ action: 'Deny', peers: [{ pods: { namespaceSelector: nsNamed('x'), podSelector: pods('a') } }] }] }),
      ];
      const applied = await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: policies }));
      expect(applied.code, applied.stderr).toBe(0);
      expect((await kubectl(['get', 'networkpolicies', '-n', 'x', '-o', 'name'])).stdout.trim().split('\n').sort()).toEqual(['networkpolicy.networking.k8s.io/a-from-y', 'networkpolicy.networking.k8s.io/deny-ingress']);
      expect((await kubectl(['get', 'cnp', '-o', 'name'])).stdout.trim()).toBe('clusternetworkpolicy.policy.networking.k8s.io/yb-not-to-xa');
      const want = { 'x/a': true, 'x/b': false, 'y/a': true, 'y/b': false, 'z/a': false } as const;
      await viaService(want, 'through the Service under the policies');

      // The same question to `skiff policy why`, asked about the endpoint pod: exit 0 allowed, 1 denied.
      for (const [from, ok] of Object.entries(want)) {
        if (from === 'x/a') continue;
        const r = await skiff(['policy', 'why', '--kubeconfig', L.kubeconfig, '--from', from, '--to', 'x/a', '--port', '80']);
        expect({ from, code: r.code }, `${r.stdout}${r.stderr}`).toEqual({ from, code: ok ? 0 : 1 });
      }
    } finally {
      await client.delete('services', 'svc-a', 'x');
      await reset(false);
    }
  }, 90_000);

  const groups = [...new Set(ALL_CASES.map((c) => c.group))];
  for (const group of groups) {
    describe(group, () => {
      for (const c of ALL_CASES.filter((x) => x.group === group)) {
        it(c.name, async () => {
          const steps = c.steps(ctx);
          // The agent watches what it enforces: a kind outside its watch list is a kind it cannot enforce.
          const kinds = [...new Set(steps.flatMap((s) => s.apply ?? []).map((o) => RESOURCE_OF[o.kind!]!))];
          expect(kinds.filter((k) => !(ALL_KINDS as readonly string[]).includes(k)), 'kinds the agent does not watch').toEqual([]);
          const t0 = Date.now();
          const r0 = rounds;
          await runCase(c, steps);
          console.log(`netpol: ${c.group}: ${c.name}: ${Date.now() - t0} ms, ${rounds - r0} matrices`);
        }, 90_000);
      }
    });
  }

  async function runCase(c: Case, steps: Step[]): Promise<void> {
    try {
      const cluster = new Cluster(ctx.ip, { ns: baseNamespaceLabels, pod: basePodLabels });
      for (const [i, step] of steps.entries()) await runStep(step, `${c.group}: ${c.name}, step ${i + 1}/${steps.length}`, cluster);
    } finally {
      await reset(steps.some((s) => s.podLabels?.length || s.nsLabels?.length));
    }
  }
});
