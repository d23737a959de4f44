// The fake API server's protocol over plain HTTP: what a real client relies on.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, ensureNamespaces, FakeStore, loadStoreFile, saveStoreFile, startFakeApiServer, type FakeApiServer, type KubeObject } from './index.js';

let api: FakeApiServer;
beforeAll(async () => {
  api = await startFakeApiServer({ compactionWindow: 50, bookmarkIntervalMs: 0 });
  ensureNamespaces(api.store, 'adm', 'gone', 'other', 'page', 'proto', 'sel', 'wf');
});
afterAll(async () => {
  await api.close();
});

async function req(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(api.url + path, { method, headers: body === undefined ? {} : { 'content-type': contentType }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** Reads a watch until `count` events arrived or the stream ended. */
async function watchEvents(path: string, count: number, during: () => void | Promise<void> = () => {}): Promise<{ type: string; object: KubeObject & { code?: number; reason?: string } }[]> {
  const ctrl = new AbortController();
  const r = await fetch(api.url + path, { signal: ctrl.signal });
  expect(r.status).toBe(200);
  await during();
  const events: { type: string; object: KubeObject }[] = [];
  const reader = r.body!.getReader();
  let buf = '';
  const deadline = setTimeout(() => ctrl.abort(), 5000);
  try {
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buf.slice(0, i)) as { type: string; object: KubeObject });
        buf = buf.slice(i + 1);
      }
    }
  } finally {
    clearTimeout(deadline);
    ctrl.abort();
  }
  return events as never;
}

const names = (items: unknown): string[] => (items as KubeObject[]).map((o) => o.metadata.name!);

describe('fake API server protocol', () => {
  it('creates with defaults and rejects duplicates, bad names and unknown paths with Status objects', async () => {
    const c = await req('POST', '/api/v1/namespaces/proto/services', { metadata: { generateName: 'web-' }, spec: { ports: [{ port: 80 }] } });
    expect(c.status).toBe(201);
    const meta = (c.body as unknown as KubeObject).metadata;
    expect(meta.name).toMatch(/^web-[a-z0-9]{5}$/);
    expect(meta.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(meta.namespace).toBe('proto');
    expect(Number(meta.resourceVersion)).toBe(api.store.resourceVersion);
    const dup = await req('POST', '/api/v1/namespaces/proto/services', { metadata: { name: meta.name }, spec: { ports: [{ port: 80 }] } });
    expect(dup).toMatchObject({ status: 409, body: { kind: 'Status', reason: 'AlreadyExists', code: 409 } });
    const bad = await req('POST', '/api/v1/namespaces/proto/services', { metadata: { name: 'Bad_Name' } });
    expect(bad).toMatchObject({ status: 422, body: { reason: 'Invalid' } });
    const missing = await req('GET', '/api/v1/namespaces/proto/services/nope');
    expect(missing).toMatchObject({ status: 404, body: { reason: 'NotFound', message: 'services "nope" not found' } });
    expect((await req('GET', '/api/v1/widgets')).status).toBe(404);
    expect((await req('POST', '/api/v1/namespaces/other/services', { metadata: { name: 'x', namespace: 'proto' } })).status).toBe(400);
  });

  it('enforces optimistic concurrency on PUT and merge-patches', async () => {
    const c = await req('POST', '/api/v1/nodes', { metadata: { name: 'cc-node', labels: { a: '1' } } });
    const rv = (c.body as unknown as KubeObject).metadata.resourceVersion;
    const ok = await req('PUT', '/api/v1/nodes/cc-node', { metadata: { name: 'cc-node', resourceVersion: rv, labels: { a: '2' } } });
    expect(ok.status).toBe(200);
    const stale = await req('PUT', '/api/v1/nodes/cc-node', { metadata: { name: 'cc-node', resourceVersion: rv, labels: { a: '3' } } });
    expect(stale).toMatchObject({ status: 409, body: { reason: 'Conflict' } });
    const p = await req('PATCH', '/api/v1/nodes/cc-node', { metadata: { labels: { a: null, b: 'x' }, annotations: { n: 'y' } } }, 'application/strategic-merge-patch+json');
    expect((p.body as unknown as KubeObject).metadata).toMatchObject({ labels: { b: 'x' }, annotations: { n: 'y' } });
    expect((p.body as unknown as KubeObject).metadata.labels).not.toHaveProperty('a');
    expect((await req('PATCH', '/api/v1/nodes/cc-node', [{ op: 'add' }], 'application/json-patch+json')).status).toBe(422);
    expect((await req('PATCH', '/api/v1/nodes/cc-node', { a: 1 }, 'application/xml')).status).toBe(415);
    // A no-op patch keeps the resourceVersion.
    const again = await req('PATCH', '/api/v1/nodes/cc-node', { metadata: { labels: { b: 'x' } } }, 'application/merge-patch+json');
    expect((again.body as unknown as KubeObject).metadata.resourceVersion).toBe((p.body as unknown as KubeObject).metadata.resourceVersion);
  });

  it('keeps spec and status apart on resources with a status subresource', async () => {
    // Create keeps a given status (a convenience for fixtures); later writes keep the two apart.
    const spec = { nodeName: 'n1', containers: [{ name: 'c', image: 'i' }] };
    await req('POST', '/api/v1/namespaces/proto/pods', { metadata: { name: 'st' }, spec, status: { phase: 'Pending' } });
    await req('PUT', '/api/v1/namespaces/proto/pods/st', { metadata: { name: 'st' }, spec, status: { phase: 'Ignored' } });
    expect(api.store.get('pods', 'st', 'proto').status).toEqual({ phase: 'Pending' });
    await req('PATCH', '/api/v1/namespaces/proto/pods/st/status', { status: { phase: 'Running' }, spec: { nodeName: 'n2' } }, 'application/merge-patch+json');
    const p = api.store.get('pods', 'st', 'proto');
    expect(p.status).toEqual({ phase: 'Running' });
    expect(p.spec).toMatchObject({ nodeName: 'n1' });
  });

  it('selects by label (=, !=, in, notin, exists, !exists) and by field', async () => {
    const mk = (name: string, labels: Record<string, string>, node: string): KubeObject => ({ metadata: { name, namespace: 'sel', labels }, spec: { nodeName: node } });
    api.store.create('pods', mk('p1', { app: 'a', tier: 'web' }, 'n1'));
    api.store.create('pods', mk('p2', { app: 'b', tier: 'db' }, 'n2'));
    api.store.create('pods', mk('p3', { app: 'c' }, 'n1'));
    const q = async (qs: string): Promise<string[]> => names((await req('GET', `/api/v1/namespaces/sel/pods?${qs}`)).body.items);
    expect(await q('labelSelector=app%3Da')).toEqual(['p1']);
    expect(await q('labelSelector=app!%3Da')).toEqual(['p2', 'p3']);
    expect(await q(`labelSelector=${encodeURIComponent('app in (a,c)')}`)).toEqual(['p1', 'p3']);
    expect(await q(`labelSelector=${encodeURIComponent('app notin (a, c)')}`)).toEqual(['p2']);
    expect(await q('labelSelector=tier')).toEqual(['p1', 'p2']);
    expect(await q('labelSelector=!tier')).toEqual(['p3']);
    expect(await q(`labelSelector=${encodeURIComponent('tier,app!=b')}`)).toEqual(['p1']);
    expect(await q('fieldSelector=spec.nodeName%3Dn1')).toEqual(['p1', 'p3']);
    expect(await q(`fieldSelector=${encodeURIComponent('spec.nodeName=n1,metadata.name!=p1')}`)).toEqual(['p3']);
    expect(names((await req('GET', '/api/v1/pods?fieldSelector=metadata.namespace%3Dsel')).body.items)).toEqual(['p1', 'p2', 'p3']);
    expect((await req('GET', '/api/v1/namespaces/sel/pods?fieldSelector=spec.bogus%3Dx')).status).toBe(400);
  });

  it('pages with limit/continue from one consistent snapshot', async () => {
    for (let i = 0; i < 5; i++) api.store.create('services', { metadata: { name: `pg${i}`, namespace: 'page' } });
    const p1 = await req('GET', '/api/v1/namespaces/page/services?limit=2');
    const m1 = p1.body.metadata as { continue: string; remainingItemCount: number; resourceVersion: string };
    expect(names(p1.body.items)).toEqual(['pg0', 'pg1']);
    expect(m1.remainingItemCount).toBe(3);
    // Writes between pages do not show up in the same list.
    api.store.delete('services', 'pg3', 'page');
    api.store.create('services', { metadata: { name: 'pg9', namespace: 'page' } });
    const p2 = await req('GET', `/api/v1/namespaces/page/services?limit=2&continue=${m1.continue}`);
    const m2 = p2.body.metadata as { continue: string; resourceVersion: string };
    expect(names(p2.body.items)).toEqual(['pg2', 'pg3']);
    expect(m2.resourceVersion).toBe(m1.resourceVersion);
    const p3 = await req('GET', `/api/v1/namespaces/page/services?limit=2&continue=${m2.continue}`);
    expect(names(p3.body.items)).toEqual(['pg4']);
    expect(p3.body.metadata).not.toHaveProperty('continue');
  });

  it('answers 410 for lists, continue tokens and watches older than the compaction', async () => {
    for (let i = 0; i < 3; i++) api.store.create('services', { metadata: { name: `gone${i}`, namespace: 'gone' } });
    const p1 = await req('GET', '/api/v1/namespaces/gone/services?limit=1');
    const old = Number((p1.body.metadata as { resourceVersion: string }).resourceVersion);
    api.store.create('services', { metadata: { name: 'gone9', namespace: 'gone' } });
    api.compact();
    expect(await req('GET', `/api/v1/namespaces/gone/services?resourceVersion=${old}`)).toMatchObject({ status: 410, body: { code: 410, reason: 'Gone' } });
    expect((await req('GET', `/api/v1/namespaces/gone/services?limit=1&continue=${(p1.body.metadata as { continue: string }).continue}`)).status).toBe(410);
    const ev = await watchEvents(`/api/v1/namespaces/gone/services?watch=true&resourceVersion=${old}`, 1);
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Gone' } });
    // The current resourceVersion is still resumable.
    expect((await req('GET', `/api/v1/namespaces/gone/services?resourceVersion=${api.store.resourceVersion}`)).status).toBe(200);
  });

  it('keeps only the compaction window of history', async () => {
    const start = api.store.resourceVersion;
    for (let i = 0; i < 80; i++) api.store.create('services', { metadata: { name: `win${i}`, namespace: 'win' } });
    expect(() => api.store.eventsSince(start)).toThrow(ApiError);
    expect(api.store.eventsSince(api.store.resourceVersion - 40)).toHaveLength(40);
  });

  it('streams filtered watches, turning objects that leave or enter the filter into DELETED/ADDED', async () => {
    const from = api.store.resourceVersion;
    const ev = await watchEvents(`/api/v1/namespaces/wf/pods?watch=1&resourceVersion=${from}&labelSelector=app%3Dx`, 4, () => {
      api.store.create('pods', { metadata: { name: 'w1', namespace: 'wf', labels: { app: 'x' } } });
      api.store.create('pods', { metadata: { name: 'w2', namespace: 'wf', labels: { app: 'y' } } });
      api.store.create('pods', { metadata: { name: 'w3', namespace: 'other', labels: { app: 'x' } } });
      api.store.patch('pods', 'w1', { metadata: { labels: { app: 'y' } } }, { namespace: 'wf' });
      api.store.patch('pods', 'w2', { metadata: { labels: { app: 'x' } } }, { namespace: 'wf' });
      api.store.delete('pods', 'w2', 'wf');
    });
    expect(ev.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED w1', 'DELETED w1', 'ADDED w2', 'DELETED w2']);
    expect(Number(ev[3]!.object.metadata.resourceVersion)).toBe(api.store.resourceVersion);
  });

  it('starts a watch without resourceVersion with synthetic ADDED events, and sends bookmarks', async () => {
    const b = await startFakeApiServer({ bookmarkIntervalMs: 20, seedNamespaces: false });
    try {
      b.store.create('nodes', { metadata: { name: 'x1' } });
      const r = await fetch(`${b.url}/api/v1/nodes?watch=true&allowWatchBookmarks=true&timeoutSeconds=1`);
      const text = await r.text(); // ends after timeoutSeconds
      const lines = text.trim().split('\n').map((l) => JSON.parse(l) as { type: string; object: KubeObject });
      expect(lines[0]).toMatchObject({ type: 'ADDED', object: { metadata: { name: 'x1' } } });
      expect(lines.filter((l) => l.type === 'BOOKMARK').length).toBeGreaterThan(5);
      expect(lines.at(-1)!.object).toEqual({ kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(b.store.resourceVersion) } });
    } finally {
      await b.close();
    }
  });

  it('runs admission hooks that mutate and reject, in process and over HTTP', async () => {
    let next = 10;
    const remove = api.admit('services', (op, obj, old) => {
      const spec = (obj.spec ??= {}) as { clusterIP?: string };
      if (op === 'CREATE') {
        if (spec.clusterIP === '10.96.0.1') throw new ApiError(422, 'Invalid', 'spec.clusterIP: Invalid value: "10.96.0.1": provided IP is already allocated');
        spec.clusterIP ??= `10.96.0.${next++}`;
      }
      if (op === 'UPDATE') spec.clusterIP = (old!.spec as { clusterIP: string }).clusterIP;
    });
    try {
      const c = await req('POST', '/api/v1/namespaces/adm/services', { metadata: { name: 'a1' }, spec: { ports: [{ port: 80 }] } });
      expect((c.body.spec as { clusterIP: string }).clusterIP).toBe('10.96.0.10');
      const rej = await req('POST', '/api/v1/namespaces/adm/services', { metadata: { name: 'a2' }, spec: { clusterIP: '10.96.0.1', ports: [{ port: 80 }] } });
      expect(rej).toMatchObject({ status: 422, body: { reason: 'Invalid', message: expect.stringContaining('already allocated') } });
      expect(() => api.store.create('services', { metadata: { name: 'a3', namespace: 'adm' }, spec: { clusterIP: '10.96.0.1' } })).toThrow(/already allocated/);
      const u = api.store.patch('services', 'a1', { spec: { clusterIP: '10.96.0.99' } }, { namespace: 'adm' });
      expect((u.spec as { clusterIP: string }).clusterIP).toBe('10.96.0.10');
    } finally {
      remove();
    }
  });

  it('restarts on the same port with the same store, and persists to a file', async () => {
    const store = new FakeStore({ seedNamespaces: false });
    const s1 = await startFakeApiServer({ store });
    store.create('nodes', { metadata: { name: 'persist' } });
    const port = s1.port;
    await s1.close();
    const s2 = await startFakeApiServer({ store, port });
    try {
      const r = await fetch(`${s2.url}/api/v1/nodes/persist`);
      expect(r.status).toBe(200);
      expect(s2.url).toBe(s1.url);
    } finally {
      await s2.close();
    }
    const dir = mkdtempSync(join(tmpdir(), 'skiff-fakeapi-'));
    try {
      saveStoreFile(store, join(dir, 'state.json'));
      const loaded = loadStoreFile(join(dir, 'state.json'))!;
      expect(loaded.resourceVersion).toBe(store.resourceVersion);
      expect(loaded.get('nodes', 'persist').metadata.uid).toBe(store.get('nodes', 'persist').metadata.uid);
      // History is not persisted: old resourceVersions must relist.
      expect(() => loaded.eventsSince(store.resourceVersion - 1)).toThrow(/too old/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs as a process that keeps its objects across restarts with --state', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skiff-fakeapi-proc-'));
    const run = async (): Promise<{ url: string; stop: () => Promise<number | null> }> => {
      const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./index.ts', import.meta.url)), '--state', join(dir, 'state.json'), '--kubeconfig-out', join(dir, 'kc')], { stdio: ['ignore', 'pipe', 'inherit'] });
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (c) => reject(new Error(`exited ${c}`)));
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      return { url: (JSON.parse(line) as { url: string }).url, stop: () => (child.kill('SIGTERM'), exited) };
    };
    try {
      const a = await run();
      expect(readFileSync(join(dir, 'kc'), 'utf8')).toContain(`server: ${a.url}`);
      const c = await fetch(`${a.url}/api/v1/nodes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ metadata: { name: 'kept' } }) });
      expect(c.status).toBe(201);
      expect(await a.stop()).toBe(0);
      const b = await run();
      try {
        const g = await fetch(`${b.url}/api/v1/nodes/kept`);
        expect(g.status).toBe(200);
      } finally {
        await b.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves discovery for client libraries', async () => {
    expect((await req('GET', '/version')).body).toMatchObject({ major: '1', gitVersion: expect.stringMatching(/^v1\./) });
    expect((await req('GET', '/api')).body).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });
    expect((await req('GET', '/apis')).body).toMatchObject({ kind: 'APIGroupList', groups: expect.arrayContaining([expect.objectContaining({ name: 'discovery.k8s.io' }), expect.objectContaining({ name: 'apps' }), expect.objectContaining({ name: 'networking.k8s.io' })]) });
    const core = (await req('GET', '/api/v1')).body.resources as { name: string; namespaced: boolean }[];
    expect(core.map((r) => r.name)).toEqual(expect.arrayContaining(['nodes', 'services', 'services/status', 'pods', 'pods/status', 'namespaces']));
    const disc = (await req('GET', '/apis/discovery.k8s.io/v1')).body.resources as { name: string; kind: string }[];
    expect(disc).toEqual([expect.objectContaining({ name: 'endpointslices', kind: 'EndpointSlice', namespaced: true })]);
    const net = (await req('GET', '/apis/networking.k8s.io/v1')).body.resources as { name: string; kind: string }[];
    expect(net).toEqual([expect.objectContaining({ name: 'networkpolicies', kind: 'NetworkPolicy', namespaced: true })]);
  });
});
