// "Would A reach B on TCP 80, and which rule decides?" answered from the same desired state the
// nft rules are rendered from (stateFor/evaluate in desired.ts), so the answer and the kernel
// cannot drift apart. A connection needs both ends: egress on A's node, ingress on B's node.
// Service addresses are not resolved here: policy judges the chosen endpoint (after DNAT), so ask
// about the endpoint pod.
import { evaluate, PolicyIndex, stateFor, type Direction, type PolicyInputs } from './desired.js';
import { familyOf } from './ipnet.js';
import { policyKey, type PolicyPod, type Protocol } from './model.js';

/** A pod by "namespace/name", a bare address (outside the cluster, a node), or a node by name. */
export type FlowEnd = { readonly pod: string } | { readonly ip: string } | { readonly node: string; readonly ip?: string };

export interface DirectionVerdict {
  readonly verdict: 'allow' | 'deny' | 'not-isolated' | 'not-applicable';
  /** Policies isolating the pod in this direction. */
  readonly policies: readonly string[];
  /** The policy and rule ("ingress[0]") that allowed. */
  readonly policy?: string;
  readonly rule?: string;
  readonly reason: string;
}

export interface Explanation {
  readonly allowed: boolean;
  readonly egress: DirectionVerdict;
  readonly ingress: DirectionVerdict;
}

export interface ExplainOptions {
  readonly dnsAddresses?: readonly string[];
}

interface End {
  readonly label: string;
  readonly pod?: PolicyPod;
  readonly node?: string;
  readonly ips: readonly string[];
}

function resolve(index: PolicyIndex, e: FlowEnd): End {
  if ('pod' in e) {
    const pod = index.podsByKey.get(e.pod);
    if (!pod) throw new Error(`unknown pod ${e.pod}`);
    return { label: e.pod, pod, ips: pod.podIPs };
  }
  if ('node' in e) return { label: `node ${e.node}`, node: e.node, ips: e.ip ? [e.ip] : [] };
  if (!familyOf(e.ip)) throw new Error(`not an IP address: ${e.ip}`);
  return { label: e.ip, ips: [e.ip] };
}

/** The address `end` uses to talk to `other`: one of the same family when it has several. */
function addressOf(end: End, other: End): string | undefined {
  const fam = other.ips[0] ? familyOf(other.ips[0]) : undefined;
  return end.ips.find((ip) => familyOf(ip) === fam) ?? end.ips[0];
}

function judge(index: PolicyIndex, local: End, direction: Direction, remote: End, protocol: Protocol, port: number, o: ExplainOptions): DirectionVerdict {
  const pod = local.pod;
  if (!pod) return { verdict: 'not-applicable', policies: [], reason: `${local.label} is not a pod: no ${direction} policy applies` };
  if (pod.hostNetwork) return { verdict: 'not-applicable', policies: [], reason: `${local.label} uses the host network: NetworkPolicy does not apply` };
  if (pod.podIPs.length === 0) return { verdict: 'not-applicable', policies: [], reason: `${local.label} has no address` };
  if (direction === 'ingress' && remote.node !== undefined && remote.node === pod.nodeName) {
    return { verdict: 'allow', policies: [], reason: 'traffic from the pod\'s own node always passes (kubelet probes)' };
  }
  const d = stateFor(index, [pod], o.dnsAddresses ?? []);
  const key = policyKey(pod);
  const dp = d.pods.get(key)?.[direction];
  const policies = dp?.policies ?? [];
  const peer = addressOf(remote, local);
  if (!dp) return { verdict: 'not-isolated', policies, reason: `no policy selects ${local.label} for ${direction}` };
  if (!peer) return { verdict: policies.length > 0 ? 'deny' : 'not-isolated', policies, reason: `${remote.label} has no address to match` };
  const v = evaluate(d, key, direction, peer, protocol, port)!;
  const what = `${protocol} ${port} ${direction === 'ingress' ? 'from' : 'to'} ${remote.label} (${peer})`;
  if (v.dns) return { verdict: 'allow', policies, reason: `node-local DNS: an egress rule allows ${protocol} 53` };
  if (v.unmatched) return { verdict: 'not-isolated', policies, reason: `no tier decides ${what} and no NetworkPolicy isolates ${local.label}` };
  const r = v.rule;
  if (r) {
    const rule = `${direction}[${r.index}]${r.name ? ` "${r.name}"` : ''}`;
    const tier = r.tier ? `${r.tier} tier ${r.policy} (priority ${r.priority}) ${rule}: ${r.action}` : `${r.policy} ${rule} allows`;
    return { verdict: v.allowed ? 'allow' : 'deny', policies, policy: r.policy, rule: `${direction}[${r.index}]`, reason: `${tier} ${what}` };
  }
  return { verdict: 'deny', policies, reason: `isolated by ${policies.join(', ')}; no rule allows ${what}` };
}

export function explain(inputs: PolicyInputs, from: FlowEnd, to: FlowEnd, protocol: Protocol, port: number, o: ExplainOptions = {}): Explanation {
  const index = new PolicyIndex(inputs);
  const a = resolve(index, from);
  const b = resolve(index, to);
  if (a.pod && a.pod === b.pod && !a.pod.hostNetwork) {
    // Upstream's conformance expects a pod to reach itself even through its own Service (hairpin).
    const self: DirectionVerdict = { verdict: 'allow', policies: [], reason: 'a pod always reaches itself' };
    return { allowed: true, egress: self, ingress: self };
  }
  const egress = judge(index, a, 'egress', b, protocol, port, o);
  const ingress = judge(index, b, 'ingress', a, protocol, port, o);
  return { allowed: egress.verdict !== 'deny' && ingress.verdict !== 'deny', egress, ingress };
}
