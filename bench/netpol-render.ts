// The pure part of NetworkPolicy sync on the kube-burner network-policy shape, no kernel:
// desired state + render + nft text for one node, a full sync and the incremental cases.
// `npx tsx bench/netpol-render.ts [--namespaces 240] [--pods 10000] [--nodes 100] [--per-ns 20] [--runs 5] [--egress]`
// Last stdout line: one JSON object. All figures are JS only (no nft, no kernel).
import { desiredState, type PolicyInputs } from '../policy/desired.js';
import type { NetworkPolicy, PolicyPod } from '../policy/model.js';
import { PolicyEngine } from '../policy/engine.js';
import { diffText, fullText, render } from '../policy/render.js';
import { toNetworkPolicy } from '../policy/convert.js';

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

/** A deterministic pseudo-random sequence, so every run builds the same cluster. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export function kubeBurner(o: { namespaces: number; pods: number; nodes: number; perNs: number; egress: boolean }): PolicyInputs {
  const r = rng(42);
  const pick = (n: number): number => Math.floor(r() * n);
  const namespaces = Array.from({ length: o.namespaces }, (_, n) => ({ name: `ns-${n}`, labels: { 'kubernetes.io/metadata.name': `ns-${n}`, group: `g${n % 24}` } }));
  const pods: PolicyPod[] = Array.from({ length: o.pods }, (_, i) => ({
    namespace: `ns-${i % o.namespaces}`,
    name: `pod-${i}`,
    // Scheduled anywhere (spreading by index would put a node's pods in few namespaces).
    nodeName: `node-${pick(o.nodes)}`,
    hostNetwork: false,
    podIPs: [`10.${128 + ((i >> 16) & 63)}.${(i >> 8) & 255}.${i & 255}`],
    labels: { app: `app-${Math.floor(i / o.namespaces) % 10}`, tier: `t${i % 3}` },
    namedPorts: [{ name: 'http', port: 8080, protocol: 'TCP' as const }],
  }));
  const policies: NetworkPolicy[] = [];
  for (let n = 0; n < o.namespaces; n++) {
    for (let j = 0; j < o.perNs; j++) {
      const peers: unknown[] = [];
      for (let k = 0; k < 5; k++) peers.push({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': `ns-${pick(o.namespaces)}` } }, podSelector: { matchLabels: { app: `app-${pick(10)}` } } });
      for (let k = 0; k < 5; k++) peers.push({ podSelector: { matchLabels: { app: `app-${pick(10)}` } } });
      for (let k = 0; k < 5; k++) peers.push({ ipBlock: { cidr: `172.${16 + pick(16)}.${pick(256)}.0/24` } });
      const ports = [
        ...Array.from({ length: 5 }, (_, k) => ({ port: 8000 + j * 20 + k })),
        ...Array.from({ length: 5 }, (_, k) => ({ port: 9000 + j * 100 + k * 10, endPort: 9000 + j * 100 + k * 10 + 5 })),
      ];
      const rule = { [o.egress ? 'to' : 'from']: peers, ports };
      const raw = {
        metadata: { namespace: `ns-${n}`, name: `np-${j}` },
        // Every policy selects every pod of its namespace, as in the kube-burner workload: 20 per pod.
        spec: { podSelector: {}, policyTypes: [o.egress ? 'Egress' : 'Ingress'], [o.egress ? 'egress' : 'ingress']: [rule] },
      };
      const c = toNetworkPolicy(raw);
      if (!c.ok) throw new Error(c.reason);
      policies.push(c.value);
    }
  }
  return { policies, pods, namespaces };
}

function ms(t0: number): number {
  return Math.round((performance.now() - t0) * 10) / 10;
}

/** CPU time of this process since c0 (user + system), ms: less at the mercy of a busy machine than wall time. */
function cpuMs(c0: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(c0);
  return Math.round((d.user + d.system) / 100) / 10;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function main(args: string[]): Promise<void> {
  const o = { namespaces: arg(args, 'namespaces', 240), pods: arg(args, 'pods', 10_000), nodes: arg(args, 'nodes', 100), perNs: arg(args, 'per-ns', 20), egress: args.includes('--egress') };
  const runs = arg(args, 'runs', 5);
  const inputs = kubeBurner(o);
  const node = { nodeName: 'node-0' };
  const full: { desired: number; render: number; text: number; total: number; cpu: number }[] = [];
  let last;
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const d = desiredState(inputs, node);
    const desired = ms(t0);
    const t1 = performance.now();
    const t = render(d);
    const rendered = ms(t1);
    const t2 = performance.now();
    const text = fullText(t);
    full.push({ desired, render: rendered, text: ms(t2), total: ms(t0), cpu: cpuMs(c0) });
    last = { d, t, text };
    process.stderr.write(`full ${i + 1}: ${JSON.stringify(full[i])}\n`);
  }
  const { d, t, text } = last!;
  const elements = [...t.elements.values()].reduce((a, m) => a + m.size, 0);
  const ruleCount = [...t.chains.values()].reduce((a, c) => a + c.rules.length, 0);

  // Incremental, through the warm engine (what the agent keeps between syncs): a remote pod that
  // local rules select as a peer appears (element adds), a local pod appears (its chains, counter
  // and map element; the CNI ADD waits for this), a policy selecting local pods changes a port.
  // Each figure includes diffText against the previous table.
  const engine = new PolicyEngine(node, {}, inputs);
  const remoteAdd: number[] = [];
  const localAdd: number[] = [];
  const policyChange: number[] = [];
  const cpu: number[] = [];
  let lines = { remote: 0, local: 0, policy: 0 };
  const count = (text: string): number => text.split('\n').length - 1;
  const peerIP = [...d.peerSets.values()].find((s) => s.pods.length > 0)!.pods[0]!;
  const like = inputs.pods.find((p) => p.podIPs[0] === peerIP)!;
  const localLike = inputs.pods.find((p) => p.nodeName === node.nodeName)!;
  const target = d.rules.values().next().value!;
  const base = inputs.policies.find((p) => `${p.namespace}/${p.name}` === target.policy)!;
  for (let i = 0; i < runs * 4; i++) {
    const c0 = process.cpuUsage();
    let before = engine.table;
    let t0 = performance.now();
    const r = diffText(before, engine.setPod({ ...like, name: `new-${i}`, nodeName: 'node-elsewhere', podIPs: [`10.200.0.${i + 1}`] }));
    remoteAdd.push(ms(t0));
    before = engine.table;
    t0 = performance.now();
    const l = diffText(before, engine.setPod({ ...localLike, name: `local-${i}`, podIPs: [`10.201.0.${i + 1}`] }));
    localAdd.push(ms(t0));
    before = engine.table;
    const changed = { ...base, ingress: base.ingress.map((rule) => ({ ...rule, ports: [...rule.ports.slice(1), { protocol: 'TCP' as const, port: 7000 + i }] })), egress: base.egress.map((rule) => ({ ...rule, ports: [...rule.ports.slice(1), { protocol: 'TCP' as const, port: 7000 + i }] })) };
    t0 = performance.now();
    const p = diffText(before, engine.setPolicy(changed));
    policyChange.push(ms(t0));
    cpu.push(cpuMs(c0) / 3);
    lines = { remote: count(r), local: count(l), policy: count(p) };
  }
  const p99 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))]!;
  process.stderr.write(`diff lines: remote pod ${lines.remote}, local pod ${lines.local}, policy change ${lines.policy}\n`);
  const result = {
    bench: 'netpol-render',
    pods: inputs.pods.length,
    policies: inputs.policies.length,
    local_pods: inputs.pods.filter((p) => p.nodeName === node.nodeName).length,
    policied_local_pods: d.pods.size,
    rule_chains: d.rules.size,
    nft_rules: ruleCount,
    sets: t.sets.size,
    elements,
    text_kb: Math.round(text.length / 1024),
    full_ms_first: full[0]!.total,
    full_ms_median: median(full.map((f) => f.total)),
    desired_ms_median: median(full.map((f) => f.desired)),
    render_ms_median: median(full.map((f) => f.render)),
    text_ms_median: median(full.map((f) => f.text)),
    full_ms_min: Math.min(...full.map((f) => f.total)),
    full_cpu_ms_median: median(full.map((f) => f.cpu)),
    incremental_cpu_ms_median: Math.round(median(cpu) * 10) / 10,
    remote_pod_add_ms_median: median(remoteAdd),
    remote_pod_add_ms_p99: p99(remoteAdd),
    local_pod_add_ms_median: median(localAdd),
    local_pod_add_ms_p99: p99(localAdd),
    policy_change_ms_median: median(policyChange),
    policy_change_ms_p99: p99(policyChange),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
