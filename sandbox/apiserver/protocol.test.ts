// The kube-apiserver protocol details kubectl relies on, checked over HTTP one at a time: content
// negotiation (aggregated discovery, Table, OpenAPI), the patch formats and their directives,
// server-side apply bookkeeping, dryRun, fieldValidation, DELETE options and error Statuses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer, type FakeApiServer, type KubeObject } from './index.js';
import { jsonPatch, strategicMerge } from './patch.js';
import { RESOURCES } from './resources.js';
import { kindNode } from './schema.js';
import { patch } from './writes.js';

let api: FakeApiServer;
beforeAll(async () => {
  api = await startFakeApiServer({ bookmarkIntervalMs: 0 });
  api.store.create('namespaces', { metadata: { name: 'p' } });
});
afterAll(async () => {
  await api.close();
});

type Body = Record<string, unknown> & { metadata?: KubeObject['metadata']; spec?: Record<string, unknown>; items?: unknown[] };

async function call(method: string, path: string, opts: { body?: unknown; type?: string; accept?: string; raw?: string } = {}): Promise<{ status: number; body: Body; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (opts.accept) headers.accept = opts.accept;
  if (opts.body !== undefined || opts.raw !== undefined) headers['content-type'] = opts.type ?? 'application/json';
  const r = await fetch(api.url + path, { method, headers, body: opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)) });
  const text = await r.text();
  return { status: r.status, body: (text ? JSON.parse(text) : {}) as Body, headers: r.headers };
}

const podPath = '/api/v1/namespaces/p/pods';
const pod = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  metadata: { name, labels: { app: name }, finalizers: ['a/x'] },
  spec: {
    containers: [
      { name: 'web', image: 'web:1', ports: [{ containerPort: 80 }], env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] },
      { name: 'side', image: 'side:1' },
    ],
    volumes: [{ name: 'v', emptyDir: {} }],
  },
  ...extra,
});

describe('kube-apiserver protocol details', () => {
  it('negotiates aggregated discovery (v2, v2beta1) and falls back to the legacy documents', async () => {
    const agg = await call('GET', '/apis', { accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json' });
    expect(agg.headers.get('content-type')).toBe('application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
    expect(agg.body).toMatchObject({ kind: 'APIGroupDiscoveryList', apiVersion: 'apidiscovery.k8s.io/v2' });
    const core = await call('GET', '/api', { accept: 'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList' });
    expect(core.body.apiVersion).toBe('apidiscovery.k8s.io/v2beta1');
    const resources = (core.body.items as { versions: { version: string; resources: Record<string, unknown>[] }[] }[])[0]!.versions[0]!.resources;
    expect(resources.find((r) => r.resource === 'pods')).toMatchObject({
      responseKind: { group: '', version: 'v1', kind: 'Pod' },
      scope: 'Namespaced',
      singularResource: 'pod',
      shortNames: ['po'],
      categories: ['all'],
      subresources: expect.arrayContaining([expect.objectContaining({ subresource: 'status', verbs: ['get', 'patch', 'update'] }), expect.objectContaining({ subresource: 'log' }), expect.objectContaining({ subresource: 'exec' })]),
    });
    expect(resources.find((r) => r.resource === 'nodes')).toMatchObject({ scope: 'Cluster', shortNames: ['no'] });
    const legacy = await call('GET', '/api');
    expect(legacy.body).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });
    expect((await call('GET', '/apis/discovery.k8s.io')).body).toMatchObject({ kind: 'APIGroup', preferredVersion: { groupVersion: 'discovery.k8s.io/v1' } });
  });

  it('serves OpenAPI v3 with the extensions kubectl reads, v2 as JSON and protobuf, 406 for anything else', async () => {
    const index = await call('GET', '/openapi/v3');
    const url = (index.body.paths as Record<string, { serverRelativeURL: string }>)['api/v1']!.serverRelativeURL;
    expect(url).toMatch(/^\/openapi\/v3\/api\/v1\?hash=[0-9A-F]{128}$/);
    const doc = (await call('GET', url)).body as { paths: Record<string, Record<string, { parameters: { name: string }[]; requestBody?: { content: Record<string, unknown> }; 'x-kubernetes-group-version-kind': unknown }>>; components: { schemas: Record<string, { properties: Record<string, Record<string, unknown>> }> } };
    const patchOp = doc.paths['/api/v1/namespaces/{namespace}/pods/{name}']!.patch!;
    expect(patchOp['x-kubernetes-group-version-kind']).toEqual({ group: '', version: 'v1', kind: 'Pod' });
    expect(patchOp.parameters.map((p) => p.name)).toEqual(expect.arrayContaining(['fieldValidation', 'fieldManager', 'dryRun', 'force']));
    expect(Object.keys(patchOp.requestBody!.content)).toContain('application/strategic-merge-patch+json');
    const containers = doc.components.schemas['io.k8s.api.core.v1.PodSpec']!.properties.containers!;
    expect(containers).toMatchObject({ type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'], 'x-kubernetes-patch-merge-key': 'name', 'x-kubernetes-patch-strategy': 'merge' });
    expect(doc.components.schemas['io.k8s.api.core.v1.ServiceSpec']!.properties.ports).toMatchObject({ 'x-kubernetes-list-map-keys': ['port', 'protocol'], 'x-kubernetes-patch-merge-key': 'port' });
    expect(doc.components.schemas['io.k8s.api.core.v1.PodSpec']!.properties.volumes!['x-kubernetes-patch-strategy']).toBe('merge,retainKeys');
    // Every $ref resolves inside the document.
    for (const m of JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)) expect(doc.components.schemas).toHaveProperty([m[1]!]);
    expect((await call('GET', '/openapi/v3/apis/widgets.example.com/v1')).status).toBe(404);
    const v2 = await call('GET', '/openapi/v2', { accept: 'application/json' });
    expect(v2.body).toMatchObject({ swagger: '2.0' });
    expect((v2.body.definitions as Record<string, unknown>)['io.k8s.api.core.v1.Pod']).toMatchObject({ 'x-kubernetes-group-version-kind': [{ group: '', version: 'v1', kind: 'Pod' }] });
    const pb = await fetch(`${api.url}/openapi/v2`, { headers: { accept: 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf' } });
    expect(pb.headers.get('content-type')).toBe('application/com.github.proto-openapi.spec.v2.v1.0+protobuf');
    const bytes = Buffer.from(await pb.arrayBuffer());
    expect([...bytes.subarray(0, 5)]).toEqual([0x0a, 3, ...Buffer.from('2.0')]); // field 1 (swagger), length 3
    expect(bytes.includes(Buffer.from('io.k8s.api.core.v1.PodSpec'))).toBe(true);
    expect((await call('GET', '/openapi/v2', { accept: 'application/xml' })).status).toBe(406);
  });

  it('answers as=Table with rows carrying PartialObjectMetadata, the whole object or nothing', async () => {
    await call('POST', podPath, { body: pod('tbl') });
    const accept = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json';
    const meta = await call('GET', podPath, { accept });
    expect(meta.body).toMatchObject({ kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: String(api.store.resourceVersion) } });
    const cols = (meta.body.columnDefinitions as { name: string; priority: number }[]).map((c) => `${c.name}:${c.priority}`);
    expect(cols).toEqual(['Name:0', 'Ready:0', 'Status:0', 'Restarts:0', 'Age:0', 'IP:1', 'Node:1', 'Nominated Node:1', 'Readiness Gates:1']);
    const row = (meta.body.rows as { cells: unknown[]; object: KubeObject }[]).find((r) => r.cells[0] === 'tbl')!;
    expect(row.cells.slice(1, 4)).toEqual(['0/2', 'Pending', '0']);
    expect(row.object).toMatchObject({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'tbl' } });
    const full = await call('GET', `${podPath}/tbl?includeObject=Object`, { accept });
    expect((full.body.rows as { object: KubeObject }[])[0]!.object).toMatchObject({ kind: 'Pod', spec: { containers: [{ name: 'web' }, { name: 'side' }] } });
    const none = await call('GET', `${podPath}?includeObject=None`, { accept });
    expect((none.body.rows as object[])[0]).not.toHaveProperty('object');
    // Plain JSON first in the Accept list wins.
    expect((await call('GET', podPath, { accept: 'application/json,application/json;as=Table;v=v1;g=meta.k8s.io' })).body.kind).toBe('PodList');
  });

  it('watches as Table: column definitions in the first event only', async () => {
    const ctrl = new AbortController();
    const r = await fetch(`${api.url}${podPath}?watch=true`, { headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' }, signal: ctrl.signal });
    await call('POST', podPath, { body: pod('tw') });
    const reader = r.body!.getReader();
    let text = '';
    while (text.split('\n').length < 3) text += Buffer.from((await reader.read()).value!).toString();
    ctrl.abort();
    const events = text.split('\n').filter((l) => l).map((l) => JSON.parse(l) as { type: string; object: Body });
    expect(events[0]!.object).toMatchObject({ kind: 'Table', columnDefinitions: expect.any(Array) });
    expect(events[1]!.object.kind).toBe('Table');
    expect(events[1]!.object).not.toHaveProperty('columnDefinitions');
  });

  it('applies strategic merge patches by the schema, with their directives', async () => {
    const old = (await call('POST', podPath, { body: pod('smp') })).body;
    const podNode = kindNode('', 'Pod');
    const r = strategicMerge(old, {
      metadata: { finalizers: ['b/y'] },
      spec: {
        '$setElementOrder/containers': [{ name: 'web' }, { name: 'side' }],
        containers: [{ name: 'web', image: 'web:2', env: [{ name: 'B', $patch: 'delete' }, { name: 'C', value: '3' }] }, { name: 'side', $patch: 'delete' }],
        volumes: [{ name: 'v', hostPath: { path: '/x' }, $retainKeys: ['name', 'hostPath'] }],
      },
    }, podNode) as Body;
    const spec = r.spec as { containers: { name: string; image: string; env: unknown[]; ports: unknown[] }[]; volumes: unknown[] };
    expect(spec.containers).toHaveLength(1);
    expect(spec.containers[0]).toMatchObject({ name: 'web', image: 'web:2', ports: [{ containerPort: 80, protocol: 'TCP' }], env: [{ name: 'A', value: '1' }, { name: 'C', value: '3' }] });
    expect(spec.volumes).toEqual([{ name: 'v', hostPath: { path: '/x' } }]); // retainKeys dropped emptyDir
    expect(r.metadata!.finalizers).toEqual(['a/x', 'b/y']); // a set merges
    const del = strategicMerge(r, { metadata: { '$deleteFromPrimitiveList/finalizers': ['a/x'] }, spec: { containers: [{ name: 'web', env: [{ $patch: 'replace' }, { name: 'Z', value: '9' }] }] } }, podNode) as Body;
    expect(del.metadata!.finalizers).toEqual(['b/y']);
    expect((del.spec as { containers: { env: unknown[] }[] }).containers[0]!.env).toEqual([{ name: 'Z', value: '9' }]);
    // Over HTTP: a Pod takes a new image, refuses other spec changes (422), lists merge by key.
    const smp = (body: unknown): Promise<{ status: number; body: Body }> => call('PATCH', `${podPath}/smp`, { body, type: 'application/strategic-merge-patch+json' });
    const image = await smp({ metadata: { finalizers: ['b/y'] }, spec: { containers: [{ name: 'web', image: 'web:2' }] } });
    expect(image.status).toBe(200);
    expect((image.body.spec as { containers: { image: string }[] }).containers.map((c) => c.image)).toEqual(['web:2', 'side:1']);
    expect(image.body.metadata!.finalizers).toEqual(['a/x', 'b/y']);
    const args = await smp({ spec: { containers: [{ name: 'web', args: ['--x'] }] } });
    expect(args).toMatchObject({ status: 422, body: { reason: 'Invalid', details: { causes: [{ reason: 'FieldValueForbidden', field: 'spec' }] } } });
    expect(args.body.message).toContain('pod updates may not change fields other than `spec.containers[*].image`');
    // A Pod whose containers name no image (the sandbox runs commands) still takes a label patch.
    await call('POST', podPath, { body: { metadata: { name: 'noimage', namespace: 'p' }, spec: { containers: [{ name: 'c', command: ['sleep', '1'] }] } } });
    const relabel = await call('PATCH', `${podPath}/noimage`, { body: { metadata: { labels: { a: 'b' } } }, type: 'application/merge-patch+json' });
    expect(relabel.status).toBe(200);
    const noKey = await smp({ spec: { containers: [{ image: 'x' }] } });
    expect(noKey).toMatchObject({ status: 422, body: { reason: 'Invalid', message: expect.stringContaining('does not contain declared merge key: name') } });
    // JSON merge patch replaces lists whole.
    const merge = await call('PATCH', `${podPath}/smp`, { body: { metadata: { finalizers: ['only/one'] } }, type: 'application/merge-patch+json' });
    expect(merge.body.metadata!.finalizers).toEqual(['only/one']);
  });

  it('applies JSON patches (RFC 6902) and answers 422 when one fails, keeping the object', async () => {
    await call('POST', podPath, { body: pod('jp') });
    const jp = (ops: unknown): Promise<{ status: number; body: Body }> => call('PATCH', `${podPath}/jp`, { body: ops, type: 'application/json-patch+json' });
    const r = await jp([
      { op: 'add', path: '/metadata/labels/tier', value: 'db' },
      { op: 'copy', from: '/metadata/labels/tier', path: '/metadata/annotations' },
    ]);
    expect(r.status).toBe(422); // annotations must be a map of strings, not "db"
    const ok = await jp([
      { op: 'add', path: '/metadata/labels/tier', value: 'db' },
      { op: 'move', from: '/metadata/labels/tier', path: '/metadata/labels/role' },
      { op: 'add', path: '/metadata/finalizers/-', value: 'c/z' },
      { op: 'add', path: '/metadata/finalizers/0', value: 'first/0' },
      { op: 'test', path: '/spec/containers/0/name', value: 'web' },
      { op: 'replace', path: '/spec/containers/1/image', value: 'side:2' },
    ]);
    expect(ok.status).toBe(200);
    expect(ok.body.metadata).toMatchObject({ labels: { app: 'jp', role: 'db' }, finalizers: ['first/0', 'a/x', 'c/z'] });
    expect((ok.body.spec as { containers: { image: string }[] }).containers[1]!.image).toBe('side:2');
    expect(jsonPatch({ a: [1, 2, 3] }, [{ op: 'remove', path: '/a/1' }, { op: 'copy', from: '/a/0', path: '/b' }])).toEqual({ a: [1, 3], b: 1 });
    const failed = await jp([{ op: 'test', path: '/metadata/name', value: 'other' }]);
    expect(failed).toMatchObject({ status: 422, body: { kind: 'Status', reason: 'Invalid', message: expect.stringContaining('testing value /metadata/name failed') } });
    expect((await jp([{ op: 'remove', path: '/spec/nope' }])).status).toBe(422);
    expect((await call('GET', `${podPath}/jp`)).body.metadata!.resourceVersion).toBe(ok.body.metadata!.resourceVersion);
  });

  it('server-side apply creates (201), needs a field manager, and plain writes take the fields they change', async () => {
    const cfg = 'apiVersion: v1\nkind: ConfigMap\n'; // not served here: the kind must match the URL
    expect((await call('PATCH', `${podPath}/ssa?fieldManager=a`, { raw: `${cfg}metadata: {name: ssa}\n`, type: 'application/apply-patch+yaml' })).status).toBe(400);
    const yaml = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: ssa\n  labels: {a: "1"}\nspec:\n  containers:\n  - name: web\n    image: web:1\n';
    expect((await call('PATCH', `${podPath}/ssa`, { raw: yaml, type: 'application/apply-patch+yaml' })).body.message).toContain('requires fieldManager');
    const created = await call('PATCH', `${podPath}/ssa?fieldManager=alice`, { raw: yaml, type: 'application/apply-patch+yaml' });
    expect(created.status).toBe(201);
    expect(created.body.metadata!.managedFields).toEqual([expect.objectContaining({ manager: 'alice', operation: 'Apply', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { 'f:a': {} } }, 'f:spec': { 'f:containers': { 'k:{"name":"web"}': { '.': {}, 'f:image': {}, 'f:name': {} } } } } })]);
    // bob changes the image with a plain patch: he now owns it, and alice no longer does.
    const bob = await call('PATCH', `${podPath}/ssa?fieldManager=bob`, { body: { spec: { containers: [{ name: 'web', image: 'web:2' }] } }, type: 'application/strategic-merge-patch+json' });
    const managed = bob.body.metadata!.managedFields as { manager: string; operation: string; fieldsV1: object }[];
    expect(managed.find((m) => m.manager === 'bob')).toMatchObject({ operation: 'Update', fieldsV1: { 'f:spec': { 'f:containers': { 'k:{"name":"web"}': { 'f:image': {} } } } } });
    expect(JSON.stringify(managed.find((m) => m.manager === 'alice')!.fieldsV1)).not.toContain('f:image');
    // alice applying her old image again conflicts with bob's Update; force takes it back.
    const conflict = await call('PATCH', `${podPath}/ssa?fieldManager=alice`, { raw: yaml, type: 'application/apply-patch+yaml' });
    expect(conflict).toMatchObject({ status: 409, body: { reason: 'Conflict', details: { causes: [{ reason: 'FieldManagerConflict', message: 'conflict with "bob" using v1', field: '.spec.containers[name="web"].image' }] } } });
    const forced = await call('PATCH', `${podPath}/ssa?fieldManager=alice&force=true`, { raw: yaml, type: 'application/apply-patch+yaml' });
    expect(forced.status).toBe(200);
    expect((forced.body.spec as { containers: { image: string }[] }).containers[0]!.image).toBe('web:1');
    expect((forced.body.metadata!.managedFields as { manager: string }[]).map((m) => m.manager)).toEqual(['alice']);
    // Dropping a label from the applied configuration removes it.
    const dropped = await call('PATCH', `${podPath}/ssa?fieldManager=alice`, { raw: yaml.replace('  labels: {a: "1"}\n', ''), type: 'application/apply-patch+yaml' });
    expect(dropped.body.metadata!.labels ?? {}).toEqual({});
  });

  it('dry-runs, validates fields (Strict refuses, Warn warns) and rejects bad parameters with 400', async () => {
    const dry = await call('POST', `${podPath}?dryRun=All`, { body: pod('dry') });
    expect(dry.status).toBe(201);
    expect((await call('GET', `${podPath}/dry`)).status).toBe(404);
    expect((await call('POST', `${podPath}?dryRun=Some`, { body: pod('dry') })).status).toBe(400);
    const strict = await call('POST', `${podPath}?fieldValidation=Strict`, { body: pod('strict', { spec: { containers: [{ name: 'c', imagee: 'x' }] } }) });
    expect(strict).toMatchObject({ status: 400, body: { reason: 'BadRequest', message: 'Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].imagee"' } });
    const warn = await call('POST', podPath, { body: pod('warned', { spec: { containers: [{ name: 'c', image: 'x', imagee: 'x' }] } }) });
    expect(warn.status).toBe(201);
    expect(warn.headers.get('warning')).toBe('299 - "unknown field \\"spec.containers[0].imagee\\""');
    expect((await call('POST', `${podPath}?fieldValidation=Loose`, { body: pod('x') })).status).toBe(400);
    // A value of the wrong type cannot be decoded, even with validation off.
    const typed = await call('POST', `${podPath}?fieldValidation=Ignore`, { body: pod('typed', { spec: { containers: [{ name: 'c', ports: [{ containerPort: '80' }] }] } }) });
    expect(typed).toMatchObject({ status: 400, body: { message: 'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field .spec.containers[0].ports[0].containerPort of type int32' } });
    expect((await call('POST', podPath, { body: pod('typed', { spec: { containers: 'c' } }) })).body.message).toContain('of type []v1.Container');
    expect((await call('POST', '/api/v1/namespaces/p/services', { body: { metadata: { name: 'ios' }, spec: { ports: [{ port: 80, targetPort: 'http' }] } } })).status).toBe(201);
    await call('POST', podPath, { body: pod('drydel') });
    expect((await call('DELETE', `${podPath}/drydel?dryRun=All`)).status).toBe(200);
    expect((await call('GET', `${podPath}/drydel`)).status).toBe(200);
  });

  it('deletes with options: grace for scheduled pods, preconditions, cascading and orphaning dependents', async () => {
    await call('POST', podPath, { body: pod('sched', { spec: { nodeName: 'n1', terminationGracePeriodSeconds: 60, containers: [{ name: 'c', image: 'x' }] } }) });
    const marked = await call('DELETE', `${podPath}/sched`, { body: { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 5 } });
    expect(marked.body.metadata).toMatchObject({ deletionGracePeriodSeconds: 5, deletionTimestamp: expect.any(String) });
    expect((await call('DELETE', `${podPath}/sched?gracePeriodSeconds=0`)).status).toBe(200);
    expect((await call('GET', `${podPath}/sched`)).status).toBe(404);

    const owner = (await call('POST', '/api/v1/nodes', { body: { metadata: { name: 'owner-node' } } })).body;
    const ref = { apiVersion: 'v1', kind: 'Node', name: 'owner-node', uid: owner.metadata!.uid };
    await call('POST', podPath, { body: pod('dep', { metadata: { name: 'dep', ownerReferences: [ref] } }) });
    const stale = await call('DELETE', '/api/v1/nodes/owner-node', { body: { preconditions: { uid: 'not-it' } } });
    expect(stale).toMatchObject({ status: 409, body: { reason: 'Conflict', message: expect.stringContaining('Precondition failed: UID in precondition: not-it') } });
    expect((await call('DELETE', '/api/v1/nodes/owner-node', { body: { propagationPolicy: 'Sideways' } })).status).toBe(422);
    expect((await call('DELETE', '/api/v1/nodes/owner-node', { body: { propagationPolicy: 'Background' } })).status).toBe(200);
    expect((await call('GET', `${podPath}/dep`)).status).toBe(404);
    // The garbage collector deletes a scheduled dependent pod gracefully, as a client's DELETE would.
    const owner3 = (await call('POST', '/api/v1/nodes', { body: { metadata: { name: 'owner-3' } } })).body;
    await call('POST', podPath, { body: pod('gcpod', { metadata: { name: 'gcpod', ownerReferences: [{ ...ref, name: 'owner-3', uid: owner3.metadata!.uid }] }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'x' }] } }) });
    await call('DELETE', '/api/v1/nodes/owner-3');
    expect((await call('GET', `${podPath}/gcpod`)).body.metadata).toMatchObject({ deletionTimestamp: expect.any(String), deletionGracePeriodSeconds: 30 });

    const owner2 = (await call('POST', '/api/v1/nodes', { body: { metadata: { name: 'owner-2' } } })).body;
    await call('POST', podPath, { body: pod('orphan', { metadata: { name: 'orphan', ownerReferences: [{ ...ref, name: 'owner-2', uid: owner2.metadata!.uid }] } }) });
    await call('DELETE', '/api/v1/nodes/owner-2?propagationPolicy=Orphan');
    const orphan = await call('GET', `${podPath}/orphan`);
    expect(orphan.status).toBe(200);
    expect(orphan.body.metadata).not.toHaveProperty('ownerReferences');
  });

  it('refuses content in a namespace that does not exist (404 naming the namespace), on create and on apply', async () => {
    const svc = { metadata: { name: 's' }, spec: { ports: [{ port: 80 }] } };
    const missing = await call('POST', '/api/v1/namespaces/nope/services', { body: svc });
    expect(missing).toMatchObject({ status: 404, body: { kind: 'Status', status: 'Failure', reason: 'NotFound', code: 404, message: 'namespaces "nope" not found', details: { name: 'nope', kind: 'namespaces' } } });
    expect(missing.body.details).not.toHaveProperty('group');
    const dry = await call('POST', '/apis/apps/v1/namespaces/nope/deployments?dryRun=All', { body: { metadata: { name: 'd' }, spec: {} } });
    expect(dry.body).toMatchObject({ reason: 'NotFound', message: 'namespaces "nope" not found' });
    const apply = await call('PATCH', '/apis/networking.k8s.io/v1/namespaces/nope/networkpolicies/np?fieldManager=t', { raw: 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\nspec: {podSelector: {}}\n', type: 'application/apply-patch+yaml' });
    expect(apply).toMatchObject({ status: 404, body: { message: 'namespaces "nope" not found' } });
    expect(api.store.list('networkpolicies', { namespace: 'nope' }).items).toHaveLength(0);
    // Cluster-scoped kinds need no namespace; once the namespace exists the same create works.
    expect((await call('POST', '/api/v1/namespaces', { body: { metadata: { name: 'nope' } } })).body).toMatchObject({ spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } });
    expect((await call('POST', '/api/v1/namespaces/nope/services', { body: svc })).status).toBe(201);
  });

  it('validates what kube-apiserver validates cheaply: containers, ports, selectors (422 with one cause per field)', async () => {
    const noContainers = await call('POST', podPath, { body: { metadata: { name: 'empty' }, spec: {} } });
    expect(noContainers).toMatchObject({ status: 422, body: { reason: 'Invalid', message: 'Pod "empty" is invalid: spec.containers: Required value', details: { name: 'empty', kind: 'Pod', causes: [{ reason: 'FieldValueRequired', field: 'spec.containers', message: 'Required value' }] } } });
    const nameless = await call('POST', podPath, { body: { metadata: { name: 'nameless' }, spec: { containers: [{ image: 'x' }, { name: 'b' }, { name: 'b', image: 'y', ports: [{ containerPort: 70000 }] }] } } });
    expect(nameless.status).toBe(422);
    expect(nameless.body.message).toBe('Pod "nameless" is invalid: [spec.containers[0].name: Required value, spec.containers[1].image: Required value, spec.containers[2].name: Duplicate value: "b", spec.containers[2].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive]');
    expect((nameless.body.details as { causes: { field: string }[] }).causes.map((c) => c.field)).toEqual(['spec.containers[0].name', 'spec.containers[1].image', 'spec.containers[2].name', 'spec.containers[2].ports[0].containerPort']);
    const svc = await call('POST', '/api/v1/namespaces/p/services', { body: { metadata: { name: 'far' }, spec: { ports: [{ name: 'a', port: 70000, targetPort: 8080 }, { name: 'b', port: 80, targetPort: 0 }] } } });
    expect(svc.body.message).toBe('Service "far" is invalid: [spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive, spec.ports[1].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive]');
    expect((await call('POST', '/api/v1/namespaces/p/services', { body: { metadata: { name: 'portless' }, spec: {} } })).body.message).toBe('Service "portless" is invalid: spec.ports: Required value');
    expect((await call('POST', '/api/v1/namespaces/p/services', { body: { metadata: { name: 'headless' }, spec: { clusterIP: 'None' } } })).status).toBe(201);
    const multi = await call('POST', '/api/v1/namespaces/p/services', { body: { metadata: { name: 'multi' }, spec: { type: 'Bogus', ports: [{ port: 80 }, { name: 'a', port: 81, protocol: 'ICMP' }, { name: 'a', port: 82 }] } } });
    expect(multi.body.message).toBe('Service "multi" is invalid: [spec.type: Unsupported value: "Bogus": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort", spec.ports[0].name: Required value, spec.ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP", spec.ports[2].name: Duplicate value: "a"]');
    const template = { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'x' }] } };
    const deploy = (name: string, spec: Record<string, unknown>) => call('POST', '/apis/apps/v1/namespaces/p/deployments', { body: { metadata: { name }, spec } });
    expect((await deploy('mismatch', { selector: { matchLabels: { app: 'db' } }, template })).body).toMatchObject({
      message: 'Deployment.apps "mismatch" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`',
      details: { group: 'apps', causes: [{ reason: 'FieldValueInvalid', field: 'spec.template.metadata.labels' }] },
    });
    expect((await deploy('noselector', { template })).body.message).toBe('Deployment.apps "noselector" is invalid: spec.selector: Required value');
    expect((await deploy('emptysel', { selector: {}, template })).body.message).toContain('spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment');
    expect((await deploy('nopods', { selector: { matchLabels: { app: 'web' } }, template: { metadata: template.metadata, spec: {} } })).body.message).toBe('Deployment.apps "nopods" is invalid: spec.template.spec.containers: Required value');
    expect((await deploy('good', { selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web'] }] }, template })).status).toBe(201);
    // An update is held to the rules too, but not to errors the stored object already had.
    const broke = await call('PATCH', '/apis/apps/v1/namespaces/p/deployments/good', { body: { spec: { selector: { matchLabels: { app: 'db' } } } }, type: 'application/merge-patch+json' });
    expect(broke).toMatchObject({ status: 422, body: { reason: 'Invalid' } });
    api.store.create('pods', { metadata: { name: 'bare', namespace: 'p' }, spec: {} });
    expect((await call('PATCH', `${podPath}/bare`, { body: { metadata: { labels: { a: 'b' } } }, type: 'application/merge-patch+json' })).status).toBe(200);
  });

  it('deletes a namespace in two phases: Terminating (creates refused with 403), emptied by the namespace controller, then gone', async () => {
    await call('POST', '/api/v1/namespaces', { body: { metadata: { name: 'doomed' } } });
    const tpl = { metadata: { labels: { app: 'w' } }, spec: { containers: [{ name: 'c', image: 'x' }] } };
    await call('POST', '/apis/apps/v1/namespaces/doomed/deployments', { body: { metadata: { name: 'w' }, spec: { selector: { matchLabels: { app: 'w' } }, template: tpl } } });
    await call('POST', '/api/v1/namespaces/doomed/services', { body: { metadata: { name: 'w' }, spec: { ports: [{ port: 80 }] } } });
    // A pod on a node with no kubelet to confirm: it goes at the end of its grace period.
    await call('POST', '/api/v1/namespaces/doomed/pods', { body: { metadata: { name: 'slow' }, spec: { nodeName: 'n1', terminationGracePeriodSeconds: 3, containers: [{ name: 'c', image: 'x' }] } } });
    const del = await call('DELETE', '/api/v1/namespaces/doomed');
    expect(del).toMatchObject({ status: 200, body: { kind: 'Namespace', metadata: { name: 'doomed', deletionTimestamp: expect.any(String) }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Terminating' } } });
    const refused = await call('POST', '/api/v1/namespaces/doomed/services', { body: { metadata: { name: 'late' }, spec: { ports: [{ port: 80 }] } } });
    expect(refused).toMatchObject({
      status: 403,
      body: {
        reason: 'Forbidden',
        message: 'services "late" is forbidden: unable to create new content in namespace doomed because it is being terminated',
        details: { name: 'late', kind: 'services', causes: [{ reason: 'NamespaceTerminating', message: 'namespace doomed is being terminated', field: 'metadata.namespace' }] },
      },
    });
    // The same for controllers writing in process.
    expect(() => api.store.create('events', { metadata: { name: 'e', namespace: 'doomed' } })).toThrow(/because it is being terminated/);
    expect((await call('GET', '/apis/apps/v1/namespaces/doomed/deployments/w')).status).toBe(404);
    const slow = await call('GET', '/api/v1/namespaces/doomed/pods/slow');
    expect(slow.body.metadata).toMatchObject({ deletionTimestamp: expect.any(String) });
    expect((await call('DELETE', '/api/v1/namespaces/doomed')).body).toMatchObject({
      reason: 'Conflict',
      message: 'Operation cannot be fulfilled on namespaces "doomed": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.',
    });
    // What is left is reported on the namespace's conditions, as the namespace controller does.
    const until = Date.now() + 5000;
    let status = (await call('GET', '/api/v1/namespaces/doomed')).body.status as { phase: string; conditions?: { type: string; status: string; message: string }[] };
    while (!status.conditions && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
      status = (await call('GET', '/api/v1/namespaces/doomed')).body.status as typeof status;
    }
    expect(status.phase).toBe('Terminating');
    expect(status.conditions?.find((c) => c.type === 'NamespaceContentRemaining')).toMatchObject({ status: 'True', message: 'Some resources are remaining: pods. has 1 resource instances' });
    const deadline = Date.now() + 10_000;
    while ((await call('GET', '/api/v1/namespaces/doomed')).status !== 404) {
      if (Date.now() > deadline) throw new Error('namespace doomed never went away');
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const r of ['pods', 'services', 'deployments', 'replicasets', 'endpointslices', 'events'] as const) expect(api.store.list(r, { namespace: 'doomed' }).items).toEqual([]);
    // The system namespaces cannot be deleted.
    expect(await call('DELETE', '/api/v1/namespaces/kube-system')).toMatchObject({ status: 403, body: { reason: 'Forbidden', message: 'namespaces "kube-system" is forbidden: this namespace may not be deleted' } });
  });

  it('publishes the CA of a TLS server on the store in every namespace\'s kube-root-ca.crt', async () => {
    const tls = await startFakeApiServer({ store: api.store, tls: true });
    try {
      const deadline = Date.now() + 5000;
      while ((api.store.get('configmaps', 'kube-root-ca.crt', 'p').data as Record<string, string>)['ca.crt'] !== tls.tls!.cert) {
        if (Date.now() > deadline) throw new Error('CA not published');
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(api.store.get('configmaps', 'kube-root-ca.crt', 'kube-system')).toMatchObject({ data: { 'ca.crt': tls.tls!.cert } });
    } finally {
      await tls.close();
    }
  });

  it('answers what it does not serve with Statuses: 404, 405, 415, 422 with causes', async () => {
    expect(await call('GET', '/api/v1/widgets')).toMatchObject({ status: 404, body: { kind: 'Status', reason: 'NotFound' } });
    expect(await call('GET', '/apis/apps/v1/widgets')).toMatchObject({ status: 404, body: { reason: 'NotFound' } });
    expect(await call('POST', `${podPath}/x`, { body: {} })).toMatchObject({ status: 405, body: { reason: 'MethodNotAllowed' } });
    expect(await call('PATCH', `${podPath}/tbl`, { raw: '{}', type: 'text/plain' })).toMatchObject({ status: 415, body: { reason: 'UnsupportedMediaType' } });
    const bad = await call('POST', podPath, { body: { metadata: { name: 'Bad_Name' }, spec: { containers: [{ name: 'c', image: 'i' }] } } });
    expect(bad).toMatchObject({ status: 422, body: { reason: 'Invalid', details: { causes: [{ reason: 'FieldValueInvalid', field: 'metadata.name' }] } } });
    expect((await call('PATCH', `${podPath}/tbl`, { raw: '{not json', type: 'application/merge-patch+json' })).status).toBe(400);
    // A kind without a schema is patched like a custom resource: merge and JSON patch, no strategic merge.
    api.store.create('nodes', { metadata: { name: 'schemaless' } });
    const route = { def: { ...RESOURCES.nodes, kind: 'Widget' }, name: 'schemaless' };
    const smpHeaders = { 'content-type': 'application/strategic-merge-patch+json' };
    expect(() => patch(api.store, route, new URLSearchParams(), smpHeaders, '{"metadata":{"labels":{"a":"b"}}}')).toThrow(/accepted media types include: application\/json-patch\+json, application\/merge-patch\+json, application\/apply-patch\+yaml$/);
    const merged = patch(api.store, route, new URLSearchParams(), { 'content-type': 'application/merge-patch+json' }, '{"metadata":{"labels":{"a":"b"}}}');
    expect((merged.body as KubeObject).metadata.labels).toEqual({ a: 'b' });
  });
});
