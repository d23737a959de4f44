import { describe, expect, it } from 'vitest';
import { desiredState } from './desired.js';
import { PolicyEngine } from './engine.js';
import { cluster, cnp, netpolPod, policy } from './fixtures.js';
import type { NetworkPolicy, PolicyPod } from './model.js';
import { diffText, render, type PolicyTable } from './render.js';

/** The table with every map sorted by key (chains keep their rule order): equal tables print equal. */
function canonical(t: PolicyTable): string {
  const sorted = <V>(m: ReadonlyMap<string, V>): [string, V][] => [...m].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return JSON.stringify({
    chains: sorted(t.chains),
    sets: sorted(t.sets),
    elements: sorted(t.elements).map(([k, v]) => [k, sorted(v)]),
    counters: sorted(t.counters),
    domainSets: sorted(t.domainSets),
  });
}

/** A transaction as a sorted list of single operations (one element per line): order-free comparison. */
function lines(text: string): string[] {
  return text
    .split('\n')
    .flatMap((l) => {
      const m = /^(\w+ element [^{]+)\{ (.*) \}$/.exec(l);
      return m ? m[2]!.split(', ').map((e) => `${m[1]}{ ${e} }`) : [l];
    })
    .sort();
}

/** A small deterministic generator. */
function rng(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % n;
  };
}

const sel = (matchLabels: Record<string, string>) => ({ matchLabels });

function randomPolicy(pick: (n: number) => number, i: number): NetworkPolicy {
  const ns = ['x', 'y', 'z'][pick(3)]!;
  const peers = [
    { podSelector: sel({ pod: ['a', 'b', 'c'][pick(3)]! }) },
    { namespaceSelector: sel({ ns: ['x', 'y', 'z'][pick(3)]! }) },
    { namespaceSelector: {}, podSelector: sel({ role: ['web', 'db'][pick(2)]! }) },
    { ipBlock: { cidr: '10.244.0.0/16', except: ['10.244.2.0/24'] } },
  ].slice(pick(3));
  const ports = [[], [{ port: 80 }], [{ port: 'serve-81-udp', protocol: 'UDP' }], [{ port: 1000, endPort: 2000 }, { port: 'web' }]][pick(4)]!;
  const spec = pick(2) === 0 ? { podSelector: sel({ pod: ['a', 'b', 'c'][pick(3)]! }), ingress: [{ from: peers, ports }] } : { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: peers, ports }, {}].slice(0, 1 + pick(2)) };
  return policy(`p${i}`, spec, ns);
}

function randomPod(pick: (n: number) => number): PolicyPod {
  const ns = ['x', 'y', 'z', 'w'][pick(4)]!;
  const name = ['a', 'b', 'c', 'd', 'e'][pick(5)]!;
  return netpolPod(ns, name, {
    nodeName: pick(2) === 0 ? 'n1' : 'n2',
    labels: { pod: ['a', 'b', 'c'][pick(3)]!, ...(pick(2) === 0 ? { role: ['web', 'db'][pick(2)]! } : {}) },
    podIPs: pick(8) === 0 ? [] : [`10.244.${1 + pick(2)}.${10 + pick(40)}`],
    namedPorts: pick(2) === 0 ? [{ name: 'web', port: 8000 + pick(3), protocol: 'TCP' }] : [{ name: 'serve-81-udp', port: 81, protocol: 'UDP' }],
  });
}

describe('incremental engine', () => {
  it.each([7, 11, 23, 9])('after every change of a random history (seed %i), its table equals a full recompute, and so does its diff', (seed) => {
    const pick = rng(seed);
    const admin = [cnp('pass-y', 'Admin', 10, { subject: { namespaces: sel({ ns: 'x' }) }, ingress: [{ action: 'Pass', from: [{ namespaces: sel({ ns: 'y' }) }] }, { action: 'Deny', from: [{ pods: { namespaceSelector: {}, podSelector: sel({ role: 'db' }) } }] }] })];
    const engine = new PolicyEngine({ nodeName: 'n1', dnsAddresses: ['10.96.0.10'] }, {}, cluster([], { admin }));
    let prev = engine.table;
    let [lagging, laggingSince] = [engine.table, 0];
    for (let step = 0; step < 400; step++) {
      const op = pick(11);
      const before = engine.inputs();
      if (op === 10) {
        // Namespaces come and go and change labels, with and without pods in them.
        const name = ['x', 'y', 'z', 'w'][pick(4)]!;
        if (pick(4) === 0) engine.deleteNamespace(name);
        else engine.setNamespace({ name, labels: { ns: ['x', 'y', 'z'][pick(3)]! } });
      } else if (op < 5) engine.setPod(randomPod(pick));
      else if (op < 7 && before.pods.length > 0) engine.deletePod(`${before.pods[pick(before.pods.length)]!.namespace}/${before.pods[pick(before.pods.length)]!.name}`);
      else if (op < 9) engine.setPolicy(randomPolicy(pick, pick(6)));
      else if (before.policies.length > 0) {
        const p = before.policies[pick(before.policies.length)]!;
        engine.deletePolicy(`${p.namespace}/${p.name}`);
      }
      const want = desiredState(engine.inputs(), { nodeName: 'n1', dnsAddresses: ['10.96.0.10'] });
      const full = render(want);
      expect(canonical(engine.table), `step ${step}`).toBe(canonical(full));
      // Nothing stays behind in the state that the table no longer shows (a set's last rule gone).
      const keys = (m: ReadonlyMap<string, unknown>): string[] => [...m.keys()].sort();
      expect(keys(engine.state.peerSets), `step ${step}`).toEqual(keys(want.peerSets));
      expect(keys(engine.state.rules), `step ${step}`).toEqual(keys(want.rules));
      // The engine's diff is what a full recompute's diff would be.
      expect(lines(diffText(prev, engine.table)), `step ${step}`).toEqual(lines(diffText(prev, full)));
      // Also from a table several events back (a sync after a burst), within and beyond the depth
      // the renders' record of changed names reaches.
      expect(lines(diffText(lagging, engine.table)), `step ${step}, ${step - laggingSince} back`).toEqual(lines(diffText(lagging, full)));
      if (step - laggingSince >= (seed % 3 === 0 ? 12 : 3)) [lagging, laggingSince] = [engine.table, step];
      prev = engine.table;
    }
  });

  it('a remote pod joining a peer set is one element add; unchanged parts are shared', () => {
    const engine = new PolicyEngine({ nodeName: 'n1' }, {}, cluster([policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }] })]));
    const before = engine.table;
    const after = engine.setPod(netpolPod('x', 'new', { labels: { pod: 'b' }, podIPs: ['10.244.2.99'], nodeName: 'n2' }));
    expect(diffText(before, after)).toBe('add element inet skiff-policy s.x.p.in0.pods4 { 10.244.2.99 }\n');
    expect(after.chains.get('in.x.a')).toBe(before.chains.get('in.x.a'));
    expect(engine.setPod(netpolPod('x', 'new', { labels: { pod: 'b' }, podIPs: ['10.244.2.99'], nodeName: 'n2' }))).toBe(after);
  });

  it('a rule and its sets that lose their last user in a policy change or drop go, and only those', () => {
    const node = { nodeName: 'n1' };
    const two = policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }], ports: [{ port: 80 }] }, { from: [{ podSelector: sel({ pod: 'c' }) }] }] });
    const other = policy('q', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ pod: 'c' }) }] }] });
    const engine = new PolicyEngine(node, {}, cluster([two, other]));
    const names = (t: PolicyTable): string[] => [...t.chains.keys(), ...t.sets.keys()].filter((n) => n.includes('.x.p.')).sort();
    expect(names(engine.table)).toEqual(['r.x.p.in0', 'r.x.p.in1', 's.x.p.in0.pods4', 's.x.p.in0.ports', 's.x.p.in1.pods4']);
    // The second rule goes; the first stays with another port.
    const one = policy('p', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }], ports: [{ port: 81 }] }] });
    const before = engine.table;
    engine.setPolicy(one);
    expect(names(engine.table)).toEqual(['r.x.p.in0', 's.x.p.in0.pods4', 's.x.p.in0.ports']);
    expect([...engine.state.peerSets.keys()].filter((id) => id.startsWith('x.p.'))).toEqual(['x.p.in0']);
    expect(canonical(engine.table)).toBe(canonical(render(desiredState(engine.inputs(), node))));
    expect(diffText(before, engine.table)).toContain('delete set inet skiff-policy s.x.p.in1.pods4');
    // The other policy's rule, with the same peers, is untouched.
    expect(engine.table.chains.get('r.x.q.in0')).toBe(before.chains.get('r.x.q.in0'));
    engine.deletePolicy('x/p');
    expect(names(engine.table)).toEqual([]);
    expect([...engine.state.peerSets.keys()]).toEqual(['x.q.in0']);
    expect(canonical(engine.table)).toBe(canonical(render(desiredState(engine.inputs(), node))));
    // The last policy selecting the pod: its chains go too.
    engine.deletePolicy('x/q');
    expect(engine.state.peerSets.size).toBe(0);
    expect(canonical(engine.table)).toBe(canonical(render(desiredState(engine.inputs(), node))));
  });
});
