// The sandbox end to end, as root, against the real kernel: `up` with 3 nodes, apply Services and
// Pods, check what the controllers, the allocator and the kubelet stand-ins made, delete, `down`,
// and check that nothing named after the sandbox is left. Pods get their network from Debian's
// reference bridge + host-local plugins through the same CNI calls containerd makes, so this suite
// does not depend on skiff's own CNI plugin.
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxCli } from './cli.js';
import { missing } from '../support/env.js';
import { sh } from '../support/netns.js';
import { until } from '../support/until.js';
import type { KubeObject } from '../../sandbox/apiserver/resources.js';
import { SandboxClient } from '../../sandbox/client.js';
import { nodeLayouts, layout, podNetns } from '../../sandbox/names.js';
import { podIPs, podReady } from '../../sandbox/endpointslices.js';
import { cidrContains, parseCidr } from '../../sandbox/ipam.js';
import { lockSandbox } from '../support/lock.js';

const NAME = 'skiffsbt';
const SUBNET = '172.31.231.0/24';
const STATE = `/tmp/${NAME}-state`;
const env = { ...process.env, SKIFF_SANDBOX_DIR: STATE, SKIFF_SANDBOX_NAME: NAME };
const L = layout({ name: NAME, nodes: 3, subnet: SUBNET, stateDir: STATE });

const cli = sandboxCli(env);

// ptp gives each pod a /32 host route, so it works beside whatever skiff's agent sets up on the node.
const CONFLIST = (podCIDR: string, ipamDir: string): string =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'sbtest', plugins: [{ type: 'ptp', ipam: { type: 'host-local', ranges: [[{ subnet: podCIDR }]], dataDir: ipamDir } }] });

const server = (port: string) => ({
  name: 'c',
  command: ['sh', '-c', `exec socat TCP-LISTEN:${port},fork,reuseaddr SYSTEM:"echo ok"`],
  ports: [{ name: 'http', containerPort: Number(port) }],
  readinessProbe: { tcpSocket: { port: 'http' }, periodSeconds: 2 },
});

const MANIFEST = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'sbt' } },
  ...[0, 1, 2].map((i) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `web-${i}`, namespace: 'sbt', labels: { app: 'web' } }, spec: { containers: [server('8080')] } })),
  { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'sleeper', namespace: 'sbt', labels: { app: 'sleep' } }, spec: { containers: [{ name: 's', command: ['sleep', '3600'] }] } },
  { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'unready', namespace: 'sbt', labels: { app: 'web' } }, spec: { containers: [{ ...server('8080'), readinessProbe: { exec: { command: ['false'] }, periodSeconds: 1 } }] } },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'sbt' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'np', namespace: 'sbt' }, spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080, nodePort: 30080 }] } },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'manual', namespace: 'sbt' }, spec: { ports: [{ port: 5432 }] } },
  { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'manual-1', namespace: 'sbt', labels: { 'kubernetes.io/service-name': 'manual' } }, addressType: 'IPv4', endpoints: [{ addresses: ['192.0.2.7'] }], ports: [{ port: 5432 }] },
]
  .map((o) => JSON.stringify(o))
  .join('\n---\n');

async function leftovers(): Promise<string[]> {
  const found: string[] = [];
  for (const ns of (await sh('ip', ['netns', 'list'])).stdout.split('\n')) if (ns.startsWith(NAME)) found.push(`netns ${ns}`);
  for (const l of JSON.parse((await sh('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[]) if (l.ifname.startsWith(NAME)) found.push(`link ${l.ifname}`);
  for (const t of (await sh('nft', ['list', 'tables'])).stdout.split('\n')) if (t.includes(NAME)) found.push(`nft ${t}`);
  if (existsSync('/etc/netns')) for (const d of readdirSync('/etc/netns')) if (d.startsWith(NAME)) found.push(`/etc/netns/${d}`);
  if (existsSync(STATE)) found.push(STATE);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = (await import('node:fs')).readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(STATE)) found.push(`process ${pid}`);
    } catch {
      /* exited */
    }
  }
  return found;
}

describe.skipIf(missing('sandbox', { root: true, tools: ['ip', 'nft', 'socat', 'curl', 'flock'] }))('skiff sandbox (3 nodes, root)', () => {
  let client: SandboxClient;
  const pods = new Map<string, KubeObject>();

  let lock: ChildProcess | undefined;

  beforeAll(async () => {
    lock = await lockSandbox(NAME);
    await cli(['down']); // a crashed earlier run
    const t0 = Date.now();
    const r = await cli(['up', '--nodes', '3', '--subnet', SUBNET, '--timeout', '60', '--agent-timeout', '10']);
    console.log(`sandbox up --nodes 3: exit ${r.code} after ${Date.now() - t0} ms\n${r.stdout}`);
    expect(r.code, r.stderr).toBe(0);
    client = SandboxClient.load(L.kubeconfig);
  }, 240_000);

  afterAll(async () => {
    await cli(['down']);
    lock?.stdin?.end();
  }, 60_000);

  it('registers 3 ready nodes with distinct pod CIDRs, underlay addresses and alternating zones', async () => {
    const nodes = (await client.list('nodes')).items;
    expect(nodes.map((n) => n.metadata.name)).toEqual(nodeLayouts(L).map((n) => n.name));
    const cidrs = nodes.map((n) => (n.spec as { podCIDRs: string[] }).podCIDRs[0]!);
    expect(new Set(cidrs).size).toBe(3);
    for (const c of cidrs) expect(c).toMatch(/^10\.244\.\d+\.0\/24$/);
    expect(nodes.map((n) => (n.status as { addresses: { type: string; address: string }[] }).addresses.find((a) => a.type === 'InternalIP')!.address)).toEqual(['172.31.231.11', '172.31.231.12', '172.31.231.13']);
    expect(nodes.map((n) => n.metadata.labels?.['topology.kubernetes.io/zone'])).toEqual(['zone-a', 'zone-b', 'zone-a']);
    // Nodes reach the API server on the host over the underlay, and "the internet" in the outside
    // namespace, which echoes the source address it sees.
    expect((await sh('ip', ['netns', 'exec', `${NAME}-node-3`, 'curl', '-s', '--max-time', '3', `${L.apiServer}/healthz`])).stdout).toBe('ok');
    expect((await sh('ip', ['netns', 'exec', `${NAME}-node-2`, 'curl', '-s', '--max-time', '3', 'http://198.51.100.1/'])).stdout.trim()).toBe('172.31.231.12');
    // up is idempotent: a second run finds everything in place and changes nothing.
    const again = await cli(['up', '--nodes', '3', '--subnet', SUBNET, '--timeout', '60', '--agent-timeout', '5']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('supervisor already running');
    expect((await client.list('nodes')).items.map((n) => (n.spec as { podCIDRs: string[] }).podCIDRs[0])).toEqual(cidrs);
    const svcs = (await client.list('services')).items.map((s) => `${s.metadata.namespace}/${s.metadata.name}=${(s.spec as { clusterIP: string }).clusterIP}`);
    expect(svcs).toEqual(expect.arrayContaining(['default/kubernetes=10.96.0.1', 'kube-system/kube-dns=10.96.0.10']));
  });

  it('applies Services and Pods; pods get IPs from their node, resolv.conf and readiness', async () => {
    const nodes = (await client.list('nodes')).items;
    for (const n of nodeLayouts(L)) {
      const node = nodes.find((x) => x.metadata.name === n.name)!;
      writeFileSync(`${n.cniConfDir}/05-sbtest.conflist`, CONFLIST((node.spec as { podCIDR: string }).podCIDR, `${n.dir}/cni-ipam`));
    }
    const r = await cli(['apply', '-f', '-'], MANIFEST);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('service/web created');
    const all = await until('web pods ready', async () => {
      const items = (await client.list('pods', 'sbt')).items;
      const web = items.filter((p) => p.metadata.name!.startsWith('web-'));
      return web.length === 3 && web.every(podReady) && items.every((p) => podIPs(p).length) ? items : undefined;
    }, 60_000);
    for (const p of all) pods.set(p.metadata.name!, p);
    const nodeCidr = new Map(nodes.map((n) => [n.metadata.name!, (n.spec as { podCIDR: string }).podCIDR]));
    for (const p of all) {
      const node = (p.spec as { nodeName: string }).nodeName;
      expect(cidrContains(parseCidr(nodeCidr.get(node)!), podIPs(p)[0]!), `${p.metadata.name} on ${node}`).toBe(true);
    }
    // Spread: 5 pods over 3 nodes, nobody gets more than 2.
    const per = new Map<string, number>();
    for (const p of all) per.set((p.spec as { nodeName: string }).nodeName, (per.get((p.spec as { nodeName: string }).nodeName) ?? 0) + 1);
    expect(Math.max(...per.values())).toBeLessThanOrEqual(2);
    expect(podReady(pods.get('unready')!)).toBe(false);
    expect(podReady(pods.get('sleeper')!)).toBe(true);

    const resolv = await cli(['exec', '-n', 'sbt', 'web-0', '--', 'cat', '/etc/resolv.conf']);
    const lines = resolv.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('nameserver 10.96.0.10');
    // The node's own search domains follow the cluster ones, as kubelet appends them.
    expect(lines[1]).toMatch(/^search sbt\.svc\.cluster\.local svc\.cluster\.local cluster\.local( |$)/);
    expect(lines.at(-1)).toBe('options ndots:5');
    const ip = await cli(['exec', '-n', 'sbt', 'web-1', '--', 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
    expect(ip.stdout).toContain(podIPs(pods.get('web-1')!)[0]);
    const code = await cli(['exec', '-n', 'sbt', 'sleeper', '--', 'sh', '-c', 'exit 3']);
    expect(code.code).toBe(3);
  }, 90_000);

  it('maintains EndpointSlices like kube-controller-manager and leaves selector-less Services alone', async () => {
    const nodes = new Map((await client.list('nodes')).items.map((n) => [n.metadata.name!, n.metadata.labels!['topology.kubernetes.io/zone']]));
    const slices = (await client.list('endpointslices', 'sbt')).items;
    const web = slices.filter((s) => s.metadata.labels?.['kubernetes.io/service-name'] === 'web');
    expect(web).toHaveLength(1);
    const s = web[0]!;
    expect(s.metadata.labels?.['endpointslice.kubernetes.io/managed-by']).toBe('endpointslice-controller.k8s.io');
    expect(Date.parse(s.metadata.annotations!['endpoints.kubernetes.io/last-change-trigger-time']!)).toBeGreaterThan(0);
    expect(s.ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
    const eps = s.endpoints as { addresses: string[]; conditions: { ready: boolean }; nodeName: string; zone: string; targetRef: { name: string } }[];
    expect(eps.map((e) => `${e.targetRef.name}:${e.conditions.ready}`).sort()).toEqual(['unready:false', 'web-0:true', 'web-1:true', 'web-2:true']);
    for (const e of eps) {
      expect(e.addresses).toEqual(podIPs(pods.get(e.targetRef.name)!));
      expect(e.nodeName).toBe((pods.get(e.targetRef.name)!.spec as { nodeName: string }).nodeName);
      expect(e.zone).toBe(nodes.get(e.nodeName));
    }
    const manual = slices.filter((x) => x.metadata.labels?.['kubernetes.io/service-name'] === 'manual');
    expect(manual.map((x) => x.metadata.name)).toEqual(['manual-1']);
  });

  it('allocates cluster IPs and node ports and rejects duplicates with 422 Invalid', async () => {
    const svcs = (await client.list('services', 'sbt')).items;
    const ips = svcs.map((s) => (s.spec as { clusterIP: string }).clusterIP);
    expect(new Set(ips).size).toBe(ips.length);
    for (const ip of ips) expect(cidrContains(parseCidr('10.96.0.0/12'), ip)).toBe(true);
    const np = svcs.find((s) => s.metadata.name === 'np')!;
    expect((np.spec as { ports: { nodePort: number }[] }).ports[0]!.nodePort).toBe(30080);

    const dupIP = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'dup-ip', namespace: 'sbt' }, spec: { clusterIP: ips[0], ports: [{ port: 1 }] } };
    const before = await client.get('nodes', `${NAME}-node-1`);
    const label = { apiVersion: 'v1', kind: 'Node', metadata: { name: `${NAME}-node-1`, labels: { 'sbt.example/role': 'edge' } } };
    // One failing object does not stop the others, and the exit status says something failed.
    const r = await cli(['apply', '-f', '-'], `${JSON.stringify(dupIP)}\n---\n${JSON.stringify(label)}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('provided IP is already allocated');
    expect(r.stdout).toContain(`node/${NAME}-node-1 configured`);
    const after = await client.get('nodes', `${NAME}-node-1`);
    expect(after.metadata.labels).toEqual({ ...before.metadata.labels, 'sbt.example/role': 'edge' });
    expect(after.spec).toEqual(before.spec);
    const res = await fetch(`${L.apiServer}/api/v1/namespaces/sbt/services`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ metadata: { name: 'dup-port' }, spec: { type: 'NodePort', ports: [{ port: 1, nodePort: 30080 }] } }),
    });
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ kind: 'Status', reason: 'Invalid', code: 422 });
    const got = await cli(['get', 'svc', '-n', 'sbt']);
    expect(got.stdout).toMatch(/np\s+NodePort\s+10\.\d+\.\d+\.\d+\s+<none>\s+80:30080\/TCP/);
    expect(got.stdout).not.toContain('dup-');
  });

  it('tears a deleted pod down: endpoint gone, CNI DEL run, namespace removed', async () => {
    const pod = pods.get('web-2')!;
    const ns = podNetns(NAME, pod.metadata.uid!);
    expect((await sh('ip', ['netns', 'list'])).stdout).toContain(ns);
    const r = await cli(['delete', 'pod', 'web-2', '-n', 'sbt']);
    expect(r.code, r.stderr).toBe(0);
    await until('web-2 out of the slice', async () => {
      const s = (await client.list('endpointslices', 'sbt')).items.find((x) => x.metadata.labels?.['kubernetes.io/service-name'] === 'web')!;
      return !(s.endpoints as { targetRef: { name: string } }[]).some((e) => e.targetRef.name === 'web-2');
    });
    await until('pod netns removed', async () => !(await sh('ip', ['netns', 'list'])).stdout.includes(ns));
    // host-local released the address, which only happens on CNI DEL.
    const node = (pod.spec as { nodeName: string }).nodeName;
    const ipamDir = `${nodeLayouts(L).find((n) => n.name === node)!.dir}/cni-ipam/sbtest`;
    expect(readdirSync(ipamDir).length).toBeGreaterThan(0);
    expect(readdirSync(ipamDir)).not.toContain(podIPs(pod)[0]);
    expect(node).toMatch(new RegExp(`^${NAME}-node-`));
  });

  it('down removes every namespace, link, table, file and process it made, and is safe twice', async () => {
    const r = await cli(['down']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`netns ${NAME}-node-1`);
    expect(await leftovers()).toEqual([]);
    const again = await cli(['down']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing to remove');
  }, 60_000);
});
