// The scale subresource of Deployments and ReplicaSets (autoscaling/v1 Scale), which `kubectl
// scale` reads and patches: spec.replicas in, status.replicas and the selector out.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './errors.js';
import type { KubeObject } from './resources.js';
import type { RouteHandler } from './server.js';
import { mergePatch, type FakeStore } from './store.js';

const PATH = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/(deployments|replicasets)\/([^/]+)\/scale\/?$/;

function toScale(o: KubeObject): unknown {
  const spec = (o.spec ?? {}) as { replicas?: number; selector?: { matchLabels?: Record<string, string> } };
  const status = (o.status ?? {}) as { replicas?: number };
  const selector = Object.entries(spec.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: { name: o.metadata.name, namespace: o.metadata.namespace, uid: o.metadata.uid, resourceVersion: o.metadata.resourceVersion, creationTimestamp: o.metadata.creationTimestamp },
    spec: { replicas: spec.replicas ?? 1 },
    status: { replicas: status.replicas ?? 0, selector },
  };
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* below */
  }
  throw new ApiError(400, 'BadRequest', 'the request body must be a JSON object');
}

export function scaleRoute(store: FakeStore): RouteHandler {
  return async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const m = PATH.exec(url.pathname);
    if (!m) return false;
    const [, ns, resource, name] = m as unknown as [string, string, 'deployments' | 'replicasets', string];
    const current = store.get(resource, name, ns);
    let out = current;
    if (req.method === 'PUT' || req.method === 'PATCH') {
      const scale = req.method === 'PUT' ? await body(req) : (mergePatch(toScale(current), await body(req)) as Record<string, unknown>);
      const replicas = (scale.spec as { replicas?: unknown } | undefined)?.replicas;
      if (!Number.isInteger(replicas) || (replicas as number) < 0) throw new ApiError(422, 'Invalid', `Scale.autoscaling "${name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`);
      out = store.patch(resource, name, { spec: { replicas } }, { namespace: ns });
    } else if (req.method !== 'GET') throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource: ${req.method}`);
    const text = JSON.stringify(toScale(out));
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
    return true;
  };
}
