// The suite's truth tables and case table, without root: expectations compose as upstream's do,
// a mismatch prints all three tables, and the table holds every upstream case once.
import { describe, expect, it } from 'vitest';
import { ALL_CASES, UPSTREAM_TCP, UPSTREAM_UDP, type Ctx } from './cases.js';
import { compare, PAIRS, pairKey, Reachability } from './model.js';

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

describe('the case table', () => {
  const ctx: Ctx = { ip: (p) => `10.244.${p.startsWith('x') ? 0 : 1}.${p.charCodeAt(2)}`, nodeOf: () => 1, podCidr: (n) => `10.244.${n - 1}.0/24` };
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
        expect(s.probes.length, c.name).toBeGreaterThan(0);
        for (const o of s.apply ?? []) expect(o.metadata.name, c.name).toMatch(/^[a-z0-9-]+$/);
      }
    }
  });
});
