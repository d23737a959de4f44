import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cniAdd, cniDel, loadNetConfList, resultIPs, type PluginExec } from '../../sandbox/cni-exec.js';
import { podStatus, podPhase, type PodView } from '../../sandbox/kubelet/pod-status.js';
import { getTable, podStatusText } from '../../sandbox/output.js';

const dir = mkdtempSync(join(tmpdir(), 'skiffsbu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('CNI invocation (libcni order and stdin)', () => {
  const conf = join(dir, 'net.d');
  const bin = join(dir, 'bin');
  mkdirSync(conf);
  mkdirSync(bin);
  for (const p of ['first', 'second']) writeFileSync(join(bin, p), '');

  it('picks the first valid config by name and treats a .conf as a list of one', async () => {
    expect(await loadNetConfList(conf)).toBeUndefined();
    writeFileSync(join(conf, '20-b.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'b', plugins: [{ type: 'first' }] }));
    writeFileSync(join(conf, '10-broken.conflist'), '{not json');
    writeFileSync(join(conf, '15-single.conf'), JSON.stringify({ cniVersion: '0.4.0', name: 'single', type: 'first' }));
    const l = await loadNetConfList(conf);
    expect(l).toMatchObject({ name: 'single', cniVersion: '0.4.0', plugins: [{ type: 'first' }] });
  });

  it('runs ADD in order with prevResult and DEL in reverse, with the runtime environment', async () => {
    const calls: { bin: string; env: Record<string, string>; stdin: Record<string, unknown> }[] = [];
    const exec: PluginExec = async (binary, env, stdin) => {
      calls.push({ bin: binary, env, stdin: JSON.parse(stdin) as Record<string, unknown> });
      const name = binary.split('/').pop();
      return { code: 0, stdout: env.CNI_COMMAND === 'ADD' ? JSON.stringify({ cniVersion: '1.0.0', ips: [{ address: name === 'first' ? '10.0.0.5/24' : '10.0.0.6/24' }] }) : '', stderr: '' };
    };
    const list = { file: 'x', name: 'net', cniVersion: '1.0.0', plugins: [{ type: 'first', a: 1 }, { type: 'second' }] };
    const call = { containerId: 'cid', netnsPath: '/var/run/netns/p', ifName: 'eth0', podNamespace: 'ns', podName: 'pod', binDirs: [join(dir, 'nothere'), bin], exec };
    const result = await cniAdd(list, call);
    expect(resultIPs(result)).toEqual(['10.0.0.6']);
    expect(calls.map((c) => c.bin)).toEqual([join(bin, 'first'), join(bin, 'second')]);
    expect(calls[0]!.stdin).toEqual({ type: 'first', a: 1, name: 'net', cniVersion: '1.0.0' });
    expect(calls[1]!.stdin.prevResult).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.5/24' }] });
    expect(calls[0]!.env).toMatchObject({
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'cid',
      CNI_NETNS: '/var/run/netns/p',
      CNI_IFNAME: 'eth0',
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;K8S_POD_INFRA_CONTAINER_ID=cid',
      CNI_PATH: `${join(dir, 'nothere')}:${bin}`,
    });
    calls.length = 0;
    await cniDel(list, call, result);
    expect(calls.map((c) => `${c.env.CNI_COMMAND} ${c.bin.split('/').pop()}`)).toEqual(['DEL second', 'DEL first']);
    expect(calls[0]!.stdin.prevResult).toEqual(result);
  });

  it('reports a plugin error object and a missing plugin', async () => {
    const failing: PluginExec = async () => ({ code: 1, stdout: JSON.stringify({ code: 11, msg: 'no addresses', details: 'range full' }), stderr: '' });
    const call = { containerId: 'c', netnsPath: '/x', ifName: 'eth0', podNamespace: 'n', podName: 'p', binDirs: [bin], exec: failing };
    await expect(cniAdd({ file: 'x', name: 'n', cniVersion: '1.0.0', plugins: [{ type: 'first' }] }, call)).rejects.toThrow('plugin type="first" failed (add): no addresses: range full');
    await expect(cniAdd({ file: 'x', name: 'n', cniVersion: '1.0.0', plugins: [{ type: 'absent' }] }, call)).rejects.toThrow(/failed to find plugin "absent"/);
  });
});

describe('pod status', () => {
  const base: PodView = { networkReady: true, hostIP: '172.31.213.11', podIPs: ['10.244.0.5'], startTime: 'T0', containers: [], restartPolicy: 'Always', transitions: {} };
  const running = { kind: 'running' as const, startedAt: 'T1' };
  const exited = (exitCode: number) => ({ kind: 'terminated' as const, exitCode, reason: exitCode ? 'Error' : 'Completed', startedAt: 'T1', finishedAt: 'T2' });
  it('derives the phase from container states and the restart policy', () => {
    expect(podPhase({ ...base, networkReady: false, containers: [{ name: 'c', state: { kind: 'waiting', reason: 'ContainerCreating' }, restartCount: 0, ready: false }] })).toBe('Pending');
    expect(podPhase({ ...base, containers: [{ name: 'c', state: running, restartCount: 0, ready: true }] })).toBe('Running');
    expect(podPhase({ ...base, restartPolicy: 'Never', containers: [{ name: 'c', state: exited(0), restartCount: 0, ready: false }, { name: 'd', state: exited(1), restartCount: 0, ready: false }] })).toBe('Failed');
    expect(podPhase({ ...base, restartPolicy: 'OnFailure', containers: [{ name: 'c', state: exited(0), restartCount: 0, ready: false }] })).toBe('Succeeded');
    expect(podPhase({ ...base, restartPolicy: 'OnFailure', containers: [{ name: 'c', state: exited(1), restartCount: 2, ready: false }] })).toBe('Running');
  });
  it('reports Ready only when every container is ready, naming the ones that are not', () => {
    const st = podStatus({ ...base, containers: [{ name: 'a', state: running, restartCount: 0, ready: true }, { name: 'b', state: running, restartCount: 1, ready: false }], transitions: { 'Ready=false': 'T5' } });
    const ready = (st.conditions as { type: string; status: string; message?: string; lastTransitionTime: string }[]).find((c) => c.type === 'Ready')!;
    expect(ready).toMatchObject({ status: 'False', message: 'containers with unready status: [b]', lastTransitionTime: 'T5' });
    expect(st).toMatchObject({ phase: 'Running', podIP: '10.244.0.5', podIPs: [{ ip: '10.244.0.5' }], hostIP: '172.31.213.11' });
    const pod = { metadata: { name: 'p', namespace: 'default', creationTimestamp: new Date(Date.now() - 90_000).toISOString() }, spec: { nodeName: 'n1', containers: [{}, {}] }, status: st };
    expect(getTable('pods', [pod], true, false)).toMatch(/^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\np\s+1\/2\s+Running\s+1\s+9\ds\s+10\.244\.0\.5\s+n1\n$/);
  });
  it('shows the waiting reason as the STATUS column', () => {
    const st = podStatus({ ...base, networkReady: false, podIPs: [], networkMessage: 'no CNI', containers: [{ name: 'c', state: { kind: 'waiting', reason: 'ContainerCreating', message: 'no CNI' }, restartCount: 0, ready: false }] });
    expect(podStatusText({ metadata: {}, spec: { nodeName: 'n' }, status: st })).toBe('ContainerCreating');
    expect(st.podIP).toBeUndefined();
  });
});
