// The fake API server's object store: the same create/get/list/update/patch/delete, validation and
// admission whether a test calls it in process or a client calls it over HTTP. One global
// resourceVersion counter orders every write, as etcd's revision does.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { alreadyExists, ApiError, conflict, invalid, invalidFields, notFound } from './errors.js';
import { History, type EventType, type StoreEvent } from './history.js';
import { isTerminating, prepareNamespace, terminatingError } from './namespaces.js';
import { validatePolicy } from './policy-validation.js';
import { apiVersionOf, RESOURCES, RESOURCE_NAMES, storeKey, type KubeObject, type ResourceDef, type ResourceName } from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';

export type AdmitOp = 'CREATE' | 'UPDATE' | 'DELETE';
/** Returns the (possibly changed) object to store, or nothing to keep it; throws ApiError to reject. */
export type AdmitFn = (op: AdmitOp, obj: KubeObject, old: KubeObject | undefined) => KubeObject | void;

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}
export interface ListResult {
  items: KubeObject[];
  resourceVersion: string;
}
export interface WriteOptions {
  /** Namespace for namespaced resources when the object does not name one; default "default". */
  namespace?: string;
  /** "status" writes only .status (and keeps the rest), like PUT/PATCH on .../status. */
  subresource?: 'status';
  /** Admit and validate, return what would be stored, store nothing (dryRun=All). */
  dryRun?: boolean;
}
export interface StoreSnapshot {
  resourceVersion: number;
  objects: Partial<Record<ResourceName, KubeObject[]>>;
}
export interface FakeStoreOptions {
  /** How many events are kept for watch resumption (default 10000). */
  compactionWindow?: number;
  /** Create default, kube-system, kube-public and kube-node-lease on an empty store (default true). */
  seedNamespaces?: boolean;
  /** Restore objects saved by snapshot(); the event history starts empty (all watches must relist). */
  snapshot?: StoreSnapshot;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export class FakeStore {
  private rev: number;
  private readonly objects = new Map<ResourceName, Map<string, KubeObject>>();
  private readonly history: History;
  private readonly hooks = new Map<ResourceName, AdmitFn[]>();
  private readonly listeners = new Set<(e: StoreEvent) => void>();

  constructor(opts: FakeStoreOptions = {}) {
    for (const r of RESOURCE_NAMES) this.objects.set(r, new Map());
    const snap = opts.snapshot;
    this.rev = snap?.resourceVersion ?? 1;
    this.history = new History(opts.compactionWindow ?? 10_000, this.rev);
    if (snap) {
      for (const [r, objs] of Object.entries(snap.objects) as [ResourceName, KubeObject[]][]) {
        const def = RESOURCES[r];
        for (const o of objs) this.objects.get(r)!.set(storeKey(def, o.metadata.namespace, o.metadata.name ?? ''), o);
      }
    } else if (opts.seedNamespaces !== false) {
      for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) this.create('namespaces', { metadata: { name } });
    }
  }

  /** The current global resourceVersion. */
  get resourceVersion(): number {
    return this.rev;
  }
  /** Watches from a resourceVersion older than this get 410 Gone. */
  get oldestResumable(): number {
    return this.history.oldestResumable;
  }

  /** Adds an admission hook for one resource; hooks run in the order added. Returns a remover. */
  admit(resource: ResourceName, fn: AdmitFn): () => void {
    const list = this.hooks.get(resource) ?? [];
    list.push(fn);
    this.hooks.set(resource, list);
    return () => list.splice(list.indexOf(fn) >>> 0, 1);
  }

  /** Called synchronously after every committed write. */
  onEvent(fn: (e: StoreEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  create(resource: ResourceName, input: KubeObject, opts: WriteOptions = {}): KubeObject {
    const def = RESOURCES[resource];
    const obj = this.normalise(def, structuredClone(input), opts.namespace);
    const meta = obj.metadata;
    if (!meta.name && meta.generateName) meta.name = meta.generateName + randomSuffix();
    if (!meta.name) throw invalid(def.kind, '', 'metadata.name', 'Required value: name or generateName is required');
    // NamespaceLifecycle: nothing new in a namespace being terminated, in process as over HTTP
    // (controllers running beside the server get the 403 a real API server gives them).
    const ns = def.namespaced ? this.map('namespaces').get(meta.namespace ?? '') : undefined;
    if (ns && isTerminating(ns)) throw terminatingError(def, meta.name, meta.namespace ?? '');
    const key = storeKey(def, meta.namespace, meta.name);
    if (this.map(resource).has(key)) throw alreadyExists(resource, meta.name, def.group);
    if (resource === 'namespaces') prepareNamespace(obj);
    meta.uid = randomUUID();
    meta.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    delete meta.resourceVersion;
    delete meta.deletionTimestamp;
    meta.generation = 1;
    const admitted = this.runHooks(resource, 'CREATE', obj, undefined);
    this.validate(def, admitted);
    if (opts.dryRun) return structuredClone(admitted);
    return structuredClone(this.commit(def, key, 'ADDED', admitted, undefined));
  }

  get(resource: ResourceName, name: string, namespace?: string): KubeObject {
    return structuredClone(this.getRef(resource, name, namespace));
  }

  list(resource: ResourceName, opts: ListOptions = {}): ListResult {
    return { items: this.select(resource, opts).map((o) => structuredClone(o)), resourceVersion: String(this.rev) };
  }

  /** PUT: optimistic concurrency when metadata.resourceVersion is set (409 Conflict when stale). */
  update(resource: ResourceName, input: KubeObject, opts: WriteOptions = {}): KubeObject {
    const def = RESOURCES[resource];
    const obj = this.normalise(def, structuredClone(input), opts.namespace);
    const name = obj.metadata.name;
    if (!name) throw invalid(def.kind, '', 'metadata.name', 'Required value: name is required');
    const old = this.getRef(resource, name, obj.metadata.namespace);
    if (obj.metadata.resourceVersion !== undefined && obj.metadata.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(resource, name, def.group);
    }
    return structuredClone(this.replaceObject(def, old, obj, opts.subresource, opts.dryRun));
  }

  /** JSON merge patch (RFC 7386); strategic merge patches are treated the same way. */
  patch(resource: ResourceName, name: string, patch: unknown, opts: WriteOptions = {}): KubeObject {
    const def = RESOURCES[resource];
    const old = this.getRef(resource, name, this.namespaceFor(def, opts.namespace));
    if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
      throw new ApiError(400, 'BadRequest', 'a merge patch must be a JSON object');
    }
    const merged = mergePatch(structuredClone(old), patch) as KubeObject;
    const meta = (patch as { metadata?: { resourceVersion?: unknown } }).metadata;
    if (meta && typeof meta.resourceVersion === 'string' && meta.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(resource, name, def.group);
    }
    if (!merged.metadata || typeof merged.metadata !== 'object') throw invalid(def.kind, name, 'metadata', 'Required value');
    if (merged.metadata.name !== name || merged.metadata.namespace !== old.metadata.namespace) {
      throw new ApiError(400, 'BadRequest', 'metadata.name and metadata.namespace cannot be changed by a patch');
    }
    return structuredClone(this.replaceObject(def, old, merged, opts.subresource));
  }

  delete(resource: ResourceName, name: string, namespace?: string, opts: { dryRun?: boolean } = {}): KubeObject {
    const def = RESOURCES[resource];
    const old = this.getRef(resource, name, namespace);
    this.runHooks(resource, 'DELETE', old, old);
    if (opts.dryRun) return structuredClone(old);
    const key = storeKey(def, old.metadata.namespace, name);
    return structuredClone(this.commit(def, key, 'DELETED', { ...old, metadata: { ...old.metadata } }, old));
  }

  /**
   * Fault injection: stores `obj` exactly as given, skipping validation and admission (an object
   * with no name, labels that are not strings…) and emits ADDED, so tests can check that the
   * watch cache skips it. `key` identifies it for a later removeRaw.
   */
  putRaw(resource: ResourceName, obj: unknown, key: string = randomUUID()): string {
    const o = structuredClone(obj) as KubeObject;
    if (o && typeof o === 'object' && o.metadata && typeof o.metadata === 'object') delete o.metadata.resourceVersion;
    else if (o && typeof o === 'object') o.metadata = {};
    this.commit(RESOURCES[resource], key, 'ADDED', o, undefined);
    return key;
  }

  removeRaw(resource: ResourceName, key: string): void {
    const old = this.map(resource).get(key);
    if (old) this.commit(RESOURCES[resource], key, 'DELETED', { ...old, metadata: { ...old.metadata } }, old);
  }

  /** Forgets the event history up to `rev` (default now): older watches and continue tokens get 410. */
  compact(rev: number = this.rev): void {
    this.history.compact(Math.min(rev, this.rev));
  }

  /** Events after `rv`; throws 410 Gone when compacted. */
  eventsSince(rv: number): StoreEvent[] {
    return this.history.since(rv, this.rev);
  }

  snapshot(): StoreSnapshot {
    const objects: Partial<Record<ResourceName, KubeObject[]>> = {};
    for (const [r, m] of this.objects) objects[r] = [...m.values()];
    return { resourceVersion: this.rev, objects };
  }

  /** Stored objects matching the filter, sorted by key, not copied: callers must not mutate them. */
  select(resource: ResourceName, opts: ListOptions = {}): KubeObject[] {
    const def = RESOURCES[resource];
    const byLabel = parseLabelSelector(opts.labelSelector);
    const byField = parseFieldSelector(def, opts.fieldSelector);
    const ns = def.namespaced ? opts.namespace : undefined;
    const out: [string, KubeObject][] = [];
    for (const [key, o] of this.map(resource)) {
      if (ns !== undefined && o.metadata?.namespace !== ns) continue;
      if (byLabel(o) && byField(o)) out.push([key, o]);
    }
    out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return out.map((e) => e[1]);
  }

  private replaceObject(def: ResourceDef, old: KubeObject, obj: KubeObject, subresource: 'status' | undefined, dryRun = false): KubeObject {
    let next: KubeObject;
    if (subresource === 'status') {
      next = { ...old, metadata: { ...old.metadata } };
      if (obj.status === undefined) delete next.status;
      else next.status = obj.status;
    } else {
      next = obj;
      // The main resource ignores status changes when a status subresource exists.
      if (def.hasStatus) {
        if (old.status === undefined) delete next.status;
        else next.status = old.status;
      }
    }
    next.metadata = { ...next.metadata, uid: old.metadata.uid, creationTimestamp: old.metadata.creationTimestamp, resourceVersion: old.metadata.resourceVersion };
    if (old.metadata.deletionTimestamp) next.metadata.deletionTimestamp = old.metadata.deletionTimestamp;
    const admitted = this.runHooks(def.name, 'UPDATE', next, old);
    this.validate(def, admitted);
    admitted.metadata.resourceVersion = old.metadata.resourceVersion;
    // metadata.generation counts changes of the desired state: everything but metadata and status.
    const desired = (o: KubeObject): unknown => ({ ...o, metadata: undefined, status: undefined, apiVersion: undefined, kind: undefined });
    if (old.metadata.generation !== undefined || admitted.metadata.generation !== undefined) {
      const gen = typeof old.metadata.generation === 'number' ? old.metadata.generation : 1;
      admitted.metadata.generation = isDeepStrictEqual(desired(admitted), desired(old)) ? gen : gen + 1;
    }
    if (dryRun) return admitted;
    // Like etcd's guaranteed update: a write that changes nothing keeps the resourceVersion and emits nothing.
    if (isDeepStrictEqual(admitted, old)) return old;
    return this.commit(def, storeKey(def, old.metadata.namespace, old.metadata.name!), 'MODIFIED', admitted, old);
  }

  private commit(def: ResourceDef, key: string, type: EventType, obj: KubeObject, previous: KubeObject | undefined): KubeObject {
    const rv = ++this.rev;
    obj.metadata.resourceVersion = String(rv);
    if (type === 'DELETED') this.map(def.name).delete(key);
    else this.map(def.name).set(key, obj);
    const e: StoreEvent = previous ? { rv, resource: def.name, type, object: obj, previous } : { rv, resource: def.name, type, object: obj };
    this.history.append(e);
    for (const l of this.listeners) l(e);
    return obj;
  }

  private runHooks(resource: ResourceName, op: AdmitOp, obj: KubeObject, old: KubeObject | undefined): KubeObject {
    let cur = obj;
    for (const fn of this.hooks.get(resource) ?? []) {
      const r = fn(op, cur, old);
      if (r !== undefined) cur = r;
    }
    return cur;
  }

  private getRef(resource: ResourceName, name: string, namespace?: string): KubeObject {
    const def = RESOURCES[resource];
    const o = this.map(resource).get(storeKey(def, this.namespaceFor(def, namespace), name));
    if (!o) throw notFound(resource, name, def.group);
    return o;
  }

  private namespaceFor(def: ResourceDef, namespace: string | undefined): string | undefined {
    return def.namespaced ? namespace || 'default' : undefined;
  }

  private map(resource: ResourceName): Map<string, KubeObject> {
    return this.objects.get(resource)!;
  }

  /** Fills apiVersion/kind and the namespace, and rejects a body that names another kind or namespace. */
  private normalise(def: ResourceDef, obj: KubeObject, namespace: string | undefined): KubeObject {
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new ApiError(400, 'BadRequest', 'the body must be a JSON object');
    if (obj.kind !== undefined && obj.kind !== def.kind) throw new ApiError(400, 'BadRequest', `the body is a ${String(obj.kind)}, not a ${def.kind}`);
    if (obj.metadata === undefined) obj.metadata = {};
    if (typeof obj.metadata !== 'object' || obj.metadata === null) throw invalid(def.kind, '', 'metadata', 'must be an object');
    obj.apiVersion = apiVersionOf(def);
    obj.kind = def.kind;
    if (def.namespaced) {
      const ns = obj.metadata.namespace;
      if (ns && namespace && ns !== namespace) {
        throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      }
      obj.metadata.namespace = ns || namespace || 'default';
    } else delete obj.metadata.namespace;
    return obj;
  }

  private validate(def: ResourceDef, obj: KubeObject): void {
    const { name, namespace, labels, annotations } = obj.metadata;
    if (typeof name !== 'string' || name === '') throw invalid(def.kind, '', 'metadata.name', 'Required value');
    const [re, max, what] = def.name === 'services' ? [DNS_1035, 63, 'a DNS-1035 label'] : def.name === 'namespaces' ? [DNS_LABEL, 63, 'a DNS-1123 label'] : [DNS_SUBDOMAIN, 253, 'a DNS-1123 subdomain'];
    if (!re.test(name) || name.length > max) throw invalid(def.kind, name, 'metadata.name', `Invalid value: "${name}": must be ${what}`);
    if (def.namespaced && (typeof namespace !== 'string' || !DNS_LABEL.test(namespace))) throw invalid(def.kind, name, 'metadata.namespace', 'Invalid value');
    for (const [field, m] of [['metadata.labels', labels], ['metadata.annotations', annotations]] as const) {
      if (m === undefined) continue;
      if (m === null || typeof m !== 'object' || Array.isArray(m) || Object.values(m).some((v) => typeof v !== 'string')) {
        throw invalid(def.kind, name, field, 'must be a map of strings');
      }
    }
    const errs = validatePolicy(def.name, obj);
    if (errs.length) throw invalidFields(def.kind, def.group, name, errs);
  }
}

/** RFC 7386: objects merge key by key, null deletes, anything else (arrays included) replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? (target as Record<string, unknown>) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return s;
}
