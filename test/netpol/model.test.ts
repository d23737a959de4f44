// The suite's truth tables, case table and oracle, without root: expectations compose as upstream's
// do, a mismatch prints all three tables, the table holds every upstream case once, and the oracle
// agrees with every hand-written table.
import { describe, expect, it } from 'vitest';
import { ALL_CASES, generated, record, UPSTREAM_TCP, UPSTREAM_UDP, type Ctx } from './cases.js';
import { asObserved, baseNamespaceLabels, basePodLabels, compare, PAIRS, pairKey, PODS, Reachability, type PodId } from './model.js';
import { Cluster, inCidr, selects } from './oracle.js';
import { np, pods } from './policies.js';

describe('Reachability', () => {
  it('composes peer patterns in order, later ones winning', () => {
    const r = new Reachability(true).expectPeer({}, { ns: 'x' }, false).expect('x/b', 'x/a', true).expectAllEgress('z/c', false);
    expect(r.get('y/a', 'x/c')).toBe(false);
    expect(r.get('x/b', 'x/a')).toBe(true);
    expect(r.get('x/c', 'x/a')).toBe(false);
    expect(r.get('z/c', 'y/a')).toBe(false);
    expect(r.get('y/a', 'z/c')).toBe(true);
  });

  it('prints expected, observed and mismatches, ignoring self pairs', () => {
    const want = new Reachability(true).expectAllIngress('x/a', false);
    const seen = new Map(PAIRS.map(([f, t]) => [pairKey(f, t), want.get(f, t)]));
    expect(compare(want, seen, 'same').wrong).toBe(0);
    seen.set(pairKey('y/b', 'x/a'), true);
    const c = compare(want, seen, 'case');
    expect(c.wrong).toBe(1);
    const lines = c.text.split('\n');
    expect(lines[0]).toBe('case: 1 of 72 pairs wrong');
    const mismatchRows = lines.slice(lines.indexOf('mismatches (X):') + 2);
    expect(mismatchRows.find((l) => l.trim().startsWith('y/b'))).toBe('  y/b  X   .   .   .   -   .   .   .   .   ');
    expect(mismatchRows.filter((l) => l.includes('X'))).toHaveLength(1);
  });
});

// Pods alternate between two nodes as in the suite; each node has its own /24.
const nodeOf = (p: PodId): number => (PODS.indexOf(p) % 2) + 1;
const ip = (p: PodId): string => `10.244.${nodeOf(p) - 1}.${10 + PODS.indexOf(p)}`;
const ctx: Ctx = { ip, nodeOf, podCidr: (n) => `10.244.${n - 1}.0/24` };

describe('the case table', () => {
  it('has the upstream suite\'s 42 TCP and 3 UDP tests, each name once', () => {
    expect(UPSTREAM_TCP).toHaveLength(42);
    expect(UPSTREAM_UDP).toHaveLength(3);
    expect(new Set(UPSTREAM_TCP.map((c) => c.name)).size).toBe(42);
  });
  it('every step probes something and names valid objects', () => {
    for (const c of ALL_CASES) {
      const steps = c.steps(ctx);
      expect(steps.length, c.name).toBeGreaterThan(0);
      for (const s of steps) {
        // Generated cases have no hand-written tables: the oracle alone says what to expect.
        if (c.group !== 'generated') expect(s.probes.length, c.name).toBeGreaterThan(0);
        for (const o of s.apply ?? []) expect(o.metadata.name, c.name).toMatch(/^[a-z0-9-]+$/);
      }
    }
  });
});

describe('the oracle', () => {
  const fresh = (): Cluster => new Cluster(ip, { ns: baseNamespaceLabels, pod: basePodLabels });

  // The hand-written tables and the oracle were written separately: each pins the other down on
  // the ports the case names, and the suite then trusts the oracle on the others.
  for (const c of ALL_CASES.filter((x) => x.group !== 'generated')) {
    it(`agrees with the hand-written tables: ${c.group}: ${c.name}`, () => {
      const cluster = fresh();
      for (const [i, step] of c.steps(ctx).entries()) {
        record(step, cluster);
        for (const p of step.probes) {
          const cmp = compare(p.reach, asObserved(cluster.expected(p.port, p.protocol)), `step ${i + 1}, ${p.protocol}/${p.port} (observed: the oracle)`);
          expect(cmp.wrong, cmp.text).toBe(0);
        }
      }
    });
  }

  it('makes every generated case decide something: on its four matrices some pairs are allowed and some denied', () => {
    const cases = generated();
    expect(cases).toHaveLength(32);
    expect(new Set(cases.map((c) => c.name)).size).toBe(32);
    for (const c of cases) {
      const cluster = fresh();
      for (const step of c.steps(ctx)) record(step, cluster);
      const cells = (['TCP', 'UDP'] as const).flatMap((proto) => ([80, 81] as const).flatMap((port) => PAIRS.map(([f, t]) => cluster.expected(port, proto).get(f, t))));
      expect(cells.filter((x) => !x).length, c.name).toBeGreaterThan(0);
      expect(cells.filter((x) => x).length, c.name).toBeGreaterThan(0);
    }
  });

  it('defaults policyTypes to Ingress, plus Egress when egress rules are given', () => {
    const c = fresh();
    c.apply({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'p', namespace: 'x' }, spec: { podSelector: {} } });
    expect(c.expected(80, 'TCP').get('y/a', 'x/a')).toBe(false);
    expect(c.expected(80, 'TCP').get('x/a', 'y/a')).toBe(true);
    c.apply({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'p', namespace: 'x' }, spec: { podSelector: {}, ingress: [{}], egress: [] } });
    expect(c.expected(80, 'TCP').get('y/a', 'x/a')).toBe(true);
    expect(c.expected(80, 'TCP').get('x/a', 'y/a')).toBe(false);
  });

  it('keeps a rule to its protocol and ports: a named UDP port opens neither TCP nor the other UDP port', () => {
    const c = fresh();
    c.apply(np('x', 'p', pods('a'), { ingress: [{ ports: [{ protocol: 'UDP', port: 'serve-81-udp' }] }] }));
    expect(c.expected(81, 'UDP').get('y/a', 'x/a')).toBe(true);
    expect(c.expected(80, 'UDP').get('y/a', 'x/a')).toBe(false);
    expect(c.expected(81, 'TCP').get('y/a', 'x/a')).toBe(false);
    expect(c.expected(81, 'TCP').get('y/a', 'x/b')).toBe(true);
  });

  it('reads selectors as the API does: NotIn matches a missing key, DoesNotExist and Exists', () => {
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, {})).toBe(true);
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1'] }] }, {})).toBe(false);
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'Exists' }] }, { a: '' })).toBe(true);
    expect(selects({ matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, { a: '' })).toBe(false);
    expect(selects({}, { a: '1' })).toBe(true);
    expect(inCidr('10.244.1.7', '10.244.0.0/23')).toBe(true);
    expect(inCidr('10.244.2.7', '10.244.0.0/23')).toBe(false);
  });
});
