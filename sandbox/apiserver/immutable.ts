// What kube-apiserver refuses to change on an existing object, over HTTP: a Pod's spec beyond the
// few mutable fields (images, activeDeadlineSeconds, added tolerations, a first nodeName). kubectl
// users meet this as the 422 `kubectl apply` prints for an edited Pod manifest.
import { isDeepStrictEqual } from 'node:util';
import { applyDefaults } from './defaults.js';
import { ApiError } from './errors.js';
import type { KubeObject, ResourceDef } from './resources.js';
import type { Node } from './schema.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

const POD_MUTABLE = 'spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)';

/** Throws 422 when `next` changes what cannot change on `old`. */
export function checkImmutable(def: ResourceDef, old: KubeObject, next: KubeObject, node: Node | undefined): void {
  if (def.kind !== 'Pod') return;
  // Both sides with defaults, so an object created without them (in process) compares fairly.
  const before = structuredClone(old);
  applyDefaults(def, before, node, false);
  const a = isObj(before.spec) ? structuredClone(before.spec) : {};
  const b = isObj(next.spec) ? structuredClone(next.spec) : {};
  for (const list of ['containers', 'initContainers']) {
    const x = Array.isArray(a[list]) ? (a[list] as unknown[]) : [];
    const y = Array.isArray(b[list]) ? (b[list] as unknown[]) : [];
    y.forEach((c, i) => {
      // A missing image stays missing: {image: undefined} would not equal a container without one.
      if (isObj(c) && isObj(x[i])) {
        if (c.image === undefined) delete (x[i] as Obj).image;
        else (x[i] as Obj).image = c.image;
      }
    });
  }
  a.activeDeadlineSeconds = b.activeDeadlineSeconds;
  const tolA = Array.isArray(a.tolerations) ? a.tolerations : [];
  const tolB = Array.isArray(b.tolerations) ? b.tolerations : [];
  if (tolA.every((t) => tolB.some((u) => isDeepStrictEqual(t, u)))) a.tolerations = b.tolerations;
  if (!a.nodeName) a.nodeName = b.nodeName;
  for (const o of [a, b]) for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  if (!isDeepStrictEqual(a, b)) {
    throw new ApiError(422, 'Invalid', `Pod "${old.metadata.name ?? ''}" is invalid: ${POD_MUTABLE}`, {
      name: old.metadata.name ?? '',
      kind: 'Pod',
      causes: [{ reason: 'FieldValueForbidden', message: POD_MUTABLE.slice('spec: '.length), field: 'spec' }],
    });
  }
}
