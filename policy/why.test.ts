// `skiff policy why` against the sandbox's API server on port 0: objects go in over HTTP, the
// command lists them through a kubeconfig, and its verdict and deciding rule come back. No root.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer, type FakeApiServer, type KubeObject } from '../sandbox/apiserver/index.js';
import { why, type WhyAnswer } from './why.js';

let api: FakeApiServer;
let dir: string;
let kubeconfig: string;

async function post(path: string, body: KubeObject): Promise<void> {
  const r = await fetch(api.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (r.status !== 201) throw new Error(`POST ${path}: ${r.status} ${await r.text()}`);
}

const pod = (ns: string, name: string, ip: string, node: string, labels: Record<string, string>, ports: { name: string; containerPort: number; protocol?: string }[] = []): KubeObject => ({
  metadata: { name, namespace: ns, labels },
  spec: { nodeName: node, containers: [{ name: 'c', image: 'agnhost', ports }] },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
});

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await why([...args, '--kubeconfig', kubeconfig], { out: (s) => (out += s), err: (s) => (err += s), env: {} });
  return { code, out, err };
}

async function json(...args: string[]): Promise<{ code: number; a: WhyAnswer; err: string }> {
  const r = await run(...args, '-o', 'json');
  return { code: r.code, a: JSON.parse(r.out) as WhyAnswer, err: r.err };
}

beforeAll(async () => {
  api = await startFakeApiServer({ bookmarkIntervalMs: 0 });
  dir = mkdtempSync(join(tmpdir(), 'skiff-why-'));
  kubeconfig = join(dir, 'kubeconfig');
  api.writeKubeconfig(kubeconfig);
  for (const ns of ['x', 'y']) await post('/api/v1/namespaces', { metadata: { name: ns, labels: { ns } } });
  const serve = [{ name: 'serve-80-tcp', containerPort: 80 }, { name: 'serve-81-udp', containerPort: 81, protocol: 'UDP' }];
  await post('/api/v1/namespaces/x/pods', pod('x', 'a', '10.244.1.10', 'node-1', { pod: 'a' }, serve));
  await post('/api/v1/namespaces/x/pods', pod('x', 'b', '10.244.2.11', 'node-2', { pod: 'b' }, serve));
  await post('/api/v1/namespaces/y/pods', pod('y', 'a', '10.244.2.12', 'node-2', { pod: 'a' }, serve));
  await post('/api/v1/namespaces/y/pods', pod('y', 'c', '10.244.1.13', 'node-1', { pod: 'c' }, serve));
  const NP = (ns: string) => `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`;
  // x/b admits x/a (pod selector) on 80 only, and 192.0.2.0/24 minus .7 (ipBlock) on any port.
  await post(NP('x'), {
    metadata: { name: 'b-ingress', namespace: 'x' },
    spec: {
      podSelector: { matchLabels: { pod: 'b' } },
      ingress: [
        { from: [{ podSelector: { matchLabels: { pod: 'a' } } }], ports: [{ port: 80 }] },
        { from: [{ ipBlock: { cidr: '192.0.2.0/24', except: ['192.0.2.7/32'] } }] },
      ],
    },
  });
  // y/a accepts only the named port serve-81-udp, from anything.
  await post(NP('y'), { metadata: { name: 'a-named', namespace: 'y' }, spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 'serve-81-udp', protocol: 'UDP' }] }] } });
  // y/c may talk DNS to kube-system only: node-local DNS answers it at the DNS Service IP.
  await post(NP('y'), {
    metadata: { name: 'c-dns', namespace: 'y' },
    spec: { podSelector: { matchLabels: { pod: 'c' } }, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } }], ports: [{ port: 53, protocol: 'UDP' }] }] },
  });
  // The Admin tier: y/a may not open TCP 443 to 192.0.2.0/24, though nothing isolates its egress.
  await post('/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies', {
    metadata: { name: 'no-tls-out' },
    spec: { tier: 'Admin', priority: 10, subject: { pods: { namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'a' } } } }, egress: [{ name: 'tls', action: 'Deny', to: [{ networks: ['192.0.2.0/24'] }], protocols: [{ tcp: { destinationPort: { number: 443 } } }] }] },
  });
  // A malformed policy the API server would never admit (stored raw): skipped with a warning, the others stay.
  api.store.putRaw('networkpolicies', { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'broken', namespace: 'y', resourceVersion: '1' }, spec: { podSelector: { matchLabels: { pod: 'c' } }, ingress: [{ from: [{ ipBlock: { cidr: 'nonsense' } }] }] } });
});

afterAll(async () => {
  await api?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('skiff policy why', () => {
  it('names the pod-selector rule that allows, on the server side', async () => {
    const { code, a } = await json('--from', 'x/a', '--to', 'x/b', '--port', '80');
    expect(code).toBe(0);
    expect(a).toMatchObject({ allowed: true, protocol: 'TCP', port: 80 });
    expect(a.egress).toMatchObject({ verdict: 'not-isolated', node: 'node-1' });
    expect(a.ingress).toMatchObject({ verdict: 'allow', policy: 'x/b-ingress', rule: 'ingress[0]', node: 'node-2' });
  });

  it('denies a port the rule does not list, naming the isolating policy, and says so in text', async () => {
    const r = await run('--from', 'x/a', '--to', 'x/b', '--port', '8080');
    expect(r.code).toBe(1);
    expect(r.out).toContain('x/a (10.244.1.10) -> x/b (10.244.2.11) TCP 8080: DENIED');
    expect(r.out).toMatch(/ingress on node-2: +deny/);
    expect(r.out).toContain('isolated by x/b-ingress; no rule allows TCP 8080 from x/a (10.244.1.10)');
    // A pod the selector does not pick is denied as well.
    const other = await json('--from', 'y/c', '--to', 'x/b', '--port', '80');
    expect(other.code).toBe(1);
    expect(other.a.ingress).toMatchObject({ verdict: 'deny', policies: ['x/b-ingress'] });
    expect(other.a.ingress.policy).toBeUndefined();
  });

  it('matches an ipBlock and its except', async () => {
    const inside = await json('--from', '192.0.2.9', '--to', 'x/b', '--protocol', 'udp', '--port', '5353');
    expect(inside.code).toBe(0);
    expect(inside.a.egress.verdict).toBe('not-applicable');
    expect(inside.a.ingress).toMatchObject({ verdict: 'allow', policy: 'x/b-ingress', rule: 'ingress[1]' });
    const excepted = await json('--from', '192.0.2.7', '--to', 'x/b', '--protocol', 'UDP', '--port', '5353');
    expect(excepted.code).toBe(1);
    expect(excepted.a.ingress.verdict).toBe('deny');
  });

  it('resolves a named port on the destination pod', async () => {
    const named = await json('--from', 'x/a', '--to', 'y/a', '--port', 'serve-81-udp');
    expect(named.code).toBe(0);
    expect(named.a).toMatchObject({ protocol: 'UDP', port: 81, portName: 'serve-81-udp' });
    expect(named.a.ingress).toMatchObject({ verdict: 'allow', policy: 'y/a-named', rule: 'ingress[0]' });
    // The same number on TCP is not what the name means.
    const tcp = await json('--from', 'x/a', '--to', 'y/a', '--port', '81');
    expect(tcp.code).toBe(1);
    // A name the pod lacks: no answer.
    const missing = await run('--from', 'x/a', '--to', 'y/a', '--port', 'serve-99-tcp');
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('y/a has no container port named "serve-99-tcp"');
  });

  it('lets an Admin tier Deny decide before NetworkPolicy', async () => {
    const denied = await json('--from', 'y/a', '--to', '192.0.2.1', '--port', '443');
    expect(denied.code).toBe(1);
    expect(denied.a.egress).toMatchObject({ verdict: 'deny', rule: 'egress[0]', node: 'node-2' });
    expect(denied.a.egress.policy).toContain('no-tls-out');
    expect(denied.a.egress.reason).toContain('Admin tier');
    expect(denied.a.ingress.verdict).toBe('not-applicable');
    // Another port, or another pod, is not its business.
    expect((await json('--from', 'y/a', '--to', '192.0.2.1', '--port', '80')).code).toBe(0);
    expect((await json('--from', 'x/a', '--to', '192.0.2.1', '--port', '443')).code).toBe(0);
  });

  it('lets DNS egress reach the node-local DNS address', async () => {
    const dns = await json('--from', 'y/c', '--to', '10.96.0.10', '--protocol', 'UDP', '--port', '53');
    expect(dns.code).toBe(0);
    expect(dns.a.egress).toMatchObject({ verdict: 'allow', policies: ['y/c-dns'] });
    expect(dns.a.egress.reason).toContain('node-local DNS');
    expect((await json('--from', 'y/c', '--to', '10.96.0.10', '--protocol', 'TCP', '--port', '53')).code).toBe(1);
    expect((await json('--from', 'y/c', '--to', '10.96.0.53', '--protocol', 'UDP', '--port', '53', '--dns-ips', '10.96.0.53')).code).toBe(0);
    expect((await json('--from', 'y/c', '--to', '10.96.0.10', '--protocol', 'UDP', '--port', '53', '--dns-ips', '')).a.egress.verdict).toBe('deny');
  });

  it('skips a malformed policy with a warning and still answers', async () => {
    const r = await json('--from', 'x/a', '--to', 'y/c', '--port', '80');
    expect(r.code).toBe(0);
    expect(r.a.ingress.verdict).toBe('not-isolated');
    expect(r.err).toMatch(/warning: skipping NetworkPolicy y\/broken: .*cidr/);
  });

  it('reports usage errors with exit code 2', async () => {
    for (const args of [['--to', 'x/b', '--port', '80'], ['--from', 'x/a', '--to', 'x/b'], ['--from', 'x/a', '--to', 'x/b', '--port', '70000'], ['--from', 'x/a', '--to', 'x/b', '--port', '80', '--protocol', 'ICMP'], ['--from', 'nope', '--to', 'x/b', '--port', '80'], ['--from', 'x/a', '--to', '10.0.0.1', '--port', 'http'], ['--from', 'x/a', '--to', 'x/b', '--port', '80', '--dns-ips', 'dns'], ['--bogus']]) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err, args.join(' ')).toMatch(/^skiff policy why: /);
      expect(r.out).toBe('');
    }
    const unknown = await run('--from', 'x/zz', '--to', 'x/b', '--port', '80');
    expect(unknown).toMatchObject({ code: 2, err: expect.stringContaining('pod x/zz not found') });
  });

  it('gives no answer (exit 2) without a usable kubeconfig or API server', async () => {
    const args = ['--from', 'x/a', '--to', 'x/b', '--port', '80'];
    let err = '';
    const io = { out: () => undefined, err: (t: string) => (err += t), env: {} };
    expect(await why([...args, '--kubeconfig', join(dir, 'missing')], io)).toBe(2);
    expect(err).toMatch(/^skiff policy why: cannot load .*missing/);
    const gone = await startFakeApiServer({ bookmarkIntervalMs: 0 });
    const kc = join(dir, 'gone');
    gone.writeKubeconfig(kc);
    await gone.close();
    err = '';
    expect(await why([...args, '--kubeconfig', kc], io)).toBe(2);
    expect(err).toMatch(/^skiff policy why: cannot list from the API server: .*ECONNREFUSED/);
  });

  it('runs as `skiff policy why` with KUBECONFIG from the environment', async () => {
    // Asynchronously: the API server answers from this very process.
    const bin = fileURLToPath(new URL('../bin/skiff.ts', import.meta.url));
    const p = spawn(process.execPath, ['--import', 'tsx', bin, 'policy', 'why', '--from', 'x/a', '--to', 'x/b', '--port', '8080'], { env: { ...process.env, KUBECONFIG: kubeconfig } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => p.on('close', resolve));
    expect(err).toMatch(/^skiff policy why: warning: skipping NetworkPolicy y\/broken: [^\n]*\n$/);
    expect(code).toBe(1);
    expect(out).toContain('DENIED');
  }, 60_000);
});
