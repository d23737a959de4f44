// The sandbox API server as kubectl 1.32 sees it: every check runs the real /usr/bin/kubectl
// against a server on port 0 through the kubeconfig the server writes. No root needed.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../../test/support/env.js';
import { startFakeApiServer, type FakeApiServer, type KubeObject } from './index.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let api: FakeApiServer;
let dir: string;

/** Runs kubectl without blocking this process's event loop (the server answers from it). */
function kubectl(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    // HOME keeps kubectl's discovery and OpenAPI cache inside this test's directory.
    const p = spawn('kubectl', args, { env: { ...process.env, KUBECONFIG: join(dir, 'kubeconfig'), HOME: dir, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(opts.stdin ?? '');
  });
}

async function ok(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<string> {
  const r = await kubectl(args, opts);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** The rows of kubectl's table output, each a map from column header to cell. */
function table(text: string): Record<string, string>[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0] ?? '';
  // Columns start where a header word starts after two or more spaces (headers hold single spaces).
  const starts = [0, ...[...header.matchAll(/ {2,}(\S)/g)].map((m) => m.index! + m[0].length - 1)];
  const cut = (l: string): string[] => starts.map((s, i) => l.slice(s, starts[i + 1]).trim());
  const names = cut(header);
  return lines.slice(1).map((l) => Object.fromEntries(cut(l).map((c, i) => [names[i]!, c])));
}

const runningPod = (name: string, node: string, ip: string): KubeObject => ({
  metadata: { name, namespace: 'kc', labels: { app: name } },
  spec: { nodeName: node, containers: [{ name: 'main', image: 'registry.k8s.io/e2e-test-images/agnhost:2.53' }] },
  status: {
    phase: 'Running',
    podIP: ip,
    podIPs: [{ ip }],
    conditions: [{ type: 'Ready', status: 'True' }],
    containerStatuses: [{ name: 'main', ready: true, restartCount: 2, state: { running: { startedAt: '2026-01-01T00:00:00Z' } } }],
  },
});

describe.skipIf(missing('kubectl against the sandbox API server', { tools: ['kubectl'] }))('kubectl against the sandbox API server', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skiff-kubectl-'));
    api = await startFakeApiServer({ port: 0, bookmarkIntervalMs: 0 });
    api.writeKubeconfig(join(dir, 'kubeconfig'));
    api.store.create('namespaces', { metadata: { name: 'kc' } });
  });
  afterAll(async () => {
    await api?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lists pods across namespaces with STATUS, RESTARTS, IP and NODE (-o wide), from the Table format', async () => {
    api.store.create('pods', runningPod('wide-a', 'node-1', '10.244.1.7'));
    const pending = runningPod('wide-b', 'node-2', '10.244.2.9');
    pending.status = { phase: 'Pending', containerStatuses: [{ name: 'main', ready: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } }] };
    api.store.create('pods', pending);
    const rows = table(await ok(['get', 'pods', '-A', '-o', 'wide']));
    expect(rows.find((r) => r.NAME === 'wide-a')).toMatchObject({ NAMESPACE: 'kc', READY: '1/1', STATUS: 'Running', RESTARTS: '2', IP: '10.244.1.7', NODE: 'node-1', 'NOMINATED NODE': '<none>' });
    expect(rows.find((r) => r.NAME === 'wide-b')).toMatchObject({ READY: '0/1', STATUS: 'ContainerCreating', IP: '<none>', NODE: 'node-2' });
    // Without -o wide the priority-1 columns stay out.
    expect(Object.keys(table(await ok(['get', 'pods', '-n', 'kc']))[0]!)).toEqual(['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE']);
    const ns = table(await ok(['get', 'ns']));
    expect(ns.find((r) => r.NAME === 'kc')).toMatchObject({ STATUS: 'Active' });
    // Short names and the "all" category come from aggregated discovery.
    expect(await ok(['get', 'po', '-n', 'kc', '-o', 'name'])).toContain('pod/wide-a');
    expect(await ok(['get', 'all', '-n', 'kc'])).toContain('pod/wide-a');
    const resources = table(await ok(['api-resources']));
    expect(resources.find((r) => r.NAME === 'services')).toMatchObject({ SHORTNAMES: 'svc', APIVERSION: 'v1', NAMESPACED: 'true', KIND: 'Service' });
    expect(api.requests.some((r) => r.url.startsWith('/api/v1?'))).toBe(false); // aggregated discovery made the per-version documents unnecessary
  });

  it('applies a manifest twice: create, then a strategic merge patch carrying the last-applied annotation', async () => {
    const manifest = (targetPort: number, extra = ''): string => `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: kc
  labels: {app: web${extra}}
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: ${targetPort}
`;
    const file = join(dir, 'svc.yaml');
    writeFileSync(file, manifest(8080, ', tier: front'));
    expect(await ok(['apply', '-f', file])).toContain('service/web created');
    writeFileSync(file, manifest(9090));
    const before = api.requests.length;
    expect(await ok(['apply', '-f', file])).toContain('service/web configured');
    const patches = api.requests.slice(before).filter((r) => r.method === 'PATCH');
    expect(patches).toHaveLength(1);
    expect(patches[0]!.url).toContain('fieldManager=kubectl-client-side-apply');
    const svc = api.store.get('services', 'web', 'kc');
    expect((svc.spec as { ports: unknown[] }).ports).toEqual([{ name: 'http', port: 80, targetPort: 9090, protocol: 'TCP' }]);
    // The label dropped from the manifest is removed: the three-way patch sent it as null.
    expect(svc.metadata.labels).toEqual({ app: 'web' });
    expect(JSON.parse(svc.metadata.annotations!['kubectl.kubernetes.io/last-applied-configuration']!)).toMatchObject({ spec: { ports: [{ targetPort: 9090 }] } });
    expect(await ok(['apply', '-f', file])).toContain('service/web unchanged');
    const rows = table(await ok(['get', 'svc', '-n', 'kc', '-o', 'wide']));
    expect(rows[0]).toMatchObject({ NAME: 'web', TYPE: 'ClusterIP', 'PORT(S)': '80/TCP', SELECTOR: 'app=web' });
  });

  it('refuses unknown fields when kubectl asks for strict validation, and dry-runs without storing', async () => {
    const bad = 'apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: kc}\nspec:\n  ports: [{port: 80, bogus: 1}]\n';
    const r = await kubectl(['apply', '-f', '-'], { stdin: bad });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('strict decoding error: unknown field "spec.ports[0].bogus"');
    expect(() => api.store.get('services', 'bad', 'kc')).toThrow(/not found/);
    const dry = 'apiVersion: v1\nkind: Service\nmetadata: {name: dry, namespace: kc}\nspec:\n  ports: [{port: 80}]\n';
    expect(await ok(['apply', '--dry-run=server', '-f', '-'], { stdin: dry })).toContain('service/dry created (server dry run)');
    expect(() => api.store.get('services', 'dry', 'kc')).toThrow(/not found/);
  });

  it('applies server-side: managed fields, a conflict between managers answered 409, then --force-conflicts', async () => {
    const cm = (replicas: string): string => `apiVersion: v1
kind: Service
metadata: {name: ssa, namespace: kc}
spec:
  selector: {app: ssa}
  ports:
  - {name: http, port: 80, targetPort: ${replicas}}
`;
    expect(await ok(['apply', '--server-side', '-f', '-'], { stdin: cm('8080') })).toContain('service/ssa serverside-applied');
    const conflict = await kubectl(['apply', '--server-side', '--field-manager=deployer', '-f', '-'], { stdin: cm('9090') });
    expect(conflict.code).not.toBe(0);
    expect(conflict.stderr).toContain('Apply failed with 1 conflict: conflict with "kubectl" using v1: .spec.ports[port=80,protocol="TCP"].targetPort');
    expect((api.store.get('services', 'ssa', 'kc').spec as { ports: { targetPort: number }[] }).ports[0]!.targetPort).toBe(8080);
    await ok(['apply', '--server-side', '--field-manager=deployer', '--force-conflicts', '-f', '-'], { stdin: cm('9090') });
    const svc = api.store.get('services', 'ssa', 'kc');
    expect((svc.spec as { ports: { targetPort: number }[] }).ports[0]!.targetPort).toBe(9090);
    const managed = svc.metadata.managedFields as { manager: string; operation: string; fieldsV1: Record<string, unknown> }[];
    const owns = (m: string): string => JSON.stringify(managed.find((e) => e.manager === m)?.fieldsV1 ?? {});
    expect(owns('deployer')).toContain('f:targetPort');
    expect(owns('kubectl')).not.toContain('f:targetPort'); // forced away
    expect(owns('kubectl')).toContain('f:selector'); // still shared
    expect(managed.every((e) => e.operation === 'Apply')).toBe(true);
    // A manager that stops applying a field it alone owns removes it (and the default comes back).
    await ok(['apply', '--server-side', '--field-manager=deployer', '-f', '-'], { stdin: 'apiVersion: v1\nkind: Service\nmetadata: {name: ssa, namespace: kc}\nspec:\n  ports: [{name: http, port: 80}]\n' });
    expect((api.store.get('services', 'ssa', 'kc').spec as { ports: Record<string, unknown>[] }).ports[0]).toMatchObject({ port: 80, targetPort: 80 });
  });

  it('moves a client-side applied object to server-side apply (kubectl rewrites managedFields) without conflicts', async () => {
    const svc = (port: number): string => `apiVersion: v1\nkind: Service\nmetadata: {name: moved, namespace: kc}\nspec:\n  selector: {app: moved}\n  ports: [{port: 80, targetPort: ${port}}]\n`;
    await ok(['apply', '-f', '-'], { stdin: svc(8080) });
    await ok(['apply', '--server-side', '-f', '-'], { stdin: svc(8080) });
    const managers = (): string[] => (api.store.get('services', 'moved', 'kc').metadata.managedFields as { manager: string; operation: string }[]).map((m) => `${m.manager}/${m.operation}`).sort();
    expect(managers()).toEqual(['kubectl-last-applied/Apply', 'kubectl/Apply']);
    // kubectl now owns what kubectl-client-side-apply did, so a changed value is no conflict.
    await ok(['apply', '--server-side', '-f', '-'], { stdin: svc(8181) });
    expect((api.store.get('services', 'moved', 'kc').spec as { ports: { targetPort: number }[] }).ports[0]!.targetPort).toBe(8181);
  });

  it('labels, edits and explains', async () => {
    api.store.create('pods', runningPod('lab', 'node-1', '10.244.1.8'));
    expect(await ok(['label', 'pod', 'lab', '-n', 'kc', 'tier=db'])).toContain('pod/lab labeled');
    const pod = api.store.get('pods', 'lab', 'kc');
    expect(pod.metadata.labels).toEqual({ app: 'lab', tier: 'db' });
    expect(JSON.stringify(pod.metadata.managedFields)).toContain('"manager":"kubectl-label"');
    const taken = await kubectl(['label', 'pod', 'lab', '-n', 'kc', 'tier=web']);
    expect(taken.stderr).toContain("'tier' already has a value (db)");
    await ok(['label', 'pod', 'lab', '-n', 'kc', 'tier-']);
    expect(api.store.get('pods', 'lab', 'kc').metadata.labels).toEqual({ app: 'lab' });

    // kubectl edit: GET, the editor, then a patch computed from the difference.
    const editor = join(dir, 'editor.sh');
    writeFileSync(editor, '#!/bin/sh\nsed -i "s/app: lab/app: edited/" "$1"\n', { mode: 0o755 });
    expect(await ok(['edit', 'pod', 'lab', '-n', 'kc'], { env: { EDITOR: editor } })).toContain('pod/lab edited');
    expect(api.store.get('pods', 'lab', 'kc').metadata.labels).toEqual({ app: 'edited' });

    const explain = await ok(['explain', 'pod.spec.containers']);
    expect(explain).toContain('FIELD: containers <[]Container>');
    expect(explain).toMatch(/name\s+<string> -required-/);
    expect(explain).toMatch(/ports\s+<\[\]ContainerPort>/);
    expect(await ok(['explain', 'svc.spec.ports.port'])).toContain('FIELD: port <integer>');
    // The legacy explain reads OpenAPI v2 as protobuf.
    const v2 = await ok(['explain', 'pods.spec.containers.ports', '--output=plaintext-openapiv2']);
    expect(v2).toContain('RESOURCE: ports <[]Object>');
    expect(v2).toMatch(/containerPort\s+<integer> -required-/);
  });

  it('watches with get -w: the update arrives as a new row', async () => {
    api.store.create('pods', runningPod('watched', 'node-1', '10.244.1.9'));
    const p = spawn('kubectl', ['get', 'pods', '-n', 'kc', '-w', '--field-selector', 'metadata.name=watched'], { env: { ...process.env, KUBECONFIG: join(dir, 'kubeconfig'), HOME: dir } });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const until = async (re: RegExp): Promise<void> => {
        for (let i = 0; i < 100 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 100));
        expect(out).toMatch(re);
      };
      await until(/watched\s+1\/1\s+Running/);
      const cur = api.store.get('pods', 'watched', 'kc');
      api.store.update('pods', { ...cur, status: { ...(cur.status as object), phase: 'Failed', reason: 'Evicted' } }, { subresource: 'status' });
      await until(/watched\s+\S+\s+Evicted/);
      expect(out.match(/^NAME/gm)).toHaveLength(1); // one header, then rows
    } finally {
      p.kill();
    }
  });

  it('deletes: a scheduled pod gracefully (Terminating until confirmed), others at once', async () => {
    api.store.create('pods', runningPod('doomed', 'node-1', '10.244.1.10'));
    expect(await ok(['delete', 'pod', 'doomed', '-n', 'kc', '--wait=false'])).toContain('pod "doomed" deleted');
    const marked = api.store.get('pods', 'doomed', 'kc');
    expect(marked.metadata.deletionGracePeriodSeconds).toBe(30);
    expect(Date.parse(marked.metadata.deletionTimestamp!)).toBeGreaterThan(Date.now() + 20_000);
    expect(table(await ok(['get', 'pod', 'doomed', '-n', 'kc']))[0]).toMatchObject({ STATUS: 'Terminating' });
    // What the kubelet does once the containers stopped: delete with a zero grace period.
    await ok(['delete', 'pod', 'doomed', '-n', 'kc', '--grace-period=0', '--force']);
    expect(() => api.store.get('pods', 'doomed', 'kc')).toThrow(/not found/);
    // kubectl delete waits for the object to go (a watch on it) and returns once the kubelet
    // confirms: with a 600 s grace period, waiting for the deadline would time the test out.
    api.store.create('pods', { ...runningPod('waited', 'node-1', '10.244.1.11'), spec: { nodeName: 'node-1', terminationGracePeriodSeconds: 600, containers: [{ name: 'main', image: 'x' }] } });
    const confirm = api.store.onEvent((e) => {
      if (e.type === 'MODIFIED' && e.object.metadata.name === 'waited' && e.object.metadata.deletionTimestamp) setTimeout(() => api.store.delete('pods', 'waited', 'kc'), 300);
    });
    try {
      expect(await ok(['delete', 'pod', 'waited', '-n', 'kc'])).toContain('pod "waited" deleted');
    } finally {
      confirm();
    }
    expect(await ok(['delete', 'svc', 'web', '-n', 'kc'])).toContain('service "web" deleted');
    expect(() => api.store.get('services', 'web', 'kc')).toThrow(/not found/);
  });

  it('refuses a create in a missing namespace and an invalid Pod with kube-apiserver\'s errors', async () => {
    const nope = await kubectl(['create', 'deployment', 'web', '--image=registry.k8s.io/e2e-test-images/agnhost:2.53', '-n', 'nope']);
    expect(nope.code).not.toBe(0);
    expect(nope.stderr.trim()).toBe('error: failed to create deployment: namespaces "nope" not found');
    const applied = await kubectl(['apply', '-f', '-'], { stdin: 'apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: nope}\nspec: {ports: [{port: 80}]}\n' });
    expect(applied.stderr).toContain('namespaces "nope" not found');
    const ssa = await kubectl(['apply', '--server-side', '-f', '-'], { stdin: 'apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: nope}\nspec: {ports: [{port: 80}]}\n' });
    expect(ssa.stderr).toContain('namespaces "nope" not found');
    const empty = await kubectl(['create', '-f', '-'], { stdin: 'apiVersion: v1\nkind: Pod\nmetadata: {name: empty, namespace: kc}\nspec: {containers: []}\n' });
    expect(empty.stderr).toContain('The Pod "empty" is invalid: spec.containers: Required value');
    const mismatch = await kubectl(['create', '-f', '-'], { stdin: 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: mm, namespace: kc}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: x}]}\n' });
    expect(mismatch.stderr).toContain('The Deployment "mm" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"b"}: `selector` does not match template `labels`');
  });

  it('deletes a namespace and everything in it: kubectl waits while it is Terminating, creates in it are refused', async () => {
    await ok(['create', 'namespace', 'gone']);
    await ok(['create', 'deployment', 'web', '--image=registry.k8s.io/e2e-test-images/agnhost:2.53', '-n', 'gone']);
    // A scheduled pod with no kubelet to confirm: the namespace stays Terminating for its grace
    // period, long enough for three kubectl runs on a loaded machine before it goes.
    api.store.create('pods', { ...runningPod('slow', 'node-1', '10.244.1.12'), metadata: { name: 'slow', namespace: 'gone' }, spec: { nodeName: 'node-1', terminationGracePeriodSeconds: 6, containers: [{ name: 'main', image: 'x' }] } });
    const t0 = Date.now();
    const deleting = kubectl(['delete', 'namespace', 'gone']);
    const deadline = Date.now() + 5000;
    while (!api.store.get('namespaces', 'gone').metadata.deletionTimestamp) {
      if (Date.now() > deadline) throw new Error('namespace gone never marked');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(table(await ok(['get', 'namespace', 'gone']))[0]).toMatchObject({ NAME: 'gone', STATUS: 'Terminating' });
    const late = await kubectl(['create', 'deployment', 'late', '--image=x', '-n', 'gone']);
    expect(late.stderr.trim()).toBe('error: failed to create deployment: deployments.apps "late" is forbidden: unable to create new content in namespace gone because it is being terminated');
    const done = await deleting;
    expect(done).toMatchObject({ code: 0, stdout: 'namespace "gone" deleted\n' });
    expect(Date.now() - t0).toBeGreaterThan(4000); // waited for the pod's grace period (6 s, to the second)
    expect((await kubectl(['get', 'namespace', 'gone'])).stderr).toContain('Error from server (NotFound): namespaces "gone" not found');
    expect(api.store.list('pods', { namespace: 'gone' }).items).toEqual([]);
    expect(api.store.list('deployments', { namespace: 'gone' }).items).toEqual([]);
    const system = await kubectl(['delete', 'namespace', 'default']);
    expect(system.stderr).toContain('Error from server (Forbidden): namespaces "default" is forbidden: this namespace may not be deleted');
  });

  it('serves ServiceAccounts, ConfigMaps and Secrets with upstream\'s columns, and fills every new namespace', async () => {
    expect(await ok(['create', 'namespace', 'fresh'])).toBe('namespace/fresh created\n');
    const deadline = Date.now() + 5000;
    let names = '';
    while ((names = await ok(['get', 'serviceaccounts,configmaps', '-n', 'fresh', '-o', 'name'])) !== 'serviceaccount/default\nconfigmap/kube-root-ca.crt\n') {
      if (Date.now() > deadline) throw new Error(`fresh holds ${names}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await ok(['create', 'configmap', 'cfg', '--from-literal=a=1', '--from-literal=b=2', '-n', 'fresh'])).toBe('configmap/cfg created\n');
    expect(table(await ok(['get', 'cm', '-n', 'fresh'])).map((r) => [r.NAME, r.DATA])).toEqual([['cfg', '2'], ['kube-root-ca.crt', '1']]);
    expect(await ok(['create', 'secret', 'generic', 'creds', '--from-literal=user=admin', '-n', 'fresh'])).toBe('secret/creds created\n');
    expect(table(await ok(['get', 'secrets', '-n', 'fresh']))).toEqual([{ NAME: 'creds', TYPE: 'Opaque', DATA: '1', AGE: expect.stringMatching(/^\d+s$/) }]);
    expect(await ok(['get', 'secret', 'creds', '-n', 'fresh', '-o', 'jsonpath={.data.user}'])).toBe(Buffer.from('admin').toString('base64'));
    // stringData is merged into data on write, as upstream does.
    await ok(['apply', '-f', '-'], { stdin: 'apiVersion: v1\nkind: Secret\nmetadata: {name: plain, namespace: fresh}\nstringData: {token: abc}\n' });
    expect(api.store.get('secrets', 'plain', 'fresh')).toMatchObject({ type: 'Opaque', data: { token: Buffer.from('abc').toString('base64') } });
    expect(api.store.get('secrets', 'plain', 'fresh')).not.toHaveProperty('stringData');
    expect(await ok(['create', 'serviceaccount', 'bot', '-n', 'fresh'])).toBe('serviceaccount/bot created\n');
    expect(table(await ok(['get', 'sa', '-n', 'fresh']))).toEqual([{ NAME: 'bot', SECRETS: '0', AGE: expect.any(String) }, { NAME: 'default', SECRETS: '0', AGE: expect.any(String) }]);
    expect(await ok(['explain', 'configmap.data'])).toContain('UTF-8 values');
    // The serviceaccounts controller puts a deleted default back.
    await ok(['delete', 'sa', 'default', '-n', 'fresh']);
    const back = Date.now() + 5000;
    while ((await kubectl(['get', 'sa', 'default', '-n', 'fresh'])).code !== 0) {
      if (Date.now() > back) throw new Error('default ServiceAccount not recreated');
      await new Promise((r) => setTimeout(r, 50));
    }
    await ok(['delete', 'namespace', 'fresh']);
  });

  it('answers what it does not model as kube-apiserver does', async () => {
    const unknown = await kubectl(['get', 'widgets']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('the server doesn\'t have a resource type "widgets"');
    const missingPod = await kubectl(['get', 'pod', 'nope', '-n', 'kc']);
    expect(missingPod.stderr).toContain('Error from server (NotFound): pods "nope" not found');
    const raw = await kubectl(['get', '--raw', '/apis/widgets.example.com/v1/widgets']);
    expect(raw.stderr).toContain('NotFound');
    const invalid = await kubectl(['create', '-f', '-'], { stdin: 'apiVersion: v1\nkind: Service\nmetadata: {name: Bad_Name, namespace: kc}\nspec: {ports: [{port: 80}]}\n' });
    expect(invalid.stderr).toMatch(/is invalid: metadata.name: Invalid value: "Bad_Name"/);
    // A Pod's spec is immutable but for images: re-applying changed args is refused, a new image is not.
    const podYaml = (args: string, image: string): string => `apiVersion: v1\nkind: Pod\nmetadata: {name: fixed, namespace: kc}\nspec:\n  containers:\n  - {name: c, image: ${image}, args: [${args}]}\n`;
    await ok(['apply', '-f', '-'], { stdin: podYaml('a', 'img:1') });
    const changed = await kubectl(['apply', '-f', '-'], { stdin: podYaml('b', 'img:1') });
    expect(changed.code).not.toBe(0);
    expect(changed.stderr).toContain('The Pod "fixed" is invalid: spec: Forbidden: pod updates may not change fields other than');
    expect(await ok(['apply', '-f', '-'], { stdin: podYaml('a', 'img:2') })).toContain('pod/fixed configured');
  });
});
