// The write verbs over HTTP as kube-apiserver runs them: the patch formats, server-side apply,
// dryRun, fieldManager and managedFields, fieldValidation (Strict refuses unknown fields, Warn
// answers with Warning headers), and DELETE with its options: graceful deletion of scheduled pods,
// preconditions, and cascading to dependents (ownerReferences) as the garbage collector would.
import type { IncomingHttpHeaders } from 'node:http';
import { parseApplyBody, serverSideApply } from './apply.js';
import { applyDefaults, defaultKeys } from './defaults.js';
import { ApiError } from './errors.js';
import { managedAfterUpdate } from './fields.js';
import { checkImmutable } from './immutable.js';
import { markNamespaceDeleted, requireNamespace } from './namespaces.js';
import { jsonMerge, jsonPatch, strategicMerge } from './patch.js';
import { RESOURCES, RESOURCE_NAMES, apiVersionOf, type KubeObject, type ResourceDef } from './resources.js';
import type { Route } from './routes.js';
import { kindNode, typeError, unknownFields, type Node } from './schema.js';
import type { FakeStore } from './store.js';
import { validateObject } from './validation.js';

export interface WriteResult {
  readonly status: number;
  readonly body: unknown;
  readonly warnings: readonly string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

export const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml'] as const;

interface Common {
  readonly dryRun: boolean;
  readonly manager: string;
  readonly managerGiven: boolean;
  readonly validation: 'Strict' | 'Warn' | 'Ignore';
}

function common(q: URLSearchParams, headers: IncomingHttpHeaders): Common {
  const dry = q.getAll('dryRun');
  for (const d of dry) if (d !== 'All') throw new ApiError(400, 'BadRequest', `Invalid dry run value: unsupported dry run value "${d}": only "All" is supported`);
  const fm = q.get('fieldManager');
  if (fm !== null && (fm.length > 128 || /[^\x20-\x7e]/.test(fm))) throw new ApiError(400, 'BadRequest', `invalid field manager "${fm}": must be at most 128 printable characters`);
  const v = q.get('fieldValidation') ?? 'Warn';
  if (v !== 'Strict' && v !== 'Warn' && v !== 'Ignore') throw new ApiError(400, 'BadRequest', `fieldValidation must be one of Ignore, Warn or Strict, not "${v}"`);
  // Without fieldManager a write is attributed to the client's user agent, as kube-apiserver does.
  const ua = (headers['user-agent'] ?? '').split('/')[0]?.trim() || 'unknown';
  return { dryRun: dry.length > 0, manager: fm ?? ua, managerGiven: fm !== null, validation: v };
}

/** Unknown fields of a request body: Strict refuses them (400), Warn reports them as warnings. */
function checkFields(c: Common, def: ResourceDef, body: unknown): string[] {
  // A value of the wrong type cannot be decoded at all, whatever the validation level.
  const wrong = typeError(nodeOf(def), stripDirectiveKeys(body));
  if (wrong) throw new ApiError(400, 'BadRequest', `${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: json: ${wrong}`);
  if (c.validation === 'Ignore') return [];
  const unknown = unknownFields(nodeOf(def), stripDirectiveKeys(body)).map((f) => `unknown field "${f.slice(1)}"`);
  if (unknown.length > 0 && c.validation === 'Strict') {
    throw new ApiError(400, 'BadRequest', `${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: strict decoding error: ${unknown.join(', ')}`);
  }
  return unknown;
}

function stripDirectiveKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripDirectiveKeys);
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectiveKeys(x);
  return out;
}

/** The namespace a create lands in: the path's, else the body's, else default (as the store decides). */
const namespaceOf = (route: Route, obj: KubeObject): string => route.namespace || (typeof obj.metadata?.namespace === 'string' && obj.metadata.namespace) || 'default';
const nodeOf = (def: ResourceDef): Node | undefined => kindNode(def.group, def.kind);
const withManaged = (o: KubeObject, managed: unknown): KubeObject => ({ ...o, metadata: { ...o.metadata, managedFields: managed } });

export function create(store: FakeStore, route: Route, q: URLSearchParams, headers: IncomingHttpHeaders, body: unknown): WriteResult {
  const c = common(q, headers);
  const def = route.def;
  const warnings = checkFields(c, def, body);
  if (!isObj(body)) throw new ApiError(400, 'BadRequest', 'the body must be a JSON object');
  const obj = body as KubeObject;
  const managed = managedAfterUpdate(undefined, obj, nodeOf(def), def.hasStatus, c.manager, apiVersionOf(def));
  applyDefaults(def, obj, nodeOf(def), true);
  const given = isObj(obj.metadata) ? obj.metadata.namespace : undefined;
  // The handler compares namespaces before admission and validation run, as kube-apiserver's does.
  if (def.namespaced && given && route.namespace && given !== route.namespace) {
    throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
  }
  requireNamespace(store, def, namespaceOf(route, obj));
  validateObject(def, obj);
  const created = store.create(def.name, withManaged(obj, managed), { namespace: route.namespace, dryRun: c.dryRun });
  return { status: 201, body: created, warnings };
}

export function update(store: FakeStore, route: Route, q: URLSearchParams, headers: IncomingHttpHeaders, body: unknown): WriteResult {
  const c = common(q, headers);
  const def = route.def;
  const warnings = checkFields(c, def, body);
  if (!isObj(body)) throw new ApiError(400, 'BadRequest', 'the body must be a JSON object');
  const obj = body as KubeObject;
  const meta = isObj(obj.metadata) ? obj.metadata : {};
  if (meta.name !== undefined && meta.name !== route.name) throw new ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
  obj.metadata = { ...meta, name: route.name };
  applyDefaults(def, obj, nodeOf(def), false);
  const old = store.get(def.name, route.name!, route.namespace);
  if (!route.subresource) {
    validateObject(def, obj, old);
    checkImmutable(def, old, obj, nodeOf(def));
  }
  const next = route.subresource ? obj : withManaged(obj, managedAfterUpdate(old, obj, nodeOf(def), def.hasStatus, c.manager, apiVersionOf(def)));
  return { status: 200, body: store.update(def.name, next, { namespace: route.namespace, subresource: route.subresource, dryRun: c.dryRun }), warnings };
}

export function patch(store: FakeStore, route: Route, q: URLSearchParams, headers: IncomingHttpHeaders, raw: string): WriteResult {
  const c = common(q, headers);
  const def = route.def;
  const node = nodeOf(def);
  const type = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  // Without a schema there are no merge keys: such kinds refuse strategic merge as custom resources do.
  const accepted = node ? PATCH_TYPES : PATCH_TYPES.filter((t) => !t.includes('strategic'));
  if (!(accepted as readonly string[]).includes(type)) {
    throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`);
  }
  const name = route.name!;
  const opts = { namespace: route.namespace, subresource: route.subresource, dryRun: c.dryRun };

  if (type === 'application/apply-patch+yaml') {
    if (!c.managerGiven) throw new ApiError(400, 'BadRequest', 'PATCH, application/apply-patch+yaml requires fieldManager to be set');
    const applied = parseApplyBody(raw);
    const warnings = checkFields(c, def, applied);
    if (applied.apiVersion !== apiVersionOf(def) || applied.kind !== def.kind) {
      throw new ApiError(400, 'BadRequest', `the applied configuration is a ${String(applied.apiVersion)}, Kind=${String(applied.kind)}, not ${apiVersionOf(def)}, Kind=${def.kind}`);
    }
    const meta = isObj(applied.metadata) ? applied.metadata : {};
    if (meta.name !== undefined && meta.name !== name) throw new ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
    const force = q.get('force') === 'true';
    if (q.has('force') && !['true', 'false'].includes(q.get('force')!)) throw new ApiError(400, 'BadRequest', `invalid force value "${q.get('force')}"`);
    let live: KubeObject | undefined;
    try {
      live = store.get(def.name, name, route.namespace);
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 404)) throw e;
    }
    const ignoreStatus = def.hasStatus && route.subresource !== 'status';
    defaultKeys(applied, node);
    const next = serverSideApply({ live, applied: { ...applied, metadata: { ...meta, name } }, node, manager: c.manager, force, apiVersion: apiVersionOf(def), ignoreStatus });
    applyDefaults(def, next, node, !live);
    if (!live) requireNamespace(store, def, namespaceOf(route, next));
    if (!route.subresource) validateObject(def, next, live);
    if (live && !route.subresource) checkImmutable(def, live, next, node);
    if (!live) return { status: 201, body: store.create(def.name, next, opts), warnings };
    next.metadata.resourceVersion = typeof meta.resourceVersion === 'string' ? meta.resourceVersion : live.metadata.resourceVersion;
    return { status: 200, body: store.update(def.name, next, opts), warnings };
  }

  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (e) {
    throw new ApiError(400, 'BadRequest', `the request body is not valid JSON: ${(e as Error).message}`);
  }
  const old = store.get(def.name, name, route.namespace);
  let next: unknown;
  let warnings: string[] = [];
  if (type === 'application/json-patch+json') next = jsonPatch(old, body);
  else {
    if (!isObj(body)) throw new ApiError(400, 'BadRequest', 'a merge patch must be a JSON object');
    warnings = checkFields(c, def, body);
    next = type === 'application/merge-patch+json' ? jsonMerge(old, body) : strategicMerge(old, body, node);
  }
  if (!isObj(next) || !isObj(next.metadata)) throw new ApiError(422, 'Invalid', `${def.kind} "${name}" is invalid: metadata: Required value`);
  const obj = next as KubeObject;
  applyDefaults(def, obj, node, false);
  if (obj.metadata.name !== name || (def.namespaced && obj.metadata.namespace !== old.metadata.namespace)) {
    throw new ApiError(400, 'BadRequest', 'metadata.name and metadata.namespace cannot be changed by a patch');
  }
  // A resourceVersion the patch names is a precondition, checked like PUT's; otherwise none.
  if (obj.metadata.resourceVersion === undefined) obj.metadata.resourceVersion = old.metadata.resourceVersion;
  if (!route.subresource) {
    validateObject(def, obj, old);
    checkImmutable(def, old, obj, node);
  }
  const stored = route.subresource ? obj : withManaged(obj, managedAfterUpdate(old, obj, node, def.hasStatus, c.manager, apiVersionOf(def)));
  return { status: 200, body: store.update(def.name, stored, opts), warnings };
}

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: 'Orphan' | 'Background' | 'Foreground';
  dryRun: boolean;
  preconditions?: { uid?: string; resourceVersion?: string };
}

export function deleteOptions(q: URLSearchParams, body: unknown): DeleteOptions {
  const b = isObj(body) ? body : {};
  const graceText = q.get('gracePeriodSeconds') ?? (b.gracePeriodSeconds === undefined ? undefined : String(b.gracePeriodSeconds));
  const grace = graceText === undefined || graceText === 'null' ? undefined : Number(graceText);
  if (grace !== undefined && !Number.isInteger(grace)) throw new ApiError(400, 'BadRequest', `invalid gracePeriodSeconds "${graceText}"`);
  const policy = q.get('propagationPolicy') ?? (typeof b.propagationPolicy === 'string' ? b.propagationPolicy : undefined) ?? (b.orphanDependents === true ? 'Orphan' : undefined);
  if (policy !== undefined && !['Orphan', 'Background', 'Foreground'].includes(policy)) {
    throw new ApiError(422, 'Invalid', `DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan"`);
  }
  const dry = [...q.getAll('dryRun'), ...(Array.isArray(b.dryRun) ? b.dryRun.map(String) : [])];
  for (const d of dry) if (d !== 'All') throw new ApiError(400, 'BadRequest', `Invalid dry run value: unsupported dry run value "${d}"`);
  const pre = isObj(b.preconditions) ? (b.preconditions as DeleteOptions['preconditions']) : undefined;
  return { ...(grace !== undefined && { gracePeriodSeconds: Math.max(0, grace) }), ...(policy && { propagationPolicy: policy as DeleteOptions['propagationPolicy'] }), dryRun: dry.length > 0, ...(pre && { preconditions: pre }) };
}

export interface DeleteOutcome {
  readonly status: number;
  readonly body: unknown;
}

/**
 * DELETE of one object. A pod bound to a node is deleted gracefully: marked with deletionTimestamp
 * and deletionGracePeriodSeconds (from the request, else the pod's terminationGracePeriodSeconds,
 * else 30), and removed once the node's kubelet confirms with a zero grace period (or at the
 * deadline, store-controllers.ts). A namespace is marked Terminating (namespaces.ts). Anything
 * else goes at once, and its dependents with it (Background, Foreground: deleted the same way,
 * so their pods go gracefully) or lose the owner reference (Orphan).
 */
export function remove(store: FakeStore, route: Route, opts: DeleteOptions): DeleteOutcome {
  const def = route.def;
  const name = route.name!;
  const old = store.get(def.name, name, route.namespace);
  const pre = opts.preconditions;
  if (pre?.uid && pre.uid !== old.metadata.uid) {
    throw new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${def.name} "${name}": Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid ?? ''}`, { name, kind: def.name });
  }
  if (pre?.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) {
    throw new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${def.name} "${name}": Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion ?? ''}`, { name, kind: def.name });
  }
  if (def.name === 'namespaces') return { status: 200, body: markNamespaceDeleted(store, old, opts.dryRun) };
  const spec = isObj(old.spec) ? old.spec : {};
  if (def.name === 'pods' && typeof spec.nodeName === 'string' && spec.nodeName !== '') {
    const podGrace = typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : 30;
    const grace = opts.gracePeriodSeconds ?? podGrace;
    const current = old.metadata.deletionGracePeriodSeconds;
    if (grace > 0 && !(typeof current === 'number' && current <= grace)) {
      const marked: KubeObject = { ...old, metadata: { ...old.metadata, deletionTimestamp: new Date(Date.now() + grace * 1000).toISOString().replace(/\.\d+Z$/, 'Z'), deletionGracePeriodSeconds: grace } };
      const stored = store.update(def.name, marked, { namespace: route.namespace, dryRun: opts.dryRun });
      return { status: 200, body: stored };
    }
    if (grace > 0) return { status: 200, body: old };
  }
  const deleted = store.delete(def.name, name, route.namespace, { dryRun: opts.dryRun });
  if (!opts.dryRun) cascade(store, deleted.metadata.uid ?? '', opts.propagationPolicy ?? 'Background');
  return { status: 200, body: deleted };
}

/** What the garbage collector does for a deleted owner: delete or orphan every dependent, recursively. */
function cascade(store: FakeStore, uid: string, policy: 'Orphan' | 'Background' | 'Foreground'): void {
  if (!uid) return;
  for (const r of RESOURCE_NAMES) {
    for (const o of store.select(r)) {
      const refs = Array.isArray(o.metadata.ownerReferences) ? (o.metadata.ownerReferences as Obj[]) : [];
      if (!refs.some((ref) => isObj(ref) && ref.uid === uid)) continue;
      const name = o.metadata.name ?? '';
      const ns = RESOURCES[r].namespaced ? o.metadata.namespace : undefined;
      try {
        if (policy === 'Orphan') {
          const rest = refs.filter((ref) => ref.uid !== uid);
          store.patch(r, name, { metadata: { ownerReferences: rest.length ? rest : null } }, { namespace: ns });
        } else if (refs.every((ref) => ref.uid === uid)) {
          // As the garbage collector does: a DELETE of its own, graceful for a scheduled pod.
          remove(store, { def: RESOURCES[r], name, ...(ns !== undefined && { namespace: ns }) }, { dryRun: false, propagationPolicy: policy });
        } else {
          const rest = refs.filter((ref) => ref.uid !== uid);
          store.patch(r, name, { metadata: { ownerReferences: rest } }, { namespace: ns });
        }
      } catch (e) {
        // Already gone (a dependent of two deleted owners): nothing to do.
        if (!(e instanceof ApiError && e.code === 404)) throw e;
      }
    }
  }
}
