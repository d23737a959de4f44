// Protobuf request bodies as kubectl 1.32 sends them for `kubectl create`, decoded into the same
// objects its JSON would give; what the table does not know is a 415, never a silent loss.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../../test/support/env.js';
import { decodeProtobufObject } from './protobuf.js';
import { startFakeApiServer, type FakeApiServer } from './index.js';

const run = promisify(execFile);

/** A protobuf field: varint or length-delimited. */
const varint = (n: number): number[] => {
  const out: number[] = [];
  do {
    out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>>= 7;
  } while (n > 0);
  return out;
};
const field = (n: number, v: Buffer | number): Buffer => (typeof v === 'number' ? Buffer.from([...varint(n << 3), ...varint(v)]) : Buffer.concat([Buffer.from([...varint((n << 3) | 2), ...varint(v.length)]), v]));
const str = (n: number, s: string): Buffer => field(n, Buffer.from(s));
const envelope = (apiVersion: string, kind: string, raw: Buffer): Buffer => Buffer.concat([Buffer.from('k8s\0', 'latin1'), field(1, Buffer.concat([str(1, apiVersion), str(2, kind)])), field(2, raw)]);

describe('protobuf bodies (no kubectl)', () => {
  it('decodes the envelope, skips empty unknown fields and the status, and refuses a value it cannot place', () => {
    const meta = Buffer.concat([str(1, 'ns1'), field(4, Buffer.alloc(0)), field(11, Buffer.concat([str(1, 'a'), str(2, 'b')]))]);
    const ns = envelope('v1', 'Namespace', Buffer.concat([field(1, meta), field(3, str(1, 'Active'))]));
    expect(decodeProtobufObject(ns)).toEqual({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns1', labels: { a: 'b' } } });
    const withOwner = envelope('v1', 'Namespace', field(1, Buffer.concat([str(1, 'x'), field(13, str(1, 'owner'))])));
    expect(() => decodeProtobufObject(withOwner)).toThrow(/field 13 of ObjectMeta at \.metadata/);
    expect(() => decodeProtobufObject(envelope('batch/v1', 'Job', Buffer.alloc(0)))).toThrow(/kind batch\/v1\/Job/);
    expect(() => decodeProtobufObject(Buffer.from('{}'))).toThrow(/no k8s protobuf envelope/);
    // replicas is a pointer: an explicit 0 is kept.
    const d = envelope('apps/v1', 'Deployment', Buffer.concat([field(1, str(1, 'd')), field(2, field(1, 0))]));
    expect(decodeProtobufObject(d)).toMatchObject({ spec: { replicas: 0 } });
  });
});

describe.skipIf(missing('kubectl create with protobuf bodies', { tools: ['kubectl'] }))('kubectl create (protobuf bodies)', () => {
  let api: FakeApiServer;
  let dir: string;
  const kubectl = (...args: string[]) => run('kubectl', ['--kubeconfig', join(dir, 'kc'), ...args]);

  beforeAll(async () => {
    api = await startFakeApiServer({ port: 0 });
    dir = mkdtempSync(join(tmpdir(), 'skiff-pb-'));
    api.writeKubeconfig(join(dir, 'kc'));
  });
  afterAll(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a namespace, a deployment and a service as their JSON would', async () => {
    expect((await kubectl('create', 'namespace', 'pb')).stdout).toBe('namespace/pb created\n');
    await kubectl('-n', 'pb', 'create', 'deployment', 'web', '--image=registry.k8s.io/e2e-test-images/agnhost:2.52', '--replicas=2', '--port=8080', '--', '/agnhost', 'netexec');
    await kubectl('-n', 'pb', 'create', 'service', 'clusterip', 'web', '--tcp=80:8080');
    const d = api.store.get('deployments', 'web', 'pb');
    expect(d.spec).toMatchObject({
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'agnhost', image: 'registry.k8s.io/e2e-test-images/agnhost:2.52', command: ['/agnhost', 'netexec'], ports: [{ containerPort: 8080 }] }] } },
    });
    expect(api.store.get('services', 'web', 'pb').spec).toMatchObject({ type: 'ClusterIP', selector: { app: 'web' }, ports: [{ name: '80-8080', port: 80, targetPort: 8080, protocol: 'TCP' }] });
    expect(api.requests.some((r) => r.method === 'POST' && r.url.startsWith('/apis/apps/v1/namespaces/pb/deployments'))).toBe(true);
    await kubectl('-n', 'pb', 'expose', 'deployment', 'web', '--name=web2', '--port=81', '--target-port=8080');
    expect(api.store.get('services', 'web2', 'pb').spec).toMatchObject({ selector: { app: 'web' }, ports: [{ port: 81, targetPort: 8080, protocol: 'TCP' }] });
  });
});
