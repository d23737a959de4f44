// The kubelet stand-in against the real kernel, without the rest of the sandbox: one node namespace,
// an in-process store, Debian's ptp + host-local plugins called through the CNI exec path.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeStore } from '../../sandbox/apiserver/store.js';
import type { KubeObject } from '../../sandbox/apiserver/resources.js';
import { missing } from '../support/env.js';
import { addNetns, cleanupPrefix, sh } from '../support/netns.js';
import { until } from '../support/until.js';
import { Kubelet } from '../../sandbox/kubelet/kubelet.js';
import { layout, nodeLayout, podNetns } from '../../sandbox/names.js';
import { podIPs, podReady } from '../../sandbox/endpointslices.js';

const NAME = 'skiffsbk';

describe.skipIf(missing('sandbox kubelet', { root: true, tools: ['ip', 'socat'] }))('kubelet stand-in (root)', () => {
  const dir = mkdtempSync(join(tmpdir(), `${NAME}-`));
  const l = layout({ name: NAME, nodes: 1, subnet: '172.31.233.0/24', stateDir: dir });
  const node = nodeLayout(l, 1);
  const store = new FakeStore();
  const stop = new AbortController();
  let kubelet: Kubelet;
  let running: Promise<void>;
  const conflist = JSON.stringify({ cniVersion: '1.0.0', name: 'sbk', plugins: [{ type: 'ptp', ipam: { type: 'host-local', ranges: [[{ subnet: '10.250.7.0/24' }]], dataDir: join(dir, 'ipam') } }] });

  const pod = (name: string, spec: Record<string, unknown>): KubeObject => store.create('pods', { metadata: { name, namespace: 'default' }, spec: { nodeName: node.name, ...spec } });
  const get = (name: string): KubeObject => store.get('pods', name, 'default');
  const waiting = (p: KubeObject): { reason: string; message?: string } | undefined =>
    (p.status as { containerStatuses?: { state: { waiting?: { reason: string; message?: string } } }[] } | undefined)?.containerStatuses?.[0]?.state.waiting;

  beforeAll(async () => {
    cleanupPrefix(NAME);
    await addNetns(node.name);
    mkdirSync(node.cniConfDir, { recursive: true });
    kubelet = new Kubelet({ store, sandbox: l, node, dns: { clusterDNS: ['10.96.0.10'], clusterDomain: 'cluster.local', hostResolvConf: 'nameserver 192.0.2.1\n' }, log: pino({ level: 'silent' }), tickMs: 100 });
    await kubelet.recover();
    running = kubelet.run(stop.signal);
  });

  afterAll(async () => {
    stop.abort();
    await running;
    cleanupPrefix(NAME);
    rmSync(dir, { recursive: true, force: true });
  });

  it('waits in ContainerCreating without a CNI config, then runs the pod once one appears', async () => {
    pod('web', { containers: [{ name: 'c', command: ['socat', 'TCP-LISTEN:8080,fork,reuseaddr', 'SYSTEM:echo ok'], ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { tcpSocket: { port: 'http' }, periodSeconds: 1 } }] });
    await until('ContainerCreating', () => waiting(get('web'))?.reason === 'ContainerCreating');
    expect(waiting(get('web'))!.message).toContain(`no CNI configuration file in ${node.cniConfDir}`);
    expect((get('web').status as { phase: string }).phase).toBe('Pending');
    expect(podReady(get('web'))).toBe(false);

    writeFileSync(join(node.cniConfDir, '10-sbk.conflist'), conflist);
    await until('web ready', () => podReady(get('web')));
    const p = get('web');
    const ip = podIPs(p)[0]!;
    expect(ip).toMatch(/^10\.250\.7\.\d+$/);
    expect((p.status as { phase: string; hostIP: string }).phase).toBe('Running');
    expect((p.status as { hostIP: string }).hostIP).toBe(node.ip);
    // The container really listens inside the pod namespace, reachable from the node over CNI's veth.
    const ns = podNetns(NAME, p.metadata.uid!);
    expect((await sh('ip', ['netns', 'exec', node.name, 'socat', '-T2', '-', `TCP:${ip}:8080`], '')).stdout).toBe('ok\n');
    expect((await sh('cat', [`/etc/netns/${ns}/resolv.conf`])).stdout).toBe('nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n');
  });

  it('keeps a pod whose exec probe fails unready, and reports restarts and terminal phases', async () => {
    pod('unready', { containers: [{ name: 'c', command: ['sleep', '600'], readinessProbe: { exec: { command: ['false'] }, periodSeconds: 1 } }] });
    pod('crashy', { containers: [{ name: 'c', command: ['sh', '-c', 'exit 1'] }] });
    pod('oneshot', { restartPolicy: 'Never', containers: [{ name: 'c', command: ['sh', '-c', 'exit 2'] }] });
    pod('done', { restartPolicy: 'OnFailure', containers: [{ name: 'c', command: ['true'] }] });
    const restarts = (n: string): number => (get(n).status as { containerStatuses?: { restartCount: number }[] } | undefined)?.containerStatuses?.[0]?.restartCount ?? 0;
    const phase = (n: string): string | undefined => (get(n).status as { phase?: string } | undefined)?.phase;
    await until('restart and terminal phases', () => restarts('crashy') >= 1 && phase('oneshot') === 'Failed' && phase('done') === 'Succeeded');
    expect(phase('unready')).toBe('Running');
    expect(podReady(get('unready'))).toBe(false);
    const cond = (get('unready').status as { conditions: { type: string; message?: string }[] }).conditions.find((c) => c.type === 'Ready')!;
    expect(cond.message).toBe('containers with unready status: [c]');
  });

  it('honours httpGet probes: ready on 2xx, not on 5xx', async () => {
    const server = (port: number, code: number) => ({
      name: 'c',
      command: [process.execPath, '-e', `require('http').createServer((q, s) => { s.statusCode = q.url === '/healthz' ? ${code} : 404; s.end(); }).listen(${port})`],
      ports: [{ name: 'web', containerPort: port }],
      readinessProbe: { httpGet: { path: '/healthz', port: 'web' }, periodSeconds: 1 },
    });
    pod('http-ok', { containers: [server(9000, 204)] });
    pod('http-bad', { containers: [server(9001, 503)] });
    await until('http-ok ready', () => podReady(get('http-ok')));
    // Same start, same probe cadence: by now the failing one has been probed several times.
    await new Promise((r) => setTimeout(r, 1500));
    expect(podReady(get('http-bad'))).toBe(false);
    expect((get('http-bad').status as { phase: string }).phase).toBe('Running');
  });

  it('runs hostNetwork pods in the node namespace with the node IP', async () => {
    pod('hostnet', { hostNetwork: true, containers: [{ name: 'c', command: ['socat', 'TCP-LISTEN:8081,fork,reuseaddr', 'SYSTEM:echo host'] }] });
    await until('hostnet ready', () => podReady(get('hostnet')));
    expect(podIPs(get('hostnet'))).toEqual([node.ip]);
    await until('listener', async () => (await sh('ip', ['netns', 'exec', node.name, 'sh', '-c', 'ss -ltn | grep -c :8081 || true'])).stdout.trim() === '1');
  });

  it('tears a deleted pod down: processes, CNI DEL (address released), namespace, resolv.conf, record', async () => {
    const p = get('web');
    const ns = podNetns(NAME, p.metadata.uid!);
    const ip = podIPs(p)[0]!;
    expect(readdirSync(join(dir, 'ipam', 'sbk'))).toContain(ip);
    store.delete('pods', 'web', 'default');
    const record = join(node.dir, 'pods', `${p.metadata.uid}.json`);
    await until('teardown', async () => !existsSync(record));
    expect((await sh('ip', ['netns', 'list'])).stdout).not.toContain(ns);
    expect(readdirSync(join(dir, 'ipam', 'sbk'))).not.toContain(ip);
    expect(existsSync(`/etc/netns/${ns}`)).toBe(false);
    expect((await sh('sh', ['-c', `ip netns exec ${node.name} ss -ltn | grep -c :8080 || true`])).stdout.trim()).toBe('0');
  });
});
