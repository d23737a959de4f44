// The sandbox driven only through kubectl (1.32, the real client), as a user would after
// `skiff sandbox up`: apply a Deployment and a Service from YAML, rollout status, get -o wide,
// logs, exec, describe, scale and delete; then the end-to-end suite (test/e2e/run.sh) against a
// sandbox it brings up and takes down itself. Root: the sandbox makes network namespaces.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../common/self.js';
import { podNetns } from '../../sandbox/names.js';
import { sandboxCli } from '../sandbox/cli.js';
import { missing } from '../support/env.js';
import { sh } from '../support/netns.js';
import { until } from '../support/until.js';
import { lockSandbox } from '../support/lock.js';

const NAME = 'skiffk';
const SUBNET = '172.31.236.0/24';
const STATE = `/tmp/${NAME}-state`;
const env = { ...process.env, SKIFF_SANDBOX_DIR: STATE, SKIFF_SANDBOX_NAME: NAME };
const cli = sandboxCli(env);
const KUBECONFIG = join(STATE, 'kubeconfig');

function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: opts.env ?? { ...process.env, KUBECONFIG }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    p.stdin.on('error', () => undefined);
    p.stdin.end(opts.input ?? '');
  });
}
const kubectl = (args: string[], input?: string) => run('kubectl', args, { input });

async function leftovers(prefix: string): Promise<string[]> {
  const found: string[] = [];
  for (const ns of (await sh('ip', ['netns', 'list'])).stdout.split('\n')) if (ns.startsWith(`${prefix}-`)) found.push(`netns ${ns}`);
  for (const l of JSON.parse((await sh('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[]) if (l.ifname.startsWith(`${prefix}-`)) found.push(`link ${l.ifname}`);
  for (const d of readdirSync('/etc/netns', { withFileTypes: true }).map((e) => e.name)) if (d.startsWith(`${prefix}-`)) found.push(`/etc/netns/${d}`);
  return found;
}

const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata:
  name: kt
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: kt
spec:
  replicas: 3
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/e2e-test-images/agnhost:2.52
        args: [netexec, --http-port=8080, --udp-port=-1]
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: kt
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
`;

const needs = missing('kubectl against the sandbox', { root: true, tools: ['kubectl', 'ip', 'nft', 'curl', 'dig', 'flock', 'script'] });

describe.skipIf(needs)('kubectl against the sandbox (root)', () => {
  let held: ChildProcess | undefined;

  beforeAll(async () => {
    held = await lockSandbox(NAME);
    await cli(['down']);
    const r = await cli(['up', '--nodes', '2', '--subnet', SUBNET, '--wait', '--timeout', '90']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    // The one line a user pastes to point kubectl at the sandbox.
    expect(r.stdout).toContain(`export KUBECONFIG=${KUBECONFIG}\n`);
  }, 180_000);

  afterAll(async () => {
    await kubectl(['delete', 'namespace', 'kt', '--wait=false']);
    await cli(['down']);
    held?.stdin?.end();
    expect(await leftovers(NAME)).toEqual([]);
  }, 90_000);

  it('applies a Deployment and a Service from YAML and rolls the Deployment out', async () => {
    const a = await kubectl(['apply', '-f', '-'], MANIFEST);
    expect(a.stderr).toBe('');
    expect(a.stdout).toBe('namespace/kt created\ndeployment.apps/web created\nservice/web created\n');
    const r = await kubectl(['-n', 'kt', 'rollout', 'status', 'deployment/web', '--timeout=90s']);
    expect(r.stdout, r.stderr).toContain('deployment "web" successfully rolled out');
    expect(r.code).toBe(0);
  }, 120_000);

  it('lists the pods with IP and NODE columns, spread over both nodes', async () => {
    const r = await kubectl(['-n', 'kt', 'get', 'pods', '-o', 'wide']);
    const [head, ...rows] = r.stdout.trim().split('\n');
    expect(head!.split(/\s+/)).toEqual(expect.arrayContaining(['NAME', 'READY', 'STATUS', 'IP', 'NODE']));
    const col = (row: string, name: string): string => row.split(/\s+/)[head!.split(/\s+/).indexOf(name)]!;
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(col(row, 'READY')).toBe('1/1');
      expect(col(row, 'STATUS')).toBe('Running');
      expect(col(row, 'IP')).toMatch(/^10\.244\.\d+\.\d+$/);
      expect(col(row, 'NODE')).toMatch(new RegExp(`^${NAME}-node-[12]$`));
    }
    expect(new Set(rows.map((row) => col(row, 'NODE'))).size).toBe(2);
  });

  it('shows a container output with logs, and runs commands in the pod with exec', async () => {
    const pod = (await kubectl(['-n', 'kt', 'get', 'pods', '-o', 'jsonpath={.items[0].metadata.name}'])).stdout;
    const logs = await kubectl(['-n', 'kt', 'logs', pod, '--tail=5']);
    expect(logs.stdout).toContain('Started HTTP server on port 8080');
    const resolv = await kubectl(['-n', 'kt', 'exec', pod, '--', 'cat', '/etc/resolv.conf']);
    expect(resolv.code, resolv.stderr).toBe(0);
    expect(resolv.stdout).toContain('nameserver 10.96.0.10\n');
    expect(resolv.stdout).toContain('search kt.svc.cluster.local svc.cluster.local cluster.local\n');
    // The exit code comes back through the error channel; stderr stays apart from stdout.
    const fail = await kubectl(['-n', 'kt', 'exec', pod, '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    expect(fail).toMatchObject({ code: 7, stdout: 'out\n' });
    expect(fail.stderr).toContain('err\n');
    const stdin = await kubectl(['-n', 'kt', 'exec', '-i', pod, '--', 'wc', '-c'], 'twelve bytes');
    expect(stdin.stdout.trim()).toBe('12');
    // Through the Service, from inside the pod: the answer is one of the Deployment's pods.
    const names = (await kubectl(['-n', 'kt', 'get', 'pods', '-o', 'jsonpath={.items[*].metadata.name}'])).stdout.split(' ');
    let got = '';
    for (let i = 0; i < 20 && !names.includes(got); i++) {
      got = (await kubectl(['-n', 'kt', 'exec', pod, '--', 'curl', '-s', '--max-time', '2', 'http://web.kt.svc.cluster.local/hostname'])).stdout;
    }
    expect(names).toContain(got);
    // -t: a terminal in the pod (kubectl itself needs one, so it runs under script(1)).
    const tty = await run('script', ['-qec', `kubectl -n kt exec -it ${pod} -- sh -c 'tty; exit 3'`, '/dev/null']);
    expect(tty.stdout).toMatch(/\/dev\/pts\/\d+/);
    expect(tty.code).toBe(3);
  }, 90_000);

  it('follows a log as it grows, and the follow ends when the pod goes', async () => {
    const ticker = 'apiVersion: v1\nkind: Pod\nmetadata: {name: ticker, namespace: kt}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: t\n    image: busybox\n    command: [sh, -c, "i=0; while true; echo tick $i; do i=$((i+1)); sleep 0.2; done"]\n';
    expect((await kubectl(['apply', '-f', '-'], ticker)).code).toBe(0);
    await until('the ticker pod running', async () => (await kubectl(['-n', 'kt', 'get', 'pod', 'ticker', '-o', 'jsonpath={.status.phase}'])).stdout === 'Running', 60_000, { everyMs: 500 });
    const follow = run('kubectl', ['-n', 'kt', 'logs', '-f', 'ticker', '--tail=1']);
    await new Promise((r) => setTimeout(r, 2000));
    expect((await kubectl(['-n', 'kt', 'delete', 'pod', 'ticker'])).code).toBe(0);
    const f = await follow;
    const ticks = f.stdout.trim().split('\n').map((l) => Number(/^tick (\d+)$/.exec(l)?.[1]));
    expect(ticks.length).toBeGreaterThan(4);
    expect(ticks).toEqual(ticks.map((_, i) => ticks[0]! + i)); // in order, none lost
    expect(f.code).toBe(0);
  }, 90_000);

  it('describes a pod with the events of its scheduling and start', async () => {
    const pod = (await kubectl(['-n', 'kt', 'get', 'pods', '-o', 'jsonpath={.items[0].metadata.name}'])).stdout;
    const d = (await kubectl(['-n', 'kt', 'describe', 'pod', pod])).stdout;
    expect(d).toMatch(/Normal\s+Scheduled\s+.*default-scheduler\s+Successfully assigned kt\/\S+ to skiffk-node-\d/);
    expect(d).toMatch(/Normal\s+Started\s+.*kubelet\s+Started container web/);
  });

  it('rolls a new template out, scales, and deletes the Deployment with its ReplicaSets and pods', async () => {
    expect((await kubectl(['-n', 'kt', 'set', 'env', 'deployment/web', 'V=2'])).code).toBe(0);
    const r = await kubectl(['-n', 'kt', 'rollout', 'status', 'deployment/web', '--timeout=120s']);
    expect(r.code, r.stderr).toBe(0);
    const rs = (await kubectl(['-n', 'kt', 'get', 'rs', '-o', 'jsonpath={range .items[*]}{.spec.replicas}{" "}{end}'])).stdout.trim().split(' ').sort();
    expect(rs).toEqual(['0', '3']);
    // Back to the first template: its ReplicaSet is scaled up again and becomes revision 3.
    expect((await kubectl(['-n', 'kt', 'rollout', 'undo', 'deployment/web'])).code).toBe(0);
    expect((await kubectl(['-n', 'kt', 'rollout', 'status', 'deployment/web', '--timeout=120s'])).code).toBe(0);
    const history = (await kubectl(['-n', 'kt', 'rollout', 'history', 'deployment/web'])).stdout;
    expect(history.trim().split('\n').slice(2).map((l) => l.trim().split(/\s+/)[0])).toEqual(['2', '3']);
    const env = (await kubectl(['-n', 'kt', 'get', 'deployment', 'web', '-o', 'jsonpath={.spec.template.spec.containers[0].env}'])).stdout;
    expect(env).toBe('');
    expect((await kubectl(['-n', 'kt', 'scale', 'deployment/web', '--replicas=1'])).code).toBe(0);
    await until('one pod left', async () => (await kubectl(['-n', 'kt', 'get', 'pods', '-o', 'name'])).stdout.trim().split('\n').length === 1, 60_000, { everyMs: 500 });
    const del = await kubectl(['-n', 'kt', 'delete', 'deployment', 'web', 'service', 'web']);
    expect(del.stdout).toContain('deployment.apps "web" deleted');
    await until('the ReplicaSets and pods gone', async () => (await kubectl(['-n', 'kt', 'get', 'rs,pods', '-o', 'name'])).stdout.trim() === '', 60_000, { everyMs: 500 });
  }, 180_000);

  it('deletes a namespace with its workloads: kubectl waits until the kubelets stopped the pods and tore their network down', async () => {
    const manifest = 'apiVersion: v1\nkind: Namespace\nmetadata: {name: kd}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: idle, namespace: kd}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: idle}}\n  template:\n    metadata: {labels: {app: idle}}\n    spec:\n      containers:\n      - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.52, args: [pause]}\n';
    expect((await kubectl(['apply', '-f', '-'], manifest)).code).toBe(0);
    expect((await kubectl(['-n', 'kd', 'rollout', 'status', 'deployment/idle', '--timeout=90s'])).code).toBe(0);
    const uids = (await kubectl(['-n', 'kd', 'get', 'pods', '-o', 'jsonpath={.items[*].metadata.uid}'])).stdout.split(' ');
    expect(uids).toHaveLength(2);
    const podNs = uids.map((uid) => podNetns(NAME, uid));
    const netns = async (): Promise<string[]> => (await sh('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!);
    expect(await netns()).toEqual(expect.arrayContaining(podNs));
    const del = await run('kubectl', ['delete', 'namespace', 'kd', '--timeout=90s'], { timeoutMs: 100_000 });
    expect(del, del.stderr).toMatchObject({ code: 0, stdout: 'namespace "kd" deleted\n' });
    // Returned only once the namespace is gone, which needs every pod gone, which the kubelet
    // confirms only after its containers stopped and CNI DEL ran (then the netns goes).
    expect((await kubectl(['get', 'namespace', 'kd'])).stderr).toContain('namespaces "kd" not found');
    const left = await netns();
    for (const ns of podNs) expect(left).not.toContain(ns);
    const refused = await kubectl(['create', 'deployment', 'x', '--image=x', '-n', 'kd']);
    expect(refused.stderr).toContain('namespaces "kd" not found');
  }, 150_000);
});

describe.skipIf(needs)('npm run e2e -- --target sandbox (root)', () => {
  it('brings a sandbox up, passes every check and takes it down', async () => {
    const held = await lockSandbox('skiffq');
    try {
      const r = await run('bash', [join(projectRoot, 'test/e2e/run.sh'), '--target', 'sandbox'], {
        env: { ...process.env, SANDBOX_NAME: 'skiffq', SANDBOX_SUBNET: '172.31.237.0/24', SKIFF_SANDBOX_DIR: '/tmp/skiffq-e2e' },
        timeoutMs: 420_000,
      });
      const summary = r.stdout.slice(r.stdout.indexOf('skiff e2e summary'));
      expect(summary).toMatch(/10 passed, 0 failed, 2 skipped/);
      expect(r.code, r.stderr.slice(-3000)).toBe(0);
      expect(await leftovers('skiffq')).toEqual([]);
    } finally {
      held.stdin?.end();
    }
  }, 450_000);
});
