// Request bodies in Kubernetes' protobuf encoding, which typed clients send for built-in kinds
// (`kubectl create namespace|deployment|service|configmap|secret|serviceaccount`): the "k8s\0" magic, a runtime.Unknown envelope
// naming apiVersion and kind, and the object's message. Decoded by field number for the kinds and
// fields `kubectl create` fills; a field this table does not know, if it carries a value, is a 415
// naming it rather than a silent loss. Empty strings, zeros and empty messages are "unset", as in
// the JSON a client would send (fields marked keepZero are pointers: 0 is a value).
import { ApiError } from './errors.js';

type Scalar = 'string' | 'int' | 'bool' | 'intOrString' | 'time' | 'map' | 'bytesMap' | 'quantityMap';
interface Field {
  readonly name: string;
  readonly type: Scalar | Schema;
  readonly repeated?: boolean;
  readonly keepZero?: boolean;
}
interface Schema {
  readonly what: string;
  readonly fields: Readonly<Record<number, Field>>;
}

const s = (what: string, fields: Record<number, Field>): Schema => ({ what, fields });
const f = (name: string, type: Field['type'], extra: Partial<Field> = {}): Field => ({ name, type, ...extra });

const objectMeta = s('ObjectMeta', {
  1: f('name', 'string'), 2: f('generateName', 'string'), 3: f('namespace', 'string'), 4: f('selfLink', 'string'),
  5: f('uid', 'string'), 6: f('resourceVersion', 'string'), 7: f('generation', 'int'), 8: f('creationTimestamp', 'time'),
  9: f('deletionTimestamp', 'time'), 11: f('labels', 'map'), 12: f('annotations', 'map'), 14: f('finalizers', 'string', { repeated: true }),
});
const labelSelector = s('LabelSelector', {
  1: f('matchLabels', 'map'),
  2: f('matchExpressions', s('LabelSelectorRequirement', { 1: f('key', 'string'), 2: f('operator', 'string'), 3: f('values', 'string', { repeated: true }) }), { repeated: true }),
});
const container = s('Container', {
  1: f('name', 'string'), 2: f('image', 'string'), 3: f('command', 'string', { repeated: true }), 4: f('args', 'string', { repeated: true }),
  5: f('workingDir', 'string'),
  6: f('ports', s('ContainerPort', { 1: f('name', 'string'), 2: f('hostPort', 'int'), 3: f('containerPort', 'int'), 4: f('protocol', 'string'), 5: f('hostIP', 'string') }), { repeated: true }),
  7: f('env', s('EnvVar', { 1: f('name', 'string'), 2: f('value', 'string') }), { repeated: true }),
  8: f('resources', s('ResourceRequirements', { 1: f('limits', 'quantityMap'), 2: f('requests', 'quantityMap') })),
  13: f('terminationMessagePath', 'string'), 14: f('imagePullPolicy', 'string'), 16: f('stdin', 'bool'), 17: f('stdinOnce', 'bool'),
  18: f('tty', 'bool'), 20: f('terminationMessagePolicy', 'string'),
});
const podSpec = s('PodSpec', {
  2: f('containers', container, { repeated: true }), 3: f('restartPolicy', 'string'), 4: f('terminationGracePeriodSeconds', 'int', { keepZero: true }),
  6: f('dnsPolicy', 'string'), 7: f('nodeSelector', 'map'), 8: f('serviceAccountName', 'string'), 9: f('serviceAccount', 'string'),
  10: f('nodeName', 'string'), 11: f('hostNetwork', 'bool'), 12: f('hostPID', 'bool'), 13: f('hostIPC', 'bool'),
  16: f('hostname', 'string'), 17: f('subdomain', 'string'), 19: f('schedulerName', 'string'), 20: f('initContainers', container, { repeated: true }),
});
const intOrStringPair = s('RollingUpdateDeployment', { 1: f('maxUnavailable', 'intOrString'), 2: f('maxSurge', 'intOrString') });
const deployment = s('Deployment', {
  1: f('metadata', objectMeta),
  2: f('spec', s('DeploymentSpec', {
    1: f('replicas', 'int', { keepZero: true }), 2: f('selector', labelSelector),
    3: f('template', s('PodTemplateSpec', { 1: f('metadata', objectMeta), 2: f('spec', podSpec) })),
    4: f('strategy', s('DeploymentStrategy', { 1: f('type', 'string'), 2: f('rollingUpdate', intOrStringPair) })),
    5: f('minReadySeconds', 'int'), 6: f('revisionHistoryLimit', 'int', { keepZero: true }), 7: f('paused', 'bool'), 9: f('progressDeadlineSeconds', 'int', { keepZero: true }),
  })),
});
const service = s('Service', {
  1: f('metadata', objectMeta),
  2: f('spec', s('ServiceSpec', {
    1: f('ports', s('ServicePort', { 1: f('name', 'string'), 2: f('protocol', 'string'), 3: f('port', 'int'), 4: f('targetPort', 'intOrString'), 5: f('nodePort', 'int'), 6: f('appProtocol', 'string') }), { repeated: true }),
    2: f('selector', 'map'), 3: f('clusterIP', 'string'), 4: f('type', 'string'), 5: f('externalIPs', 'string', { repeated: true }),
    7: f('sessionAffinity', 'string'), 8: f('loadBalancerIP', 'string'), 9: f('loadBalancerSourceRanges', 'string', { repeated: true }),
    10: f('externalName', 'string'), 11: f('externalTrafficPolicy', 'string'), 12: f('healthCheckNodePort', 'int'), 13: f('publishNotReadyAddresses', 'bool'),
  })),
});
const namespace = s('Namespace', { 1: f('metadata', objectMeta), 2: f('spec', s('NamespaceSpec', { 1: f('finalizers', 'string', { repeated: true }) })) });
const pod = s('Pod', { 1: f('metadata', objectMeta), 2: f('spec', podSpec) });
const configMap = s('ConfigMap', { 1: f('metadata', objectMeta), 2: f('data', 'map'), 3: f('binaryData', 'bytesMap'), 4: f('immutable', 'bool') });
const secret = s('Secret', { 1: f('metadata', objectMeta), 2: f('data', 'bytesMap'), 3: f('type', 'string'), 4: f('stringData', 'map'), 5: f('immutable', 'bool') });
const objectReference = s('ObjectReference', { 1: f('kind', 'string'), 2: f('namespace', 'string'), 3: f('name', 'string'), 4: f('uid', 'string'), 5: f('apiVersion', 'string'), 6: f('resourceVersion', 'string'), 7: f('fieldPath', 'string') });
const serviceAccount = s('ServiceAccount', {
  1: f('metadata', objectMeta), 2: f('secrets', objectReference, { repeated: true }), 3: f('imagePullSecrets', s('LocalObjectReference', { 1: f('name', 'string') }), { repeated: true }),
  4: f('automountServiceAccountToken', 'bool', { keepZero: true }),
});

/** Root messages by apiVersion/kind; `status`: field 3 is the status, which no create or update reads. */
const KINDS: Readonly<Record<string, { schema: Schema; status: boolean }>> = {
  'v1/Namespace': { schema: namespace, status: true },
  'apps/v1/Deployment': { schema: deployment, status: true },
  'v1/Service': { schema: service, status: true },
  'v1/Pod': { schema: pod, status: true },
  'v1/ConfigMap': { schema: configMap, status: false },
  'v1/Secret': { schema: secret, status: false },
  'v1/ServiceAccount': { schema: serviceAccount, status: false },
};

export function isProtobuf(contentType: string | undefined): boolean {
  return /^application\/vnd\.kubernetes\.protobuf\b/.test(contentType ?? '');
}

class Reader {
  o = 0;
  constructor(readonly b: Buffer) {}
  get done(): boolean {
    return this.o >= this.b.length;
  }
  varint(): bigint {
    let r = 0n;
    let shift = 0n;
    for (;;) {
      if (this.o >= this.b.length) throw unsupported('a truncated varint');
      const x = this.b[this.o++]!;
      r |= BigInt(x & 0x7f) << shift;
      if (!(x & 0x80)) return r;
      shift += 7n;
    }
  }
  bytes(): Buffer {
    const n = Number(this.varint());
    if (this.o + n > this.b.length) throw unsupported('a truncated field');
    const out = this.b.subarray(this.o, this.o + n);
    this.o += n;
    return out;
  }
  /** Each field as [number, wire type, value]: a bigint for varints, a Buffer for length-delimited. */
  *fields(): Generator<[number, number, bigint | Buffer]> {
    while (!this.done) {
      const key = this.varint();
      const n = Number(key >> 3n);
      const wire = Number(key & 7n);
      if (wire === 0) yield [n, wire, this.varint()];
      else if (wire === 2) yield [n, wire, this.bytes()];
      else if (wire === 1 || wire === 5) {
        this.o += wire === 1 ? 8 : 4;
        yield [n, wire, 0n];
      } else throw unsupported(`wire type ${wire}`);
    }
  }
}

function unsupported(what: string): ApiError {
  return new ApiError(415, 'UnsupportedMediaType', `the sandbox API server cannot decode this protobuf body (${what}); send the object as JSON (kubectl apply -f, or kubectl create ... --dry-run=client -o yaml | kubectl apply -f -)`);
}

const isEmpty = (v: unknown): boolean => v === undefined || v === '' || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);

/** map<string, string>, or map<string, bytes> as JSON carries it (base64). */
function decodeMap(entries: Buffer[], bytes = false): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    let k = '';
    let v = '';
    for (const [n, , val] of new Reader(e).fields()) {
      if (n === 1) k = (val as Buffer).toString('utf8');
      if (n === 2) v = (val as Buffer).toString(bytes ? 'base64' : 'utf8');
    }
    out[k] = v;
  }
  return out;
}

function decodeQuantityMap(entries: Buffer[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    let k = '';
    let v = '';
    for (const [n, , val] of new Reader(e).fields()) {
      if (n === 1) k = (val as Buffer).toString('utf8');
      if (n === 2) for (const [qn, , q] of new Reader(val as Buffer).fields()) if (qn === 1) v = (q as Buffer).toString('utf8');
    }
    out[k] = v;
  }
  return out;
}

function decodeIntOrString(b: Buffer): number | string | undefined {
  let type = 0n;
  let i = 0n;
  let str = '';
  for (const [n, , v] of new Reader(b).fields()) {
    if (n === 1) type = v as bigint;
    if (n === 2) i = v as bigint;
    if (n === 3) str = (v as Buffer).toString('utf8');
  }
  return type === 1n ? str : Number(BigInt.asIntN(32, i));
}

function decodeMessage(b: Buffer, schema: Schema, path: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const repeated = new Map<number, unknown[]>();
  const mapEntries = new Map<number, Buffer[]>();
  for (const [n, wire, v] of new Reader(b).fields()) {
    const field = schema.fields[n];
    if (!field) {
      // An unknown field is acceptable only when it carries nothing (gogo encodes empty values too).
      if ((wire === 2 && (v as Buffer).length > 0) || (wire === 0 && v !== 0n)) throw unsupported(`field ${n} of ${schema.what} at ${path || '.'}`);
      continue;
    }
    const at = `${path}.${field.name}`;
    let value: unknown;
    if (field.type === 'map' || field.type === 'bytesMap' || field.type === 'quantityMap') {
      mapEntries.set(n, [...(mapEntries.get(n) ?? []), v as Buffer]);
      continue;
    } else if (field.type === 'string') value = (v as Buffer).toString('utf8');
    else if (field.type === 'int') value = Number(BigInt.asIntN(64, v as bigint));
    else if (field.type === 'bool') value = v !== 0n;
    else if (field.type === 'intOrString') value = decodeIntOrString(v as Buffer);
    else if (field.type === 'time') value = undefined; // creation/deletion times are the server's
    else value = decodeMessage(v as Buffer, field.type, at);
    if (field.repeated) repeated.set(n, [...(repeated.get(n) ?? []), value]);
    else if (field.keepZero ? value !== undefined : !isEmpty(value) && value !== 0 && value !== false) out[field.name] = value;
  }
  for (const [n, list] of repeated) out[schema.fields[n]!.name] = list;
  for (const [n, entries] of mapEntries) {
    const field = schema.fields[n]!;
    const m = field.type === 'quantityMap' ? decodeQuantityMap(entries) : decodeMap(entries, field.type === 'bytesMap');
    if (!isEmpty(m)) out[field.name] = m;
  }
  return out;
}

/** The JSON object a protobuf request body encodes. */
export function decodeProtobufObject(body: Buffer): Record<string, unknown> {
  if (body.length < 4 || body.subarray(0, 4).toString('latin1') !== 'k8s\0') throw unsupported('no k8s protobuf envelope');
  let apiVersion = '';
  let kind = '';
  let raw: Buffer | undefined;
  for (const [n, , v] of new Reader(body.subarray(4)).fields()) {
    if (n === 1) {
      for (const [tn, , tv] of new Reader(v as Buffer).fields()) {
        if (tn === 1) apiVersion = (tv as Buffer).toString('utf8');
        if (tn === 2) kind = (tv as Buffer).toString('utf8');
      }
    } else if (n === 2) raw = v as Buffer;
    else if (n === 3 && (v as Buffer).length > 0) throw unsupported(`content encoding ${(v as Buffer).toString('utf8')}`);
  }
  const root = KINDS[`${apiVersion}/${kind}`];
  if (!root || !raw) throw unsupported(`kind ${apiVersion}/${kind}`);
  return { apiVersion, kind, ...(root.status ? decodeMessageIgnoringStatus(raw, root.schema) : decodeMessage(raw, root.schema, '')) };
}

function decodeMessageIgnoringStatus(raw: Buffer, schema: Schema): Record<string, unknown> {
  const statusless: Buffer[] = [];
  const r = new Reader(raw);
  let start = 0;
  // The root's field 3 is its status, which no create or update reads: dropped before decoding.
  while (!r.done) {
    const fieldStart = r.o;
    const key = r.varint();
    const n = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) r.varint();
    else if (wire === 2) r.bytes();
    else throw unsupported(`wire type ${wire}`);
    if (n === 3) {
      statusless.push(raw.subarray(start, fieldStart));
      start = r.o;
    }
  }
  statusless.push(raw.subarray(start));
  return decodeMessage(Buffer.concat(statusless), schema, '');
}
