// OpenAPI documents generated from schema.ts: v2 (/openapi/v2, JSON or protobuf) and v3 (/openapi/v3 index plus
// one document per group version). They carry what kubectl reads: x-kubernetes-group-version-kind
// to find a kind, the list and patch extensions (strategic merge patch keys, list-map keys for
// server-side apply), and on every PATCH operation the fieldValidation parameter, which tells
// kubectl to leave validation to this server (fieldValidation=Strict) instead of downloading v2.
import { createHash } from 'node:crypto';
import { groupVersions, singularOf } from './discovery.js';
import { encodeOpenApiV2 } from './openapi-proto.js';
import { RESOURCES, RESOURCE_NAMES, type ResourceDef } from './resources.js';
import { STRUCTS, kindStruct, type Node, type Struct } from './schema.js';

type Json = Record<string, unknown>;
type Flavour = 'v2' | 'v3';

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const INT_OR_STRING = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString';
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';
const TIME = `${META}.Time`;
const PATCH = `${META}.Patch`;
const STATUS = `${META}.Status`;
const LIST_META = `${META}.ListMeta`;
const DELETE_OPTIONS = `${META}.DeleteOptions`;

/** Definitions that are not structs of schema.ts: scalars with a format, and the protocol's own types. */
const FIXED: Readonly<Record<string, Json>> = {
  [INT_OR_STRING]: { description: 'An int32 or a string, e.g. a port number or a port name.', type: 'string', format: 'int-or-string' },
  [QUANTITY]: { description: 'A fixed-point number with a suffix, e.g. 100m or 64Mi.', type: 'string' },
  [TIME]: { description: 'A timestamp in RFC 3339 form with second precision.', type: 'string', format: 'date-time' },
  [PATCH]: { description: 'The body of a PATCH request, in the format its Content-Type names.', type: 'object' },
  [LIST_META]: {
    description: 'Metadata of a list.',
    type: 'object',
    properties: {
      resourceVersion: { description: 'The store revision the list was read at.', type: 'string' },
      continue: { description: 'Token for the next page.', type: 'string' },
      remainingItemCount: { description: 'Items left after this page.', type: 'integer', format: 'int64' },
      selfLink: { description: 'Deprecated.', type: 'string' },
    },
  },
  [STATUS]: {
    description: 'The result of an operation that returns no object, or an error.',
    type: 'object',
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      status: { description: 'Success or Failure.', type: 'string' },
      message: { type: 'string' },
      reason: { type: 'string' },
      code: { type: 'integer', format: 'int32' },
      details: { type: 'object' },
    },
  },
  [DELETE_OPTIONS]: {
    description: 'Options of a DELETE request.',
    type: 'object',
    properties: {
      gracePeriodSeconds: { type: 'integer', format: 'int64' },
      propagationPolicy: { description: 'Orphan, Background or Foreground.', type: 'string' },
      dryRun: { type: 'array', items: { type: 'string' } },
      preconditions: { type: 'object' },
    },
  },
};

const refTo = (f: Flavour, name: string): Json => ({ $ref: f === 'v2' ? `#/definitions/${name}` : `#/components/schemas/${name}` });

function convert(f: Flavour, node: Node, used: Set<string>): Json {
  switch (node.kind) {
    case 'any':
      return f === 'v3' ? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } : { type: 'object' };
    case 'prim':
      switch (node.type) {
        case 'string':
          return { type: 'string' };
        case 'integer':
          return { type: 'integer', format: 'int32' };
        case 'int64':
          return { type: 'integer', format: 'int64' };
        case 'number':
          return { type: 'number', format: 'double' };
        case 'boolean':
          return { type: 'boolean' };
        default: {
          const name = node.type === 'time' ? TIME : node.type === 'quantity' ? QUANTITY : INT_OR_STRING;
          used.add(name);
          return refTo(f, name);
        }
      }
    case 'ref':
      used.add(node.name);
      return refTo(f, node.name);
    case 'map':
      return { type: 'object', additionalProperties: convert(f, node.values, used) };
    case 'list': {
      const out: Json = { type: 'array', items: convert(f, node.items, used), 'x-kubernetes-list-type': node.listType };
      if (node.listType === 'map') {
        out['x-kubernetes-list-map-keys'] = node.keys;
        out['x-kubernetes-patch-merge-key'] = node.keys[0];
        out['x-kubernetes-patch-strategy'] = node.retainKeys ? 'merge,retainKeys' : 'merge';
      } else if (node.listType === 'set') out['x-kubernetes-patch-strategy'] = 'merge';
      return out;
    }
  }
}

/** A property: v3 ignores siblings of $ref, so references are wrapped in allOf as kube-apiserver does. */
function property(f: Flavour, node: Node, description: string, used: Set<string>): Json {
  const s = convert(f, node, used);
  if (s.$ref && f === 'v3') return { allOf: [s], ...(description && { description }), ...(node.kind === 'ref' && { default: {} }) };
  return { ...s, ...(description && { description }) };
}

function structSchema(f: Flavour, s: Struct, used: Set<string>): Json {
  const properties: Json = {};
  for (const [name, field] of s.fields) properties[name] = property(f, field.node, field.description, used);
  return {
    description: s.description,
    type: 'object',
    ...(s.required.length > 0 && { required: s.required }),
    properties,
    ...(s.gvk && { 'x-kubernetes-group-version-kind': [s.gvk] }),
  };
}

/** What a custom resource's spec and status are to a client here: objects of any content. */
const FREE_OBJECT: Json = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };

/**
 * A kind the table serves but schema.ts does not describe (the policy kinds, CRDs in a real
 * cluster): any content is accepted. spec and status are listed, as a CRD's schema lists them:
 * kubectl's client-side validation (OpenAPI v2) calls a field the schema does not list unknown.
 */
function freeKind(def: ResourceDef): Json {
  return {
    description: `${def.kind} (no schema: any fields are accepted).`,
    type: 'object',
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: property('v3', { kind: 'ref', name: `${META}.ObjectMeta` }, "Standard object's metadata.", new Set()),
      spec: FREE_OBJECT,
      status: FREE_OBJECT,
    },
    'x-kubernetes-preserve-unknown-fields': true,
    'x-kubernetes-group-version-kind': [{ group: def.group, version: def.version, kind: def.kind }],
  };
}

const kindName = (def: ResourceDef): string => kindStruct(def.group, def.kind)?.name ?? `io.skiff.sandbox.${def.group || 'core'}.${def.version}.${def.kind}`;
const listName = (def: ResourceDef): string => `${kindName(def)}List`;

function param(f: Flavour, name: string, inWhere: 'query' | 'path', type: 'string' | 'boolean' | 'integer', description: string): Json {
  const base = { name, in: inWhere, description, ...(inWhere === 'path' && { required: true }), ...(name === 'pretty' ? {} : {}) };
  return f === 'v2' ? { ...base, type, uniqueItems: true } : { ...base, schema: { type, uniqueItems: true } };
}

const WRITE_PARAMS: readonly [string, 'string' | 'boolean', string][] = [
  ['dryRun', 'string', 'All: validate and admit, but persist nothing.'],
  ['fieldManager', 'string', 'Name of the actor making the change (server-side apply field ownership).'],
  ['fieldValidation', 'string', 'Ignore, Warn or Strict: what to do with unknown fields.'],
];
const LIST_PARAMS: readonly [string, 'string' | 'boolean' | 'integer', string][] = [
  ['labelSelector', 'string', 'Only objects with these labels.'],
  ['fieldSelector', 'string', 'Only objects with these fields.'],
  ['limit', 'integer', 'Page size.'],
  ['continue', 'string', 'Token of the next page.'],
  ['resourceVersion', 'string', 'Read at or watch from this version.'],
  ['timeoutSeconds', 'integer', 'Timeout of a watch.'],
  ['watch', 'boolean', 'Watch for changes instead of listing.'],
  ['allowWatchBookmarks', 'boolean', 'Send BOOKMARK events.'],
];
const PATCH_TYPES = ['application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'];
/** Kinds without a schema are served like custom resources: no strategic merge patch. */
const patchTypes = (def: ResourceDef): string[] => (kindStruct(def.group, def.kind) ? PATCH_TYPES : PATCH_TYPES.filter((t) => !t.includes('strategic')));

function operation(f: Flavour, def: ResourceDef, action: string, verb: string, opts: { body?: string; bodyTypes?: string[]; response: string; params?: Json[]; sub?: string }): Json {
  const gvk = { group: def.group, version: def.version, kind: def.kind };
  const op: Json = {
    description: `${verb} ${opts.sub ? `${opts.sub} of ` : ''}${def.kind}`,
    operationId: `${action}${def.group ? def.group.split('.')[0] : 'Core'}${def.version}${def.kind}${opts.sub ? 'Status' : ''}`,
    tags: [def.group ? `${def.group.split('.')[0]}_${def.version}` : `core_${def.version}`],
    parameters: opts.params ?? [],
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': gvk,
  };
  if (f === 'v2') {
    op.consumes = opts.bodyTypes ?? ['*/*'];
    op.produces = ['application/json', 'application/yaml'];
    op.responses = { '200': { description: 'OK', schema: refTo(f, opts.response) }, '401': { description: 'Unauthorized' } };
    if (opts.body) (op.parameters as Json[]).unshift({ name: 'body', in: 'body', required: true, schema: refTo(f, opts.body) });
  } else {
    op.responses = { '200': { description: 'OK', content: { 'application/json': { schema: refTo(f, opts.response) }, 'application/yaml': { schema: refTo(f, opts.response) } } }, '401': { description: 'Unauthorized' } };
    if (opts.body) op.requestBody = { content: Object.fromEntries((opts.bodyTypes ?? ['*/*']).map((t) => [t, { schema: refTo(f, opts.body!) }])), required: true };
  }
  return op;
}

function paths(f: Flavour, def: ResourceDef, used: Set<string>): Json {
  const prefix = def.group ? `/apis/${def.group}/${def.version}` : `/api/${def.version}`;
  const ns = def.namespaced ? '/namespaces/{namespace}' : '';
  const kind = kindName(def);
  const list = listName(def);
  used.add(kind).add(list).add(PATCH).add(STATUS).add(DELETE_OPTIONS);
  const write = WRITE_PARAMS.map(([n, t, d]) => param(f, n, 'query', t, d));
  const listParams = LIST_PARAMS.map(([n, t, d]) => param(f, n, 'query', t, d));
  const common = [param(f, 'pretty', 'query', 'string', 'Pretty-print the output.'), ...(def.namespaced ? [param(f, 'namespace', 'path', 'string', 'Object name and auth scope.')] : [])];
  const named = [param(f, 'name', 'path', 'string', `Name of the ${singularOf(def)}.`), ...common];
  const out: Json = {
    [`${prefix}${ns}/${def.name}`]: {
      parameters: common,
      get: operation(f, def, 'list', 'list or watch', { response: list, params: listParams }),
      post: operation(f, def, 'post', 'create', { body: kind, response: kind, params: write }),
    },
    [`${prefix}${ns}/${def.name}/{name}`]: {
      parameters: named,
      get: operation(f, def, 'get', 'read', { response: kind }),
      put: operation(f, def, 'put', 'replace', { body: kind, response: kind, params: write }),
      patch: operation(f, def, 'patch', 'partially update', { body: PATCH, bodyTypes: patchTypes(def), response: kind, params: [...write, param(f, 'force', 'query', 'boolean', 'Apply: take over fields other managers own.')] }),
      delete: operation(f, def, 'delete', 'delete', { body: DELETE_OPTIONS, response: STATUS, params: [param(f, 'gracePeriodSeconds', 'query', 'integer', 'Seconds before the object is deleted.'), param(f, 'propagationPolicy', 'query', 'string', 'Orphan, Background or Foreground.'), param(f, 'dryRun', 'query', 'string', 'All: persist nothing.')] }),
    },
  };
  if (def.namespaced) out[`${prefix}/${def.name}`] = { get: operation(f, def, 'list', 'list or watch across namespaces', { response: list, params: listParams }) };
  if (def.hasStatus) {
    out[`${prefix}${ns}/${def.name}/{name}/status`] = {
      parameters: named,
      get: operation(f, def, 'get', 'read', { response: kind, sub: 'status' }),
      put: operation(f, def, 'put', 'replace', { body: kind, response: kind, params: write, sub: 'status' }),
      patch: operation(f, def, 'patch', 'partially update', { body: PATCH, bodyTypes: patchTypes(def), response: kind, params: [...write, param(f, 'force', 'query', 'boolean', 'Apply: take over fields.')], sub: 'status' }),
    };
  }
  return out;
}

/** Every definition reachable from `roots`, converted. */
function definitions(f: Flavour, defs: readonly ResourceDef[], used: Set<string>): Json {
  const out: Json = {};
  for (const def of defs) {
    const s = kindStruct(def.group, def.kind);
    const kind = kindName(def);
    out[kind] = s ? structSchema(f, s, used) : freeKind(def);
    out[listName(def)] = {
      description: `A list of ${def.kind} objects.`,
      type: 'object',
      required: ['items'],
      properties: {
        apiVersion: { type: 'string' },
        kind: { type: 'string' },
        metadata: property(f, { kind: 'ref', name: LIST_META }, 'Standard list metadata.', used),
        items: { type: 'array', items: refTo(f, kind) },
      },
      'x-kubernetes-group-version-kind': [{ group: def.group, version: def.version, kind: `${def.kind}List` }],
    };
    used.add(`${META}.ObjectMeta`);
  }
  // Close over references: converting a struct may reference more.
  const done = new Set(Object.keys(out));
  let pending = [...used].filter((n) => !done.has(n));
  while (pending.length > 0) {
    for (const name of pending) {
      done.add(name);
      const s = STRUCTS.get(name);
      if (s) out[name] = structSchema(f, s, used);
      else if (FIXED[name]) out[name] = FIXED[name];
    }
    pending = [...used].filter((n) => !done.has(n));
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const INFO = { title: 'Kubernetes', version: 'v1.32.0' };

export function openApiV2(): Json {
  const defs = RESOURCE_NAMES.map((r) => RESOURCES[r]);
  const used = new Set<string>();
  const p: Json = {};
  for (const d of defs) Object.assign(p, paths('v2', d, used));
  return { swagger: '2.0', info: INFO, paths: p, definitions: definitions('v2', defs, used) };
}

/** The v3 document of one group version ('' is core), or undefined when this server has none. */
export function openApiV3(group: string, version: string): Json | undefined {
  const defs = RESOURCE_NAMES.map((r) => RESOURCES[r]).filter((d) => d.group === group && d.version === version);
  if (defs.length === 0) return undefined;
  const used = new Set<string>();
  const p: Json = {};
  for (const d of defs) Object.assign(p, paths('v3', d, used));
  return { openapi: '3.0.0', info: INFO, paths: p, components: { schemas: definitions('v3', defs, used) } };
}

const gvPath = (group: string, version: string): string => (group ? `apis/${group}/${version}` : `api/${version}`);

/** The documents change only with the code, so they are built once and addressed by their hash. */
const cache = new Map<string, { text: string; hash: string }>();
function cached(key: string, build: () => Json | undefined): { text: string; hash: string } | undefined {
  let hit = cache.get(key);
  if (!hit) {
    const doc = build();
    if (!doc) return undefined;
    const text = JSON.stringify(doc);
    hit = { text, hash: createHash('sha512').update(text).digest('hex').toUpperCase() };
    cache.set(key, hit);
  }
  return hit;
}

export interface OpenApiResponse {
  readonly status: number;
  readonly body: string | Buffer;
  readonly contentType: string;
}

// Clients ask for the historical name with '@', which is not a valid media type; the answer is
// labelled with the valid spelling, as kube-openapi does.
const V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';
const V2_PROTOBUF_ASKED = new Set([V2_PROTOBUF, 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf']);
let v2Proto: Buffer | undefined;

/** The first of JSON or v2 protobuf the Accept header lists (none given: JSON), else undefined. */
function v2Format(accept: string | undefined): 'json' | 'protobuf' | undefined {
  if (!accept) return 'json';
  for (const part of accept.split(',')) {
    const type = part.split(';')[0]!.trim().toLowerCase();
    if (type === 'application/json' || type === 'application/*' || type === '*/*') return 'json';
    if (V2_PROTOBUF_ASKED.has(type)) return 'protobuf';
  }
  return undefined;
}

/** Serves /openapi/v2 (JSON, or protobuf as kubectl asks) and /openapi/v3[/<gv path>]; undefined for other paths. */
export function serveOpenApi(path: string, accept: string | undefined): OpenApiResponse | undefined {
  const json = (text: string): OpenApiResponse => ({ status: 200, body: text, contentType: 'application/json' });
  if (path === '/openapi/v2') {
    const format = v2Format(accept);
    if (format === 'protobuf') {
      v2Proto ??= encodeOpenApiV2(JSON.parse(cached('v2', openApiV2)!.text) as Json);
      return { status: 200, body: v2Proto, contentType: V2_PROTOBUF };
    }
    if (format === 'json') return json(cached('v2', openApiV2)!.text);
    return { status: 406, body: JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `only application/json and ${V2_PROTOBUF} are served here, not ${accept ?? ''}`, reason: 'NotAcceptable', code: 406 }), contentType: 'application/json' };
  }
  if (path === '/openapi/v3') {
    const index: Json = {};
    for (const [g, vs] of groupVersions()) {
      for (const v of vs) {
        const doc = cached(`v3:${g}/${v}`, () => openApiV3(g, v));
        if (doc) index[gvPath(g, v)] = { serverRelativeURL: `/openapi/v3/${gvPath(g, v)}?hash=${doc.hash}` };
      }
    }
    return json(JSON.stringify({ paths: index }));
  }
  const m = /^\/openapi\/v3\/(?:api\/([^/]+)|apis\/([^/]+)\/([^/]+))$/.exec(path);
  if (!m) return undefined;
  const [group, version] = m[1] !== undefined ? ['', m[1]] : [m[2]!, m[3]!];
  const doc = cached(`v3:${group}/${version}`, () => openApiV3(group, version));
  return doc ? json(doc.text) : undefined;
}
