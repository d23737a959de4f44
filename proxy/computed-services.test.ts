import { describe, expect, it } from 'vitest';
import { ComputedServices } from './computed-services.js';
import type { ServicePort } from './model.js';

const port = (id: string): ServicePort => ({ id } as ServicePort);

describe('ComputedServices', () => {
  it('computes each Service once, as it is iterated, and hides the ones without ports', () => {
    const calls: string[] = [];
    const c = new ComputedServices(['a', 'gone', 'b'], (k) => (calls.push(k), k === 'gone' ? [] : [port(k)]));
    const it = c.entries();
    expect(it.next().value?.[0]).toBe('a');
    expect(calls).toEqual(['a']);
    expect([...it].map(([k]) => k)).toEqual(['b']);
    expect(calls).toEqual(['a', 'gone', 'b']);
    expect([...c.keys()]).toEqual(['a', 'b']);
    expect(c.size).toBe(2);
    expect(c.has('gone')).toBe(false);
    expect(c.get('unknown')).toBeUndefined();
    expect(calls).toEqual(['a', 'gone', 'b']);
    expect([...c.all()].map(([k, p]) => [k, p.length])).toEqual([['a', 1], ['gone', 0], ['b', 1]]);
  });

  it('all() computes whatever the iteration did not reach', () => {
    const c = new ComputedServices(['a', 'b'], (k) => [port(k)]);
    expect([...c.all().keys()]).toEqual(['a', 'b']);
  });
});
