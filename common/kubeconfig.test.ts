// The agent's kubeconfig loader: the fields it supports become request options, relative paths
// are relative to the file, a token file is re-read on every request, and credentials it cannot
// use (exec plugins) are a clear error rather than anonymous requests.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { KubeConfigLite } from './kubeconfig.js';

const dir = mkdtempSync(join(tmpdir(), 'skiff-kubeconfig-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

const doc = (cluster: string, user: string): string => `apiVersion: v1
kind: Config
current-context: c
contexts:
- name: other
  context: { cluster: nope, user: nope }
- name: c
  context: { cluster: k, user: u }
clusters:
- name: k
  cluster:
${cluster}
users:
- name: u
  user:
${user}
`;

describe('KubeConfigLite', () => {
  it('applies the CA, client certificate and token of the current context', async () => {
    write('ca.crt', 'CA-PEM');
    const kc = KubeConfigLite.fromFile(write('a.yaml', doc('    server: https://10.0.0.1:6443\n    certificate-authority: ca.crt\n    tls-server-name: api.internal', `    client-certificate-data: ${Buffer.from('CERT').toString('base64')}\n    client-key-data: ${Buffer.from('KEY').toString('base64')}\n    token: abc`)));
    expect(kc.getCurrentCluster().server).toBe('https://10.0.0.1:6443');
    const o: RequestOptions = {};
    await kc.applyToHTTPSOptions(o);
    expect(String(o.ca)).toBe('CA-PEM');
    expect(String(o.cert)).toBe('CERT');
    expect(String(o.key)).toBe('KEY');
    expect(o.rejectUnauthorized).toBe(true);
    expect(o.servername).toBe('api.internal');
    expect((o.headers as Record<string, string>).Authorization).toBe('Bearer abc');
  });

  it('re-reads a token file on every request and honours insecure-skip-tls-verify', async () => {
    const token = write('token', 'one\n');
    const kc = KubeConfigLite.fromFile(write('b.yaml', doc('    server: https://10.0.0.1:6443\n    insecure-skip-tls-verify: true', `    tokenFile: ${token}`)));
    const o: RequestOptions = {};
    await kc.applyToHTTPSOptions(o);
    expect((o.headers as Record<string, string>).Authorization).toBe('Bearer one');
    expect(o.rejectUnauthorized).toBe(false);
    writeFileSync(token, 'two');
    const o2: RequestOptions = {};
    await kc.applyToHTTPSOptions(o2);
    expect((o2.headers as Record<string, string>).Authorization).toBe('Bearer two');
  });

  it('points at another server address for --api-server', () => {
    const kc = KubeConfigLite.fromFile(write('c.yaml', doc('    server: https://10.96.0.1:443', '    token: t')));
    kc.setServer('https://192.0.2.10:6443');
    expect(kc.getCurrentCluster().server).toBe('https://192.0.2.10:6443');
  });

  it('refuses exec credentials and a context without a server, naming the file', () => {
    expect(() => KubeConfigLite.fromFile(write('d.yaml', doc('    server: https://x', '    exec: { command: aws }')))).toThrow(/exec and auth-provider/);
    expect(() => KubeConfigLite.fromFile(write('e.yaml', doc('    insecure-skip-tls-verify: true', '    token: t')))).toThrow(ConfigError);
    expect(() => KubeConfigLite.fromFile(join(dir, 'missing.yaml'))).toThrow(/cannot read/);
  });

  it('in a pod without the service environment says so', () => {
    expect(() => KubeConfigLite.inCluster({})).toThrow(/not in a cluster/);
  });
});
