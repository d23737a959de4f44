// The watch cache against the fake API server, through the real client library over HTTP.
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../../sandbox/apiserver/index.js';
import { missing } from '../../test/support/env.js';
import type { KubeObject } from '../../sandbox/apiserver/index.js';
import type { ServiceInfo } from '../types.js';
import { createWatchCache, type WatchCacheHandle } from './informer.js';
import { registry } from '../metrics.js';
import { watchRelists } from './metrics.js';
import type { ChangeBatch } from './store.js';
import { fixture, summarise, waitFor, type Fixture } from './test-helpers.js';

const svc = (name: string, port = 80, ns = 'default'): KubeObject => ({
  metadata: { name, namespace: ns, labels: { app: name } },
  spec: { type: 'ClusterIP', clusterIP: `10.96.0.${port % 250}`, ports: [{ name: 'http', port, protocol: 'TCP' }] },
});
const pod = (name: string, node: string): KubeObject => ({ metadata: { name, namespace: 'default' }, spec: { nodeName: node }, status: { podIP: '10.244.0.5', phase: 'Running' } });

async function relists(kind: string): Promise<number> {
  const m = await watchRelists.get();
  return m.values.find((v) => v.labels.kind === kind)?.value ?? 0;
}

/** Versioned text per change: the service's first port, so updates are visible in the summary. */
const portOf = (o: unknown): string => (o === undefined ? '-' : String((o as ServiceInfo).ports[0]?.port));

let fx: Fixture | undefined;
let stop: AbortController | undefined;
let running: Promise<void> | undefined;

afterEach(async () => {
  stop?.abort();
  await running;
  await fx?.dispose();
  fx = undefined;
  stop = undefined;
  running = undefined;
});

function start(f: Fixture, kinds?: Parameters<typeof createWatchCache>[0]['kinds']): WatchCacheHandle {
  const h = createWatchCache({ kubeConfig: f.kubeConfig, nodeName: 'node-a', log: f.log, kinds, pageSize: 3, backoff: { minMs: 20, maxMs: 200 } });
  stop = new AbortController();
  running = h.start(stop.signal);
  return h;
}

function record(h: WatchCacheHandle, kinds: Parameters<WatchCacheHandle['cache']['subscribe']>[0]): ChangeBatch[] {
  const batches: ChangeBatch[] = [];
  h.cache.subscribe(kinds, (b) => batches.push(b));
  return batches;
}

describe('watch cache', () => {
  it('lists every kind in pages and converts the objects', async () => {
    fx = await fixture();
    const s = fx.api.store;
    for (const n of ['default', 'kube-system']) s.create('namespaces', { metadata: { name: n, labels: { team: n } } });
    for (let i = 0; i < 7; i++) s.create('services', svc(`s${i}`, 8000 + i));
    s.create('nodes', { metadata: { name: 'node-a', annotations: { 'skiff.io/vtep': 'x', 'other.io/y': 'z' } }, spec: { podCIDR: '10.244.1.0/24' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
    s.create('endpointslices', {
      metadata: { name: 's0-abc', namespace: 'default', labels: { 'kubernetes.io/service-name': 's0' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ addresses: ['10.244.1.7'], conditions: { ready: false, terminating: true }, nodeName: 'node-a' }],
    });
    s.create('pods', pod('mine', 'node-a'));
    s.create('pods', pod('theirs', 'node-b'));
    const h = start(fx);
    const batches = record(h, ['services']);
    await h.cache.waitForSync(['nodes', 'services', 'endpointslices', 'namespaces', 'pods']);

    expect([...h.cache.store('services').keys()].sort()).toEqual(['s0', 's1', 's2', 's3', 's4', 's5', 's6'].map((n) => `default/${n}`));
    expect(h.cache.store('services').get('default/s3')).toMatchObject({ clusterIPs: ['10.96.0.3'], ipFamilies: ['IPv4'], ports: [{ name: 'http', port: 8003, protocol: 'TCP', targetPort: 8003 }] });
    expect(h.cache.store('nodes').get('node-a')).toMatchObject({ podCIDRs: ['10.244.1.0/24'], ready: true, annotations: { 'skiff.io/vtep': 'x' } });
    expect(h.cache.store('nodes').get('node-a')!.annotations).not.toHaveProperty('other.io/y');
    const slice = h.cache.store('endpointslices').get('default/s0-abc')!;
    expect(slice.serviceName).toBe('s0');
    expect([...slice.endpoints]).toMatchObject([{ ready: false, serving: false, terminating: true }]);
    expect([...h.cache.store('pods').keys()]).toEqual(['default/mine']);
    expect(h.cache.store('namespaces').get('kube-system')).toEqual({ name: 'kube-system', labels: { team: 'kube-system' } });
    // Without policy nothing cluster-wide about pods is asked for, and no NetworkPolicy at all.
    expect(fx.api.requests.filter((r) => r.url.startsWith('/api/v1/pods') && !r.url.includes('fieldSelector'))).toEqual([]);
    expect(fx.api.requests.filter((r) => r.url.includes('networkpolicies'))).toEqual([]);
    expect(h.cache.synced(['policypods'])).toBe(false);
    // 7 services in pages of 3 = 3 list requests, all of which came from the real paging protocol.
    expect(fx.api.requests.filter((r) => r.url.startsWith('/api/v1/services?') && !r.url.includes('watch')).length).toBe(3);
    await waitFor(() => batches.some((b) => b.synced.includes('services')), 'the synced batch');
    expect(summarise(batches)).toHaveLength(7);
  });

  it('applies adds, updates and deletes as exact change batches', async () => {
    fx = await fixture();
    const h = start(fx, ['services']);
    await h.cache.waitForSync(['services']);
    const batches = record(h, ['services']);
    const s = fx.api.store;
    s.create('services', svc('web', 80));
    await waitFor(() => batches.length === 1, 'the add');
    s.patch('services', 'web', { spec: { ports: [{ name: 'http', port: 81 }] } });
    await waitFor(() => batches.length === 2, 'the update');
    // A write that changes nothing the cache keeps (an annotation) must not wake anyone.
    s.patch('services', 'web', { metadata: { annotations: { note: 'x' } } });
    s.delete('services', 'web');
    await waitFor(() => batches.length === 3, 'the delete');
    expect(summarise(batches, portOf)).toEqual(['services default/web: - -> 80', 'services default/web: 80 -> 81', 'services default/web: 81 -> -']);
    expect(h.cache.store('services').size).toBe(0);
    const text = await registry.metrics();
    expect(text).toMatch(/skiff_watch_events_total\{kind="services",type="ADDED"\} [1-9]/);
    expect(text).toMatch(/skiff_watch_events_total\{kind="services",type="DELETED"\} [1-9]/);
    expect(text).toMatch(/skiff_watch_objects\{kind="services"\} 0/);
    expect(text).toMatch(/skiff_watch_last_sync_timestamp_seconds\{kind="services"\} \d{10}/);
  });

  it('relists after 410 Gone with only the true differences (watch resumed too late)', async () => {
    fx = await fixture();
    const s = fx.api.store;
    for (const n of ['keep', 'change', 'drop']) s.create('services', svc(n, 80));
    const h = start(fx, ['services']);
    await h.cache.waitForSync(['services']);
    await waitFor(() => fx!.api.watchCount('services') === 1, 'the watch');
    const batches = record(h, ['services']);
    const before = await relists('services');
    // While the client is disconnected: changes, a create-then-delete it must never see, and a
    // compaction so its resourceVersion is too old to resume from.
    fx.api.dropWatches();
    s.create('services', svc('new', 90));
    s.patch('services', 'change', { spec: { ports: [{ name: 'http', port: 81 }] } });
    s.delete('services', 'drop');
    s.create('services', svc('phantom', 70));
    s.delete('services', 'phantom');
    s.patch('services', 'keep', { spec: { ports: [{ name: 'http', port: 99 }] } });
    s.patch('services', 'keep', { spec: { ports: [{ name: 'http', port: 80 }] } });
    fx.api.compact();
    await waitFor(() => batches.length > 0 && batches.some((b) => b.synced.includes('services')), 'the relist');
    expect(summarise(batches, portOf).sort()).toEqual(['services default/change: 80 -> 81', 'services default/drop: 80 -> -', 'services default/new: - -> 90']);
    expect(await relists('services')).toBe(before + 1);
    expect(fx.logs.some((l) => l.msg === 'watch expired (410 Gone); relisting' && l.kind === 'services')).toBe(true);
  });

  it('relists when the server expires an open watch with an ERROR 410 event', async () => {
    fx = await fixture();
    const s = fx.api.store;
    s.create('services', svc('a', 80));
    const h = start(fx, ['services']);
    await h.cache.waitForSync(['services']);
    await waitFor(() => fx!.api.watchCount('services') === 1, 'the watch');
    const batches = record(h, ['services']);
    const before = await relists('services');
    fx.api.expireWatches();
    s.create('services', svc('b', 81));
    s.delete('services', 'a');
    fx.api.compact();
    await waitFor(() => batches.some((b) => b.synced.includes('services')), 'the relist');
    expect(summarise(batches, portOf).sort()).toEqual(['services default/a: 80 -> -', 'services default/b: - -> 81']);
    expect(await relists('services')).toBe(before + 1);
    // Back to watching: a later write arrives as an event.
    s.create('services', svc('c', 82));
    await waitFor(() => h.cache.store('services').get('default/c') !== undefined, 'the next event');
  });

  it('survives the API server going away and coming back on the same port', async () => {
    fx = await fixture();
    const s = fx.api.store;
    s.create('services', svc('a', 80));
    const h = start(fx, ['services']);
    await h.cache.waitForSync(['services']);
    await waitFor(() => fx!.api.watchCount('services') === 1, 'the watch');
    const batches = record(h, ['services']);
    const before = await relists('services');
    const port = fx.api.port;
    await fx.api.close();
    s.create('services', svc('b', 81));
    s.delete('services', 'a');
    // Let the client fail a reconnect against the closed port (a fixed sleep may see none on a loaded machine).
    await waitFor(() => fx!.logs.some((l) => l.msg === 'watch cache request failed' && l.kind === 'services'), 'a failed reconnect');
    fx.api = await startFakeApiServer({ port, store: s });
    await waitFor(() => h.cache.store('services').size === 1 && h.cache.store('services').get('default/b') !== undefined, 'convergence');
    await waitFor(() => fx!.api.watchCount('services') === 1, 'the watch again');
    expect(summarise(batches, portOf).sort()).toEqual(['services default/a: 80 -> -', 'services default/b: - -> 81']);
    // The history was kept, so the watch resumed where it was: no relist.
    expect(await relists('services')).toBe(before);
    expect(fx.logs.some((l) => l.msg === 'watch cache request failed' && l.kind === 'services')).toBe(true);
  });

  it.skipIf(missing('watch cache over TLS', { tools: ['openssl'] }))('works over TLS with the certificate pinned in the kubeconfig', async () => {
    fx = await fixture({ tls: true });
    expect(fx.api.url).toMatch(/^https:/);
    fx.api.store.create('services', svc('secure', 443));
    const h = start(fx, ['services']);
    await h.cache.waitForSync(['services']);
    fx.api.store.create('services', svc('secure2', 444));
    await waitFor(() => h.cache.store('services').size === 2, 'a watch event over TLS');
  });

  it('keeps retrying the initial list until the API server appears', async () => {
    fx = await fixture();
    fx.api.store.create('services', svc('early', 80));
    const port = fx.api.port;
    await fx.api.close();
    const h = start(fx, ['services']);
    await waitFor(() => fx!.logs.filter((l) => l.msg === 'watch cache request failed' && l.phase === 'list').length >= 2, 'failed lists');
    expect(h.cache.synced(['services'])).toBe(false);
    fx.api = await startFakeApiServer({ port, store: fx.api.store });
    await h.cache.waitForSync(['services']);
    expect([...h.cache.store('services').keys()]).toEqual(['default/early']);
  });

  it('advances the resourceVersion with bookmarks, so a compaction does not force a relist', async () => {
    fx = await fixture({ bookmarkIntervalMs: 50 });
    const s = fx.api.store;
    s.create('services', svc('a', 80));
    const h = start(fx, ['services']);
    await h.cache.waitForSync(['services']);
    const listed = Number(h.resourceVersion('services'));
    // Writes to another kind move the global resourceVersion; only bookmarks tell the services watch.
    for (let i = 0; i < 5; i++) s.create('nodes', { metadata: { name: `n${i}` } });
    const target = s.resourceVersion;
    expect(target).toBeGreaterThan(listed);
    await waitFor(() => Number(h.resourceVersion('services')) === target, 'a bookmark');
    const before = await relists('services');
    fx.api.compact();
    fx.api.dropWatches();
    await waitFor(() => fx!.api.watchCount('services') === 1, 'the watch to resume');
    s.create('services', svc('b', 81));
    await waitFor(() => h.cache.store('services').size === 2, 'the next event');
    expect(await relists('services')).toBe(before);
    const resumed = fx.api.requests.filter((r) => r.url.includes('watch=true') && r.url.startsWith('/api/v1/services')).at(-1)!;
    expect(new URL(resumed.url, 'http://x').searchParams.get('resourceVersion')).toBe(String(target));
    expect(new URL(resumed.url, 'http://x').searchParams.get('allowWatchBookmarks')).toBe('true');
  });

  it('skips and reports malformed objects without poisoning the cache', async () => {
    fx = await fixture();
    const s = fx.api.store;
    s.create('services', svc('good', 80));
    s.putRaw('services', { metadata: { namespace: 'default' }, spec: {} });
    s.putRaw('services', { metadata: { name: 'badlabels', namespace: 'default', labels: { a: 5 } }, spec: {} });
    s.putRaw('services', { metadata: { name: 'badport', namespace: 'default' }, spec: { ports: [{ port: 'eighty' }] } });
    const h = start(fx, ['services']);
    await h.cache.waitForSync(['services']);
    expect([...h.cache.store('services').keys()]).toEqual(['default/good']);
    const warns = fx.logs.filter((l) => l.msg === 'skipping malformed object');
    expect(warns.map((w) => [w.kind, w.name, w.field])).toEqual(
      expect.arrayContaining([
        ['services', undefined, 'metadata.name'],
        ['services', 'badlabels', 'metadata.labels.a'],
        ['services', 'badport', 'spec.ports[0].port'],
      ]),
    );
    // The same over a live watch: the bad event is skipped, the next good one still applies.
    s.putRaw('services', { metadata: { name: 'late', namespace: 'default' }, spec: { type: 'Bogus' } });
    s.create('services', svc('after', 81));
    await waitFor(() => h.cache.store('services').get('default/after') !== undefined, 'the good event');
    expect(h.cache.store('services').get('default/late')).toBeUndefined();
    expect(fx.logs.some((l) => l.msg === 'skipping malformed object' && l.name === 'late' && l.field === 'spec.type')).toBe(true);
  });

  it('watches pods only on its own node', async () => {
    fx = await fixture();
    const s = fx.api.store;
    s.create('pods', pod('here', 'node-a'));
    s.create('pods', pod('there', 'node-b'));
    s.create('pods', { metadata: { name: 'pending', namespace: 'default' }, spec: {} });
    const h = start(fx, ['pods']);
    await h.cache.waitForSync(['pods']);
    const batches = record(h, ['pods']);
    s.create('pods', pod('there2', 'node-b'));
    // Scheduling onto this node makes the pod enter the filtered watch as ADDED.
    s.patch('pods', 'pending', { spec: { nodeName: 'node-a' } });
    await waitFor(() => h.cache.store('pods').get('default/pending') !== undefined, 'the scheduled pod');
    s.delete('pods', 'here');
    await waitFor(() => h.cache.store('pods').size === 1, 'the delete');
    expect(summarise(batches)).toEqual(['pods default/pending: - -> obj', 'pods default/here: obj -> -']);
    const podRequests = fx.api.requests.filter((r) => r.url.startsWith('/api/v1/pods') || r.url.includes('/pods'));
    expect(podRequests.length).toBeGreaterThanOrEqual(2);
    for (const r of podRequests) expect(new URL(r.url, 'http://x').searchParams.get('fieldSelector')).toBe('spec.nodeName=node-a');
    expect(podRequests.some((r) => r.url.includes('watch=true'))).toBe(true);
  });

  it('adds the policy kinds: every pod trimmed, NetworkPolicies, while pods stay this node\'s', async () => {
    fx = await fixture();
    const s = fx.api.store;
    s.create('pods', pod('here', 'node-a'));
    s.create('pods', { ...pod('there', 'node-b'), metadata: { name: 'there', namespace: 'default', labels: { app: 'db' } } });
    s.create('networkpolicies', { metadata: { name: 'deny', namespace: 'default' }, spec: { podSelector: { matchLabels: { app: 'db' } } } });
    s.putRaw('networkpolicies', { metadata: { name: 'bad', namespace: 'default' }, spec: { podSelector: { matchExpressions: [{ key: 'a', operator: 'Near' }] } } });
    const h = start(fx, ['pods', 'policypods', 'networkpolicies']);
    await h.cache.waitForSync(['pods', 'policypods', 'networkpolicies']);
    expect([...h.cache.store('pods').keys()]).toEqual(['default/here']);
    expect([...h.cache.store('policypods').keys()].sort()).toEqual(['default/here', 'default/there']);
    expect(h.cache.store('policypods').get('default/there')).toEqual({ namespace: 'default', name: 'there', nodeName: 'node-b', hostNetwork: false, podIPs: ['10.244.0.5'], labels: { app: 'db' }, namedPorts: [] });
    expect([...h.cache.store('networkpolicies').keys()]).toEqual(['default/deny']);
    expect(h.cache.store('networkpolicies').get('default/deny')!.policyTypes).toEqual(['Ingress']);
    const batches = record(h, ['policypods', 'networkpolicies']);
    s.patch('pods', 'there', { metadata: { labels: { app: 'web' } } });
    s.delete('networkpolicies', 'deny');
    await waitFor(() => h.cache.store('networkpolicies').size === 0 && h.cache.store('policypods').get('default/there')?.labels.app === 'web', 'the relabel and the delete');
    await new Promise((r) => setImmediate(r));
    expect(summarise(batches).sort()).toEqual(['networkpolicies default/deny: obj -> -', 'policypods default/there: obj -> obj']);
    const clusterWide = fx.api.requests.filter((r) => r.url.startsWith('/api/v1/pods') && !new URL(r.url, 'http://x').searchParams.has('fieldSelector'));
    expect(clusterWide.length).toBeGreaterThanOrEqual(2);
  });

  it('treats an admin policy kind the API server does not serve as empty and synced, without failing', async () => {
    fx = await fixture();
    const h = start(fx, ['clusternetworkpolicies', 'adminnetworkpolicies', 'baselineadminnetworkpolicies']);
    await h.cache.waitForSync(['clusternetworkpolicies', 'adminnetworkpolicies', 'baselineadminnetworkpolicies']);
    expect(h.cache.store('adminnetworkpolicies').size).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    // Not served (this fake's 404) or served and empty: either way no failing request is retried.
    expect(fx.logs.filter((l) => l.msg === 'watch cache request failed')).toEqual([]);
  });

  it('wakes a subscriber a few times, not a thousand, for a burst of 1000 changes', async () => {
    fx = await fixture();
    const h = start(fx, ['services']);
    await h.cache.waitForSync(['services']);
    const batches = record(h, ['services']);
    for (let i = 0; i < 1000; i++) fx.api.store.create('services', svc(`b${i}`, 1000 + i));
    await waitFor(() => h.cache.store('services').size === 1000, 'all 1000');
    await new Promise((r) => setImmediate(r));
    const keys = new Set(batches.flatMap((b) => b.changes.map((c) => c.key)));
    expect(keys.size).toBe(1000);
    expect(batches.length).toBeLessThan(50);
  });
});
