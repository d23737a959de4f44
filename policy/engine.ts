// The engine kept warm between syncs: the same desired state and table as
// desiredState()+render(), updated per changed object instead of recomputed, so a pod add or a
// policy change costs what it touches (a few sets, one pod's chains), not the cluster. Still no
// I/O: the applier sends diffText(previous table, engine.table) (unchanged parts are the same
// objects, so the diff skips them by identity). Namespaces, admin policies and nodes change
// rarely and touch everything: they recompute in full.
import type { ClusterPolicy, PolicyNodeInfo } from './admin.js';
import { desiredState, PolicyIndex, podPolicy, ruleBaseId, type DesiredState, type PeerSet, type PodPolicy, type PolicyInputs, type PolicyNode } from './desired.js';
import { policyKey, type NetworkPolicy, type PolicyNamespace, type PolicyPod } from './model.js';
import { render, renderChanges, type PolicyTable, type RenderOptions } from './render.js';

function samePod(a: PolicyPod, b: PolicyPod): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function sameSet(a: PeerSet, b: PeerSet): boolean {
  const eq = <T>(x: readonly T[], y: readonly T[], f: (p: T, q: T) => boolean = (p, q) => p === q): boolean => x.length === y.length && x.every((v, i) => f(v, y[i]!));
  return (
    a.all === b.all &&
    a.selectors === b.selectors &&
    eq(a.pods, b.pods) &&
    eq(a.nets4, b.nets4, (p, q) => p.lo === q.lo && p.hi === q.hi) &&
    eq(a.nets6, b.nets6, (p, q) => p.lo === q.lo && p.hi === q.hi) &&
    eq(a.named, b.named, (p, q) => p.ip === q.ip && p.port === q.port && p.protocol === q.protocol) &&
    eq(a.domains, b.domains)
  );
}

export class PolicyEngine {
  private readonly policies = new Map<string, NetworkPolicy>();
  private readonly pods = new Map<string, PolicyPod>();
  private readonly namespaces = new Map<string, PolicyNamespace>();
  /**
   * Policies and local pods per namespace (keys): a policy change looks at its namespace's only,
   * not at every policy and pod of the cluster (4,800 and 10,000 at the bench's shape).
   */
  private readonly policiesByNs = new Map<string, Map<string, NetworkPolicy>>();
  private readonly localByNs = new Map<string, Set<string>>();
  private admin: readonly ClusterPolicy[] = [];
  private nodes: readonly PolicyNodeInfo[] = [];
  private index!: PolicyIndex;
  private stateNow!: DesiredState;
  private tableNow!: PolicyTable;

  constructor(
    private readonly node: PolicyNode,
    private readonly options: RenderOptions = {},
    inputs: PolicyInputs = { policies: [], pods: [], namespaces: [] },
  ) {
    this.reset(inputs);
  }

  get state(): DesiredState {
    return this.stateNow;
  }

  get table(): PolicyTable {
    return this.tableNow;
  }

  inputs(): PolicyInputs {
    return { policies: [...this.policies.values()], pods: [...this.pods.values()], namespaces: [...this.namespaces.values()], admin: this.admin, nodes: this.nodes };
  }

  /** Everything from scratch (start, resync, or a change that touches everything). */
  reset(inputs: PolicyInputs): PolicyTable {
    this.policies.clear();
    this.pods.clear();
    this.namespaces.clear();
    this.policiesByNs.clear();
    this.localByNs.clear();
    for (const p of inputs.policies) this.trackPolicy(policyKey(p), undefined, p);
    for (const p of inputs.pods) this.trackPod(policyKey(p), undefined, p);
    for (const n of inputs.namespaces) this.namespaces.set(n.name, n);
    this.admin = inputs.admin ?? [];
    this.nodes = inputs.nodes ?? [];
    return this.full();
  }

  private full(): PolicyTable {
    const inputs = this.inputs();
    this.index = new PolicyIndex(inputs);
    this.stateNow = desiredState(inputs, this.node, this.index);
    this.tableNow = render(this.stateNow, this.options);
    return this.tableNow;
  }

  private isLocal(p: PolicyPod | undefined): p is PolicyPod {
    return p !== undefined && p.nodeName === this.node.nodeName;
  }

  setPod(pod: PolicyPod): PolicyTable {
    const key = policyKey(pod);
    const old = this.pods.get(key);
    if (old && samePod(old, pod)) return this.tableNow;
    this.trackPod(key, old, pod);
    return this.podChanged(key, old, pod);
  }

  deletePod(key: string): PolicyTable {
    const old = this.pods.get(key);
    if (!old) return this.tableNow;
    this.trackPod(key, old, undefined);
    return this.podChanged(key, old, undefined);
  }

  private podChanged(key: string, old: PolicyPod | undefined, pod: PolicyPod | undefined): PolicyTable {
    this.index.replacePod(old, pod);
    const sets = new Set<string>();
    // Copied at the first set that really changed: most pod events (an ADD) change a few or none.
    let peerSets: Map<string, PeerSet> | undefined;
    // Selector results per pod, shared across the sets (rules repeat selectors).
    const seenOld = { ns: new Map(), pod: new Map() };
    const seenNew = { ns: new Map(), pod: new Map() };
    const candidates = new Set<string>();
    for (const p of [old, pod]) if (p) for (const id of this.index.setsTouching(p.namespace)) candidates.add(id);
    for (const id of candidates) {
      const s = this.stateNow.peerSets.get(id);
      if (!s) continue;
      if (!(old && this.index.podMatters(id, old, seenOld)) && !(pod && this.index.podMatters(id, pod, seenNew))) continue;
      const fresh = this.index.recomputeSet(id);
      if (sameSet(s, fresh)) continue;
      (peerSets ??= new Map(this.stateNow.peerSets)).set(id, fresh);
      sets.add(id);
    }
    const local = this.isLocal(old) || this.isLocal(pod) ? [key] : [];
    return this.apply(local, new Set(), sets, peerSets ?? this.stateNow.peerSets);
  }

  setPolicy(p: NetworkPolicy): PolicyTable {
    const key = policyKey(p);
    const old = this.policies.get(key);
    if (old && JSON.stringify(old) === JSON.stringify(p)) return this.tableNow;
    this.trackPolicy(key, old, p);
    return this.policyChanged(p.namespace, key, old, p);
  }

  deletePolicy(key: string): PolicyTable {
    const old = this.policies.get(key);
    if (!old) return this.tableNow;
    this.trackPolicy(key, old, undefined);
    return this.policyChanged(old.namespace, key, old, undefined);
  }

  private policyChanged(ns: string, key: string, old: NetworkPolicy | undefined, pol: NetworkPolicy | undefined): PolicyTable {
    this.index.replacePolicies(ns, [...(this.policiesByNs.get(ns)?.values() ?? [])]);
    for (const p of [old, pol]) {
      if (!p) continue;
      (['ingress', 'egress'] as const).forEach((dir) => (dir === 'ingress' ? p.ingress : p.egress).forEach((_r, i) => this.index.forgetSet(ruleBaseId(p, dir, i))));
    }
    // The policy's rules are recomputed from scratch: same ids may now mean other content.
    const rules = new Set<string>();
    const sets = new Set<string>();
    for (const r of this.stateNow.rules.values()) {
      if (r.policy !== key) continue;
      rules.add(r.id);
      sets.add(r.setId);
    }
    const local = [...(this.localByNs.get(ns) ?? [])];
    // Not copied: apply copies the map at the first set that really changes.
    return this.apply(local, rules, sets, this.stateNow.peerSets, key);
  }

  /** Stores a pod (undefined: deletes it), keeping `localByNs` current. */
  private trackPod(key: string, old: PolicyPod | undefined, pod: PolicyPod | undefined): void {
    if (pod) this.pods.set(key, pod);
    else this.pods.delete(key);
    if (this.isLocal(old)) {
      const keys = this.localByNs.get(old.namespace);
      keys?.delete(key);
      if (keys?.size === 0) this.localByNs.delete(old.namespace);
    }
    if (this.isLocal(pod)) {
      let keys = this.localByNs.get(pod.namespace);
      if (!keys) this.localByNs.set(pod.namespace, (keys = new Set()));
      keys.add(key);
    }
  }

  /** Stores a policy (undefined: deletes it), keeping `policiesByNs` current. */
  private trackPolicy(key: string, old: NetworkPolicy | undefined, p: NetworkPolicy | undefined): void {
    if (p) this.policies.set(key, p);
    else this.policies.delete(key);
    const ns = (p ?? old)!.namespace;
    let m = this.policiesByNs.get(ns);
    if (!m) this.policiesByNs.set(ns, (m = new Map()));
    if (p) m.set(key, p);
    else m.delete(key);
    if (m.size === 0) this.policiesByNs.delete(ns);
  }

  setNamespace(ns: PolicyNamespace): PolicyTable {
    const old = this.namespaces.get(ns.name);
    if (old && JSON.stringify(old) === JSON.stringify(ns)) return this.tableNow;
    this.namespaces.set(ns.name, ns);
    return this.namespaceChanged(ns.name, ns);
  }

  deleteNamespace(name: string): PolicyTable {
    if (!this.namespaces.delete(name)) return this.tableNow;
    return this.namespaceChanged(name, undefined);
  }

  /**
   * A namespace without pods changes no address set and no subject: only the selector memos go
   * (namespaces are created before their pods, 240 at once in kube-burner: no full recompute
   * each). Labels of a namespace with pods can move anything: full recompute.
   */
  private namespaceChanged(name: string, ns: PolicyNamespace | undefined): PolicyTable {
    if (this.index.hasPods(name)) return this.full();
    this.index.replaceNamespace(name, ns);
    return this.tableNow;
  }

  setAdmin(admin: readonly ClusterPolicy[]): PolicyTable {
    if (JSON.stringify(admin) === JSON.stringify(this.admin)) return this.tableNow;
    this.admin = admin;
    return this.full();
  }

  setNodes(nodes: readonly PolicyNodeInfo[]): PolicyTable {
    if (JSON.stringify(nodes) === JSON.stringify(this.nodes)) return this.tableNow;
    this.nodes = nodes;
    // Nodes are only ever peers of admin `nodes` rules.
    const used = this.admin.some((c) => [...c.ingress, ...c.egress].some((r) => r.peers.some((p) => p.nodes)));
    return used ? this.full() : this.tableNow;
  }

  /**
   * Recomputes the given local pods (their rules dropped first when `dropPolicy` names the policy
   * that changed), collects rules and sets nobody uses any more, and renders only what changed.
   */
  private apply(podKeys: readonly string[], rules: Set<string>, sets: Set<string>, given: ReadonlyMap<string, PeerSet>, dropPolicy?: string): PolicyTable {
    const prev = this.stateNow;
    let peerSets = given === prev.peerSets ? undefined : (given as Map<string, PeerSet>);
    const writable = (): Map<string, PeerSet> => (peerSets ??= new Map(prev.peerSets));
    const ruleMap = new Map(prev.rules);
    if (dropPolicy) for (const id of rules) ruleMap.delete(id);
    const pods = new Map(prev.pods);
    const changedPods = new Set<string>();
    // A policy's old rules: dropped above, re-added below by the pods that still use them.
    const oldRules = dropPolicy ? [...rules] : [];
    const addedSets = new Set<string>();
    // Whether some rule may have lost its last user (a pod that used a rule and now does not): only
    // then is the whole state walked for rules and sets to collect. After a policy change the
    // recomputed pods are all the local pods of its namespace and a pod's rules depend on its
    // namespace's policies (and the unchanged admin tiers) alone, so only the changed policy's old
    // rules can have lost their users, and only their sets (set ids are per policy rule).
    let dropped = false;
    for (const key of podKeys) {
      const pod = this.pods.get(key);
      // podPolicy only adds rules, at the end of the map's order.
      const known = ruleMap.size;
      const pp: PodPolicy | undefined = this.isLocal(pod) ? podPolicy(this.index, pod, ruleMap, prev.dnsAddresses) : undefined;
      if (ruleMap.size > known) {
        let i = 0;
        for (const [id, r] of ruleMap) {
          if (i++ < known) continue;
          rules.add(id);
          sets.add(r.setId);
          addedSets.add(r.setId);
          const fresh = this.index.computedSet(r.setId)!;
          const was = (peerSets ?? prev.peerSets).get(r.setId);
          // Same content (a port-only change): the old object stays and the map is not copied.
          if (!was || !sameSet(was, fresh)) writable().set(r.setId, fresh);
        }
      }
      const was = prev.pods.get(key);
      if (pp) pods.set(key, pp);
      else pods.delete(key);
      if (JSON.stringify(was) !== JSON.stringify(pp)) changedPods.add(key);
      if (was && !dropped && !dropPolicy) {
        const now = new Set(pp ? ruleIds(pp) : []);
        dropped = ruleIds(was).some((id) => !now.has(id));
      }
    }
    if (dropped) {
      // Rules no local pod uses any more go, and sets no rule uses.
      const used = new Set<string>();
      for (const p of pods.values()) for (const id of ruleIds(p)) used.add(id);
      for (const id of [...ruleMap.keys()]) {
        if (used.has(id)) continue;
        const r = ruleMap.get(id)!;
        ruleMap.delete(id);
        rules.add(id);
        sets.add(r.setId);
      }
      const usedSets = new Set([...ruleMap.values()].map((r) => r.setId));
      for (const id of [...(peerSets ?? prev.peerSets).keys()]) {
        if (usedSets.has(id)) continue;
        writable().delete(id);
        // Not kept current from here on: a later user must recompute it.
        this.index.forgetSet(id);
        sets.add(id);
      }
    }
    for (const id of oldRules) {
      const setId = prev.rules.get(id)!.setId;
      if (ruleMap.has(id) || addedSets.has(setId) || !(peerSets ?? prev.peerSets).has(setId)) continue;
      writable().delete(setId);
      this.index.forgetSet(setId);
      sets.add(setId);
    }
    // A rule id kept with identical content need not be rewritten.
    for (const id of [...rules]) {
      const a = prev.rules.get(id);
      const b = ruleMap.get(id);
      if (a && b && JSON.stringify(a) === JSON.stringify(b) && !dropPolicy) rules.delete(id);
    }
    const next: DesiredState = { pods, rules: ruleMap, peerSets: peerSets ?? prev.peerSets, dnsAddresses: prev.dnsAddresses };
    this.tableNow = renderChanges(this.tableNow, prev, next, { pods: changedPods, rules, sets }, this.options);
    this.stateNow = next;
    return this.tableNow;
  }
}

/** Every rule id a local pod's state refers to (NetworkPolicy and both tiers, both directions). */
function ruleIds(p: PodPolicy): string[] {
  const out: string[] = [];
  for (const d of [p.ingress, p.egress]) if (d) out.push(...d.rules, ...(d.admin ?? []), ...(d.baseline ?? []));
  return out;
}
