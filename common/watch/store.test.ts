import { describe, expect, it } from 'vitest';
import { serviceInfo } from '../../test/support/objects.js';
import type { ServiceInfo } from '../types.js';
import { MemoryCache, type ChangeBatch } from './store.js';

const svc = (name: string, port = 80): ServiceInfo =>
  serviceInfo('default', name, { clusterIPs: ['10.96.0.1'], ports: [{ name: 'http', protocol: 'TCP', port, targetPort: 8080 }] });

const nextBatch = (cache: MemoryCache): Promise<ChangeBatch> =>
  new Promise((resolve) => {
    const off = cache.subscribe(['services'], (b) => {
      off();
      resolve(b);
    });
  });

describe('MemoryCache', () => {
  it('a list applied object by object keeps the held objects that did not change, and retain removes the rest', async () => {
    const cache = new MemoryCache();
    cache.replace('services', new Map([['default/a', svc('a')], ['default/b', svc('b')], ['default/c', svc('c')]]));
    const held = cache.store('services').get('default/a');
    await new Promise((r) => setTimeout(r, 5));
    const p = nextBatch(cache);
    // A relist: a is unchanged (a fresh but equal object), b changed, c is gone, d is new.
    cache.upsert('services', 'default/a', svc('a'));
    cache.upsert('services', 'default/b', svc('b', 81));
    cache.upsert('services', 'default/d', svc('d'));
    cache.retain('services', new Set(['default/a', 'default/b', 'default/d']));
    const b = await p;
    expect(b.changes.map((c) => `${c.key} ${c.previous ? 'prev' : '-'} ${c.current ? 'cur' : '-'}`).sort()).toEqual(['default/b prev cur', 'default/c prev -', 'default/d - cur']);
    expect(b.synced).toEqual(['services']);
    expect(cache.store('services').get('default/a')).toBe(held);
    expect([...cache.store('services').keys()].sort()).toEqual(['default/a', 'default/b', 'default/d']);
  });

  it('coalesces a burst into one batch and collapses each key to first previous and last current', async () => {
    const cache = new MemoryCache();
    const batches: ChangeBatch[] = [];
    cache.subscribe(['services'], (b) => batches.push(b));
    for (let i = 0; i < 1000; i++) cache.upsert('services', 'default/a', svc('a', 1000 + i));
    await new Promise((r) => setTimeout(r, 20));
    expect(batches).toHaveLength(1);
    expect(batches[0]!.changes).toHaveLength(1);
    expect(batches[0]!.changes[0]!.previous).toBeUndefined();
    expect((batches[0]!.changes[0]!.current as ServiceInfo).ports[0]!.port).toBe(1999);
  });

  it('drops changes that revert within a batch', async () => {
    const cache = new MemoryCache();
    cache.upsert('services', 'default/a', svc('a'));
    await new Promise((r) => setTimeout(r, 5));
    const p = nextBatch(cache);
    cache.upsert('services', 'default/a', svc('a', 81));
    cache.upsert('services', 'default/a', svc('a', 80));
    cache.upsert('services', 'default/b', svc('b'));
    cache.remove('services', 'default/b');
    cache.upsert('services', 'default/c', svc('c'));
    const b = await p;
    expect(b.changes.map((c) => c.key)).toEqual(['default/c']);
  });

  it('replace emits only true differences and marks the kind synced', async () => {
    const cache = new MemoryCache();
    cache.upsert('services', 'default/a', svc('a'));
    cache.upsert('services', 'default/b', svc('b'));
    await new Promise((r) => setTimeout(r, 5));
    expect(cache.synced(['services'])).toBe(false);
    const p = nextBatch(cache);
    cache.replace('services', new Map([['default/a', svc('a')], ['default/c', svc('c')]]));
    const b = await p;
    expect(b.synced).toEqual(['services']);
    expect(b.changes.map((c) => [c.key, !!c.previous, !!c.current]).sort()).toEqual([['default/b', true, false], ['default/c', false, true]]);
    expect(cache.synced(['services'])).toBe(true);
    await cache.waitForSync(['services']);
  });

  it('keeps secondary indexes in step with updates', () => {
    const cache = new MemoryCache();
    const store = cache.store('services');
    store.addIndex('ip', (s) => s.clusterIPs);
    cache.upsert('services', 'default/a', svc('a'));
    expect(store.byIndex('ip', '10.96.0.1').map((s) => s.name)).toEqual(['a']);
    cache.upsert('services', 'default/a', { ...svc('a'), clusterIPs: ['10.96.0.2'] });
    expect(store.byIndex('ip', '10.96.0.1')).toEqual([]);
    expect(store.byIndex('ip', '10.96.0.2')).toHaveLength(1);
    cache.remove('services', 'default/a');
    expect(store.byIndex('ip', '10.96.0.2')).toEqual([]);
  });

  it('indexes one, several and again one object under a value', () => {
    const cache = new MemoryCache();
    const store = cache.store('services');
    store.addIndex('ip', (s) => s.clusterIPs);
    const names = (ip: string) => store.byIndex('ip', ip).map((s) => s.name).sort();
    cache.upsert('services', 'default/a', svc('a'));
    cache.upsert('services', 'default/b', svc('b'));
    cache.upsert('services', 'default/c', { ...svc('c'), clusterIPs: ['10.96.0.1', '10.96.0.1'] });
    expect(names('10.96.0.1')).toEqual(['a', 'b', 'c']);
    cache.remove('services', 'default/b');
    cache.remove('services', 'default/c');
    expect(names('10.96.0.1')).toEqual(['a']);
    cache.upsert('services', 'default/b', svc('b'));
    expect(names('10.96.0.1')).toEqual(['a', 'b']);
    cache.remove('services', 'default/a');
    cache.remove('services', 'default/b');
    expect(names('10.96.0.1')).toEqual([]);
    cache.upsert('services', 'default/a', svc('a'));
    expect(names('10.96.0.1')).toEqual(['a']);
  });

  it('honours the minimum interval between batches', async () => {
    const cache = new MemoryCache();
    const times: number[] = [];
    cache.subscribe(['services'], () => times.push(Date.now()), { minIntervalMs: 50 });
    cache.upsert('services', 'default/a', svc('a', 1));
    await new Promise((r) => setTimeout(r, 5));
    cache.upsert('services', 'default/a', svc('a', 2));
    await new Promise((r) => setTimeout(r, 80));
    expect(times).toHaveLength(2);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(45);
  });

  it('delivers the changes queued before a kind is synced before the sync wakes anyone waiting for it', async () => {
    const cache = new MemoryCache();
    const seen: string[] = [];
    cache.subscribe(['services'], (b) => seen.push(`batch ${b.changes.length} synced ${b.synced.join()}`), { minIntervalMs: 60_000 });
    const waited = cache.waitForSync(['services']).then(() => seen.push('waiter'));
    cache.upsert('services', 'default/a', svc('a'));
    await new Promise((r) => setImmediate(r));
    // The first batch went out; the minimum interval now holds the next change back...
    cache.upsert('services', 'default/b', svc('b'));
    cache.upsert('services', 'default/c', svc('c'));
    // ...but not past the sync: whoever starts from the store then must not get them again later.
    cache.markSynced('services');
    await waited;
    expect(seen).toEqual(['batch 1 synced ', 'batch 2 synced services', 'waiter']);
  });

  it('waitForSync rejects when aborted', async () => {
    const cache = new MemoryCache();
    const ac = new AbortController();
    const p = cache.waitForSync(['nodes'], ac.signal);
    ac.abort(new Error('stop'));
    await expect(p).rejects.toThrow('stop');
  });
});
