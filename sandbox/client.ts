// What the sandbox CLI uses to talk to its API server: the kubeconfig loaded by
// @kubernetes/client-node (so auth and TLS settings would apply unchanged) and plain REST calls,
// which keeps one code path for every kind `apply`, `get` and `delete` handle.
import { KubeConfig } from '@kubernetes/client-node';
import { SkiffError } from '../common/errors.js';
import { RESOURCES, type KubeObject, type ResourceName } from './apiserver/resources.js';

export class ApiRequestError extends SkiffError {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super('ERR_SANDBOX_API', message);
    this.name = 'ApiRequestError';
  }
}

export class SandboxClient {
  private constructor(
    private readonly kc: KubeConfig,
    readonly server: string,
  ) {}

  static load(kubeconfig: string): SandboxClient {
    const kc = new KubeConfig();
    try {
      kc.loadFromFile(kubeconfig);
    } catch (e) {
      throw new SkiffError('ERR_SANDBOX_DOWN', `cannot read ${kubeconfig} (is the sandbox up? run 'skiff sandbox up'): ${(e as Error).message}`);
    }
    const server = kc.getCurrentCluster()?.server;
    if (!server) throw new SkiffError('ERR_SANDBOX_DOWN', `${kubeconfig} names no cluster server`);
    return new SandboxClient(kc, server.replace(/\/$/, ''));
  }

  path(resource: ResourceName, namespace?: string, name?: string): string {
    const def = RESOURCES[resource];
    const base = def.group ? `/apis/${def.group}/${def.version}` : `/api/${def.version}`;
    const ns = def.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
    return `${base}${ns}/${resource}${name ? `/${encodeURIComponent(name)}` : ''}`;
  }

  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const init = await this.kc.applyToFetchOptions({});
    const headers = new Headers(init.headers as ConstructorParameters<typeof Headers>[0]);
    headers.set('accept', 'application/json');
    if (body !== undefined) headers.set('content-type', contentType);
    let res: Response;
    try {
      res = await fetch(`${this.server}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(15_000) });
    } catch (e) {
      throw new SkiffError('ERR_SANDBOX_DOWN', `cannot reach the sandbox API server at ${this.server} (is the sandbox up?): ${(e as Error).cause ?? (e as Error).message}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const st = (json ?? {}) as { message?: string; reason?: string };
      throw new ApiRequestError(res.status, st.reason ?? String(res.status), st.message ?? (text || res.statusText));
    }
    return json as T;
  }

  list(resource: ResourceName, namespace?: string): Promise<{ items: KubeObject[] }> {
    return this.request('GET', this.path(resource, namespace));
  }
  get(resource: ResourceName, name: string, namespace?: string): Promise<KubeObject> {
    return this.request('GET', this.path(resource, namespace, name));
  }
  create(resource: ResourceName, obj: KubeObject, namespace?: string): Promise<KubeObject> {
    return this.request('POST', this.path(resource, namespace), obj);
  }
  patch(resource: ResourceName, name: string, patch: unknown, namespace?: string): Promise<KubeObject> {
    return this.request('PATCH', this.path(resource, namespace, name), patch, 'application/merge-patch+json');
  }
  delete(resource: ResourceName, name: string, namespace?: string): Promise<KubeObject> {
    return this.request('DELETE', this.path(resource, namespace, name));
  }

  async ready(): Promise<boolean> {
    try {
      const res = await fetch(`${this.server}/readyz`, { signal: AbortSignal.timeout(1000) });
      return res.ok;
    } catch {
      return false;
    }
  }
}

/**
 * kubectl-apply-like: create, or merge-patch an existing object (so server-set fields such as a
 * Service's clusterIP and a Node's podCIDR survive). Returns "created", "configured" or "unchanged".
 */
export async function applyObject(c: SandboxClient, resource: ResourceName, obj: KubeObject, namespace?: string): Promise<'created' | 'configured' | 'unchanged'> {
  const def = RESOURCES[resource];
  const ns = def.namespaced ? (obj.metadata.namespace ?? namespace ?? 'default') : undefined;
  const body = def.namespaced ? { ...obj, metadata: { ...obj.metadata, namespace: ns } } : obj;
  try {
    await c.create(resource, body, ns);
    return 'created';
  } catch (e) {
    if (!(e instanceof ApiRequestError) || e.status !== 409 || !obj.metadata.name) throw e;
  }
  const before = await c.get(resource, obj.metadata.name, ns);
  const patch: Record<string, unknown> = { ...body };
  delete patch.status;
  patch.metadata = { ...body.metadata, resourceVersion: undefined };
  const after = await c.patch(resource, obj.metadata.name, patch, ns);
  return after.metadata.resourceVersion === before.metadata.resourceVersion ? 'unchanged' : 'configured';
}
