// What the cluster-wide pod cache costs NetworkPolicy: N pods (default 150,000) shaped like a
// kubelet's (managedFields, annotations, owner, two containers, conditions) go through the real
// converter one by one, each parsed from its own JSON text as a watch delivers it, and only the
// PolicyPodInfo is kept in a Map as the store keeps it. Heap is read after a forced GC, before and
// after. `--full` keeps the agent's full PodInfo instead, for comparison. Last stdout line: JSON.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parseArgs } from 'node:util';
import { convert } from '../common/watch/convert.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const progress = (msg: string): void => void process.stderr.write(`[bench policy-pods] ${msg}\n`);

function rawPod(i: number, perDeployment: number, nodes: number, namespaces: number): string {
  const dep = Math.floor(i / perDeployment);
  const ns = `ns-${dep % namespaces}`;
  const app = `app-${dep}`;
  const hash = (dep * 2654435761 >>> 0).toString(36).slice(0, 10);
  const ip = `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${app}-${hash}-${i.toString(36).padStart(5, '0')}`,
      generateName: `${app}-${hash}-`,
      namespace: ns,
      uid: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
      resourceVersion: String(1000 + i),
      creationTimestamp: '2026-01-01T00:00:00Z',
      labels: { app, 'pod-template-hash': hash, tier: dep % 3 === 0 ? 'frontend' : 'backend', 'app.kubernetes.io/part-of': `suite-${dep % 20}` },
      annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-01-01T00:00:00Z' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${app}-${hash}`, uid: 'rs', controller: true, blockOwnerDeletion: true }],
      managedFields: [{ manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: '2026-01-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': {} } } }],
    },
    spec: {
      nodeName: `node-${i % nodes}`,
      containers: [
        { name: 'main', image: `registry.example/${app}:1.0`, ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }, { name: 'metrics', containerPort: 9090, protocol: 'TCP' }], resources: { requests: { cpu: '100m', memory: '128Mi' } }, volumeMounts: [{ name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }] },
        { name: 'sidecar', image: 'registry.example/proxy:2.3', ports: [{ containerPort: 15001 }] },
      ],
      serviceAccountName: 'default',
      volumes: [{ name: 'kube-api-access', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } }],
    },
    status: {
      phase: 'Running',
      hostIP: `172.18.${(i % nodes) >> 8}.${(i % nodes) & 255}`,
      podIP: ip,
      podIPs: [{ ip }],
      conditions: [{ type: 'Ready', status: 'True' }, { type: 'ContainersReady', status: 'True' }, { type: 'PodScheduled', status: 'True' }],
      startTime: '2026-01-01T00:00:00Z',
    },
  };
  return JSON.stringify(pod);
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { pods: { type: 'string', default: '150000' }, 'per-deployment': { type: 'string', default: '10' }, nodes: { type: 'string', default: '1000' }, namespaces: { type: 'string', default: '500' }, full: { type: 'boolean', default: false } } });
  const n = Number(values.pods);
  const per = Number(values['per-deployment']);
  const kind = values.full ? 'pods' : 'policypods';
  gc();
  const before = process.memoryUsage();
  const store = new Map<string, unknown>();
  let convertMs = 0;
  let rawBytes = 0;
  for (let i = 0; i < n; i++) {
    const text = rawPod(i, per, Number(values.nodes), Number(values.namespaces));
    rawBytes += text.length;
    const raw: unknown = JSON.parse(text);
    const t = performance.now();
    const c = convert(kind, raw);
    convertMs += performance.now() - t;
    store.set(c.key, c.value);
  }
  gc();
  gc();
  const after = process.memoryUsage();
  const heapMb = (after.heapUsed - before.heapUsed) / 2 ** 20;
  progress(`${n} pods converted in ${convertMs.toFixed(0)} ms (${((convertMs * 1000) / n).toFixed(1)} µs each); raw JSON ${(rawBytes / 2 ** 20).toFixed(0)} MB`);
  progress(`heap +${heapMb.toFixed(1)} MB, rss ${(after.rss / 2 ** 20).toFixed(0)} MB`);
  if (store.size !== n) throw new Error(`stored ${store.size} of ${n}`);
  process.stdout.write(`${JSON.stringify({ bench: 'policy-pods', kind, pods: n, heap_mb: Number(heapMb.toFixed(1)), bytes_per_pod: Math.round((heapMb * 2 ** 20) / n), convert_us_per_pod: Number(((convertMs * 1000) / n).toFixed(2)), raw_json_mb: Math.round(rawBytes / 2 ** 20), rss_mb: Math.round(after.rss / 2 ** 20) })}\n`);
}
