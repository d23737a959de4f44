// Services across a 3-node sandbox with the whole agent on every node (skiff's CNI, proxy and DNS),
// as a user gets it from `npm run sandbox`: traffic from pods on other nodes and from the outside
// namespace on the underlay. Endpoints: web-1 on node 1, web-3 on node 3; the client pod and no
// web pod on node 2, so every ClusterIP and NodePort connection from or through node 2 crosses
// the overlay. Every server answers with its name and the source address it saw.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxCli } from './cli.js';
import { missing } from '../support/env.js';
import { sh } from '../support/netns.js';
import { until } from '../support/until.js';
import type { KubeObject } from '../../sandbox/apiserver/resources.js';
import { SandboxClient } from '../../sandbox/client.js';
import { layout, nodeLayouts, podNetns } from '../../sandbox/names.js';
import { podIPs, podReady } from '../../sandbox/endpointslices.js';
import { lockSandbox } from '../support/lock.js';

const NAME = 'skiffsvt';
const SUBNET = '172.31.232.0/24';
const STATE = `/tmp/${NAME}-state`;
const env = { ...process.env, SKIFF_SANDBOX_DIR: STATE, SKIFF_SANDBOX_NAME: NAME };
const L = layout({ name: NAME, nodes: 3, subnet: SUBNET, stateDir: STATE });
const [N1, N2, N3] = nodeLayouts(L) as [ReturnType<typeof nodeLayouts>[number], ReturnType<typeof nodeLayouts>[number], ReturnType<typeof nodeLayouts>[number]];

const cli = sandboxCli(env);

// An HTTP server answering "<pod name> <client address>".
const SERVER = "require('http').createServer((q, s) => s.end(process.env.POD_NAME + ' ' + q.socket.remoteAddress.replace('::ffff:', ''))).listen(8080)";
const pod = (name: string, node: string, labels: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'svt', labels },
  spec: {
    nodeName: node,
    containers: [{ name: 'c', command: [process.execPath, '-e', SERVER], env: [{ name: 'POD_NAME', value: name }], ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 } }],
  },
});
const svc = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'svt' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 'http' }], ...spec } });
const MANIFEST = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'svt' } },
  pod('web-1', N1.name, { app: 'web', tier: 'one' }),
  pod('web-3', N3.name, { app: 'web' }),
  pod('client', N2.name, { app: 'client' }),
  svc('web', { selector: { app: 'web' } }),
  svc('web-np', { type: 'NodePort', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http', nodePort: 30081 }] }),
  // LoadBalancer: the API server gives only those a healthCheckNodePort (no LB controller here, so no ingress IP).
  svc('web-local', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', selector: { tier: 'one' }, ports: [{ name: 'http', port: 80, targetPort: 'http', nodePort: 30082 }] }),
]
  .map((o) => JSON.stringify(o))
  .join('\n---\n');

async function curl(ns: string, url: string, timeoutS = 2): Promise<string> {
  try {
    return (await sh('ip', ['netns', 'exec', ns, 'curl', '-s', '-m', String(timeoutS), url])).stdout.trim();
  } catch (e) {
    return `exit ${(e as { exitCode?: number }).exitCode ?? '?'}`;
  }
}

describe.skipIf(missing('sandbox services', { root: true, tools: ['ip', 'nft', 'curl', 'dig', 'flock'] }))('Services across the sandbox (3 nodes, whole agent, root)', () => {
  let client: SandboxClient;
  let lock: ChildProcess | undefined;
  const pods = new Map<string, KubeObject>();
  let clientNs: string;
  let clusterIP: string;
  let hcPort: number;

  beforeAll(async () => {
    lock = await lockSandbox(NAME);
    await cli(['down']);
    const r = await cli(['up', '--nodes', '3', '--subnet', SUBNET, '--timeout', '90', '--agent-timeout', '90']);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    client = SandboxClient.load(L.kubeconfig);
    const applied = await cli(['apply', '-f', '-'], MANIFEST);
    expect(applied.code, applied.stderr).toBe(0);
    const all = await until('pods ready', async () => {
      const items = (await client.list('pods', 'svt')).items;
      return items.length === 3 && items.every(podReady) ? items : undefined;
    }, 90_000);
    for (const p of all) pods.set(p.metadata.name!, p);
    clientNs = podNetns(NAME, pods.get('client')!.metadata.uid!);
    clusterIP = ((await client.get('services', 'web', 'svt')).spec as { clusterIP: string }).clusterIP;
    hcPort = ((await client.get('services', 'web-local', 'svt')).spec as { healthCheckNodePort: number }).healthCheckNodePort;
    // Every node's proxy has the Services with both endpoints (the slice controller and the proxy's
    // minSyncPeriod can trail the pods' readiness by a second or two).
    const seen = new Set<string>();
    await until(
      'both endpoints programmed on every node',
      async () => {
        for (const n of [N1, N2, N3]) seen.add(`${n.name} ${(await curl(L.extNs, `http://${n.ip}:30081/`)).split(' ')[0]}`);
        return [...seen].filter((x) => / web-[13]$/.test(x)).length === 6 || undefined;
      },
      90_000,
      { state: () => `(answers seen: ${[...seen].join(', ')})` },
    );
  }, 300_000);

  afterAll(async () => {
    if (process.env.SKIFF_KEEP_SANDBOX) return;
    await cli(['down']);
    lock?.stdin?.end();
  }, 60_000);

  it('a pod reaches a ClusterIP whose endpoints are all on other nodes, every endpoint, keeping its address', async () => {
    const ip = podIPs(pods.get('client')!)[0]!;
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const body = await curl(clientNs, `http://${clusterIP}/`);
      expect(body).toMatch(new RegExp(`^web-[13] ${ip.replace(/\./g, '\\.')}$`));
      seen.add(body.split(' ')[0]!);
    }
    expect([...seen].sort()).toEqual(['web-1', 'web-3']);
  });

  it('the Service name resolves from a pod through the node-local DNS', async () => {
    const out = (await sh('ip', ['netns', 'exec', clientNs, 'dig', '+short', '+time=2', '+tries=2', 'web.svt.svc.cluster.local'])).stdout.trim();
    expect(out).toBe(clusterIP);
  });

  it('a NodePort answers on every node from the underlay, masqueraded when it leaves the node', async () => {
    // Node 2 has no endpoint: its NodePort traffic goes to node 1 or 3 over the overlay, with node
    // 2's address there (its VTEP, the podCIDR's network address, as with flannel) as the source.
    const podCIDR = ((await client.get('nodes', N2.name)).spec as { podCIDR: string }).podCIDR;
    const vtep = podCIDR.split('/')[0]!;
    for (let i = 0; i < 6; i++) expect(await curl(L.extNs, `http://${N2.ip}:30081/`)).toMatch(new RegExp(`^web-[13] ${vtep.replace(/\./g, '\\.')}$`));
    for (const n of [N1, N3]) expect(await curl(L.extNs, `http://${n.ip}:30081/`)).toMatch(/^web-[13] /);
  });

  it('externalTrafficPolicy Local: the endpoint node keeps the client address, the others drop; health check says which', async () => {
    for (let i = 0; i < 4; i++) expect(await curl(L.extNs, `http://${N1.ip}:30082/`)).toBe(`web-1 ${L.extIP}`);
    for (const n of [N2, N3]) expect(await curl(L.extNs, `http://${n.ip}:30082/`, 1)).toBe('exit 28');
    // What a cloud load balancer's health check sees from the underlay.
    const health = async (n: { ip: string }) => {
      const out = (await sh('ip', ['netns', 'exec', L.extNs, 'curl', '-s', '-m', '2', '-w', '\n%{http_code}', `http://${n.ip}:${hcPort}/`])).stdout.trim().split('\n');
      return { status: Number(out.at(-1)), body: JSON.parse(out.slice(0, -1).join('\n')) as { localEndpoints: number } };
    };
    expect(await health(N1)).toMatchObject({ status: 200, body: { localEndpoints: 1 } });
    expect(await health(N3)).toMatchObject({ status: 503, body: { localEndpoints: 0 } });
    // A pod reaching an eTP Local NodePort is cluster traffic: it may use the remote endpoint.
    expect(await curl(clientNs, `http://${N2.ip}:30082/`)).toMatch(/^web-1 /);
  });

  it('an endpoint that goes away stops taking traffic on every node', async () => {
    const r = await cli(['delete', 'pod', 'web-3', '-n', 'svt']);
    expect(r.code, r.stderr).toBe(0);
    await until('web-3 out of rotation', async () => {
      const bodies = await Promise.all(Array.from({ length: 8 }, () => curl(clientNs, `http://${clusterIP}/`)));
      return bodies.every((b) => b.startsWith('web-1 ')) || undefined;
    }, 60_000);
    for (const n of [N1, N2, N3]) expect(await curl(L.extNs, `http://${n.ip}:30081/`)).toMatch(/^web-1 /);
  });
});
