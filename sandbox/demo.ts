// `up --demo`: a Deployment-like set of HTTP pods spread over the nodes, Services in front, and a
// connectivity and DNS check that reports each path honestly (FAIL while CNI, proxy or DNS are missing).
import type { KubeObject } from './apiserver/resources.js';
import { applyObject, type SandboxClient } from './client.js';
import { podIPs, podReady } from './endpointslices.js';
import { INTERNET_IP, nodeLayouts, podNetns, type Layout } from './names.js';
import { tryRun } from './sh.js';

export const DEMO_NAMESPACE = 'demo';
const REPLICAS = 4;

export function demoObjects(): { resource: 'namespaces' | 'pods' | 'services'; object: KubeObject }[] {
  const pods = Array.from({ length: REPLICAS }, (_, i) => ({
    resource: 'pods' as const,
    object: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `web-${i}`, namespace: DEMO_NAMESPACE, labels: { app: 'web' } },
      spec: {
        containers: [
          {
            name: 'http',
            // A tiny HTTP server: socat answers every connection with the pod's name.
            // A tiny HTTP server answering with the pod's name.
            command: [process.execPath, '-e', "require('http').createServer((q, s) => s.end('hello from ' + process.env.POD_NAME + '\\n')).listen(8080)"],
            env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
            ports: [{ name: 'http', containerPort: 8080 }],
            readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 5 },
          },
        ],
      },
    },
  }));
  return [
    { resource: 'namespaces', object: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: DEMO_NAMESPACE } } },
    ...pods,
    { resource: 'services', object: { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: DEMO_NAMESPACE }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } } },
    { resource: 'services', object: { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web-np', namespace: DEMO_NAMESPACE }, spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } } },
  ];
}

interface Check {
  readonly what: string;
  readonly argv: string[];
  readonly expect: RegExp;
}

export async function runDemo(c: SandboxClient, l: Layout, out: (s: string) => void, waitMs = 30_000): Promise<number> {
  for (const { resource, object } of demoObjects()) out(`${resource}/${object.metadata.name} ${await applyObject(c, resource, object)}`);
  const deadline = Date.now() + waitMs;
  let pods: KubeObject[] = [];
  while (Date.now() < deadline) {
    pods = (await c.list('pods', DEMO_NAMESPACE)).items.filter((p) => p.metadata.labels?.app === 'web');
    if (pods.length === REPLICAS && pods.every(podReady)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const ready = pods.filter(podReady);
  out(`demo: ${ready.length}/${REPLICAS} pods ready`);
  for (const p of pods) out(`  ${p.metadata.name} on ${(p.spec as { nodeName?: string }).nodeName ?? '?'} ip ${podIPs(p)[0] ?? '<none>'}`);

  const web = await c.get('services', 'web', DEMO_NAMESPACE);
  const np = await c.get('services', 'web-np', DEMO_NAMESPACE);
  const clusterIP = (web.spec as { clusterIP: string }).clusterIP;
  const nodePort = (np.spec as { ports: { nodePort: number }[] }).ports[0]!.nodePort;
  const withIP = pods.filter((p) => podIPs(p).length > 0);
  const client = withIP[0];
  const nodeOf = (p: KubeObject): string => (p.spec as { nodeName?: string }).nodeName ?? '';
  const remote = withIP.find((p) => client && nodeOf(p) !== nodeOf(client)) ?? withIP[1];
  const clientNs = client ? podNetns(l.name, client.metadata.uid ?? '') : undefined;
  const curl = (url: string): string[] => ['curl', '-s', '--max-time', '2', url];
  const node1 = nodeLayouts(l)[0]!;
  const checks: (Check | { what: string; skip: string })[] = [
    remote && clientNs
      ? { what: `pod -> pod across nodes (${client!.metadata.name} -> ${remote.metadata.name} ${podIPs(remote)[0]})`, argv: ['ip', 'netns', 'exec', clientNs, ...curl(`http://${podIPs(remote)[0]}:8080/`)], expect: /hello from web-/ }
      : { what: 'pod -> pod across nodes', skip: 'no two pods have an IP (no CNI config yet)' },
    clientNs ? { what: `pod -> ClusterIP ${clusterIP}:80`, argv: ['ip', 'netns', 'exec', clientNs, ...curl(`http://${clusterIP}/`)], expect: /hello from web-/ } : { what: 'pod -> ClusterIP', skip: 'no pod has an IP' },
    clientNs ? { what: 'DNS web.demo.svc.cluster.local from a pod', argv: ['ip', 'netns', 'exec', clientNs, 'dig', '+short', '+time=1', '+tries=2', 'web.demo.svc.cluster.local'], expect: new RegExp(`^${clusterIP.replace(/\./g, '\\.')}$`, 'm') } : { what: 'DNS from a pod', skip: 'no pod has an IP' },
    { what: `outside -> NodePort ${node1.ip}:${nodePort}`, argv: ['ip', 'netns', 'exec', l.extNs, ...curl(`http://${node1.ip}:${nodePort}/`)], expect: /hello from web-/ },
    // The outside echoes the source address it saw: a node IP means the pod was masqueraded.
    clientNs ? { what: `pod -> internet ${INTERNET_IP} (masqueraded to the node IP)`, argv: ['ip', 'netns', 'exec', clientNs, ...curl(`http://${INTERNET_IP}/`)], expect: new RegExp(`^${l.hostIP.split('.').slice(0, 3).join('\\.')}\\.1\\d$`, 'm') } : { what: 'pod -> internet', skip: 'no pod has an IP' },
  ];
  let failed = 0;
  for (const ch of checks) {
    if ('skip' in ch) {
      failed++;
      out(`FAIL  ${ch.what}: ${ch.skip}`);
      continue;
    }
    // A few tries: right after pods turn ready the proxy may still be programming their Service.
    let got = '';
    let ok = false;
    for (let i = 0; i < 3 && !ok; i++) {
      if (i) await new Promise((r) => setTimeout(r, 1000));
      got = (await tryRun(ch.argv[0]!, ch.argv.slice(1), { timeoutMs: 5000 })) ?? '';
      ok = ch.expect.test(got);
    }
    if (!ok) failed++;
    out(`${ok ? 'PASS' : 'FAIL'}  ${ch.what}${ok ? '' : `: got ${JSON.stringify(got.trim().slice(0, 80))}`}`);
  }
  out(`demo: ${checks.length - failed}/${checks.length} checks passed. Try: skiff sandbox exec -n ${DEMO_NAMESPACE} web-0 -- curl -s http://web/`);
  return failed ? 1 : 0;
}
