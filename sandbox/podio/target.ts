// Finds the running container a logs or exec request means, with the errors a real API server
// gives when it cannot (no such pod, ambiguous or unknown container, not started yet).
import { ApiError } from '../apiserver/errors.js';
import type { KubeObject } from '../apiserver/resources.js';
import type { FakeStore } from '../apiserver/store.js';
import type { ContainerTarget } from '../kubelet/kubelet.js';

/** The kubelet side: where a pod's container runs, by the node the pod is bound to. */
export type ContainerLookup = (nodeName: string, podUid: string, container: string) => ContainerTarget | undefined;

export interface Resolved {
  readonly pod: KubeObject;
  readonly container: string;
  readonly target: ContainerTarget;
}

export function resolveContainer(store: FakeStore, lookup: ContainerLookup, namespace: string, name: string, container: string | null): Resolved {
  const pod = store.get('pods', name, namespace);
  const containers = ((pod.spec as { containers?: { name: string }[] } | undefined)?.containers ?? []).map((c) => c.name);
  let c = container ?? '';
  if (!c) {
    if (containers.length !== 1) throw new ApiError(400, 'BadRequest', `a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]`);
    c = containers[0]!;
  }
  if (!containers.includes(c)) throw new ApiError(400, 'BadRequest', `container ${c} is not valid for pod ${name}`);
  const nodeName = (pod.spec as { nodeName?: string } | undefined)?.nodeName;
  const target = nodeName ? lookup(nodeName, pod.metadata.uid ?? '', c) : undefined;
  if (!target) {
    const waiting = ((pod.status as { containerStatuses?: { name: string; state?: { waiting?: { reason?: string } } }[] } | undefined)?.containerStatuses ?? []).find((s) => s.name === c)?.state?.waiting?.reason;
    throw new ApiError(400, 'BadRequest', `container "${c}" in pod "${name}" is waiting to start: ${waiting ?? (nodeName ? 'ContainerCreating' : 'PodScheduled')}`);
  }
  return { pod, container: c, target };
}

/** namespace and pod name from /api/v1/namespaces/{ns}/pods/{name}/{sub}, or undefined. */
export function podSubresource(pathname: string, sub: string): { namespace: string; name: string } | undefined {
  const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/([^/]+)\/?$/.exec(pathname);
  if (!m || m[3] !== sub) return undefined;
  try {
    return { namespace: decodeURIComponent(m[1]!), name: decodeURIComponent(m[2]!) };
  } catch {
    return undefined;
  }
}
