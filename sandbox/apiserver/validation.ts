// The cheap part of kube-apiserver's validation of the workload kinds it serves, over HTTP: a Pod
// (and a workload's pod template) needs containers, each with a name (a DNS-1123 label, unique)
// and an image (or, the sandbox's one exception, a command), and ports in range; a Service a
// known type and ports (unless headless or ExternalName), named when several, with known protocols,
// in range; a Deployment, ReplicaSet or DaemonSet needs a non-empty selector that matches its
// template's labels. Errors are 422 Invalid with one cause per field, worded as upstream's.
// On update only errors the stored object did not already have count, so an object created in
// process without, say, containers can still be labelled or patched.
import { invalidFields, type FieldError } from './errors.js';
import type { KubeObject, ResourceDef } from './resources.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_MSG = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const PORT_RANGE = 'must be between 1 and 65535, inclusive';

/** Throws 422 Invalid when `obj` breaks a rule; `old` (on update) excuses errors it already had. */
export function validateObject(def: ResourceDef, obj: KubeObject, old?: KubeObject): void {
  let errs = objectErrors(def, obj);
  if (old && errs.length > 0) {
    const before = new Set(objectErrors(def, old).map((e) => `${e.field}: ${e.detail}`));
    errs = errs.filter((e) => !before.has(`${e.field}: ${e.detail}`));
  }
  if (errs.length > 0) throw invalidFields(def.kind, def.group, obj.metadata.name ?? '', errs);
}

export function objectErrors(def: ResourceDef, obj: KubeObject): FieldError[] {
  const spec = isObj(obj.spec) ? obj.spec : undefined;
  switch (def.kind) {
    case 'Pod':
      return podSpecErrors(spec, 'spec');
    case 'Service':
      return serviceErrors(spec);
    case 'Deployment':
    case 'ReplicaSet':
    case 'DaemonSet':
      return workloadErrors(def.kind.toLowerCase(), spec);
    default:
      return [];
  }
}

const required = (field: string): FieldError => ({ type: 'FieldValueRequired', field, detail: 'Required value' });
const invalid = (field: string, value: string, why: string): FieldError => ({ type: 'FieldValueInvalid', field, detail: `Invalid value: ${value}: ${why}` });

function portErrors(v: unknown, field: string): FieldError[] {
  if (typeof v !== 'number') return [];
  return Number.isInteger(v) && v >= 1 && v <= 65535 ? [] : [invalid(field, String(v), PORT_RANGE)];
}

function podSpecErrors(spec: Obj | undefined, at: string): FieldError[] {
  const containers = spec?.containers;
  if (!Array.isArray(containers) || containers.length === 0) return [required(`${at}.containers`)];
  const errs: FieldError[] = [];
  const seen = new Set<string>();
  containers.forEach((c: unknown, i) => {
    const f = `${at}.containers[${i}]`;
    const ct = isObj(c) ? c : {};
    if (typeof ct.name !== 'string' || ct.name === '') errs.push(required(`${f}.name`));
    else if (!DNS_LABEL.test(ct.name) || ct.name.length > 63) errs.push(invalid(`${f}.name`, JSON.stringify(ct.name), LABEL_MSG));
    else if (seen.has(ct.name)) errs.push({ type: 'FieldValueDuplicate', field: `${f}.name`, detail: `Duplicate value: ${JSON.stringify(ct.name)}` });
    else seen.add(ct.name);
    // Deliberately looser than upstream: the sandbox runs a container's command, so one that
    // names a command needs no image.
    if ((typeof ct.image !== 'string' || ct.image.trim() === '') && !Array.isArray(ct.command)) errs.push(required(`${f}.image`));
    if (Array.isArray(ct.ports)) ct.ports.forEach((p: unknown, j) => errs.push(...portErrors(isObj(p) ? p.containerPort : undefined, `${f}.ports[${j}].containerPort`)));
  });
  return errs;
}

const SERVICE_TYPES = ['ClusterIP', 'ExternalName', 'LoadBalancer', 'NodePort'];
const PROTOCOLS = ['SCTP', 'TCP', 'UDP'];
const unsupported = (field: string, value: unknown, supported: readonly string[]): FieldError => ({
  type: 'FieldValueNotSupported',
  field,
  detail: `Unsupported value: ${JSON.stringify(value)}: supported values: ${supported.map((v) => JSON.stringify(v)).join(', ')}`,
});

function serviceErrors(spec: Obj | undefined): FieldError[] {
  const s = spec ?? {};
  const errs: FieldError[] = [];
  if (typeof s.type === 'string' && !SERVICE_TYPES.includes(s.type)) errs.push(unsupported('spec.type', s.type, SERVICE_TYPES));
  const ports = Array.isArray(s.ports) ? s.ports : [];
  const headless = s.clusterIP === 'None';
  if (ports.length === 0) return s.type === 'ExternalName' || headless ? errs : [...errs, required('spec.ports')];
  const names = new Set<string>();
  ports.forEach((p: unknown, i) => {
    const port = isObj(p) ? p : {};
    // Several ports must each be named, uniquely (EndpointSlices and SRV records key on the name).
    if (ports.length > 1 && (typeof port.name !== 'string' || port.name === '')) errs.push(required(`spec.ports[${i}].name`));
    else if (typeof port.name === 'string' && port.name !== '' && names.has(port.name)) errs.push({ type: 'FieldValueDuplicate', field: `spec.ports[${i}].name`, detail: `Duplicate value: ${JSON.stringify(port.name)}` });
    if (typeof port.name === 'string') names.add(port.name);
    if (typeof port.protocol === 'string' && !PROTOCOLS.includes(port.protocol)) errs.push(unsupported(`spec.ports[${i}].protocol`, port.protocol, PROTOCOLS));
    if (port.port === undefined) errs.push(required(`spec.ports[${i}].port`));
    else errs.push(...portErrors(port.port, `spec.ports[${i}].port`));
    errs.push(...portErrors(port.targetPort, `spec.ports[${i}].targetPort`));
  });
  return errs;
}

function workloadErrors(what: string, spec: Obj | undefined): FieldError[] {
  const s = spec ?? {};
  const errs: FieldError[] = [];
  const selector = isObj(s.selector) ? s.selector : undefined;
  const template = isObj(s.template) ? s.template : {};
  const labels = isObj(template.metadata) && isObj(template.metadata.labels) ? (template.metadata.labels as Record<string, string>) : {};
  if (!selector) errs.push(required('spec.selector'));
  else if (!hasTerms(selector)) errs.push(invalid('spec.selector', goSelector(selector), `empty selector is invalid for ${what}`));
  else if (!selects(selector, labels)) errs.push(invalid('spec.template.metadata.labels', goMap(labels), '`selector` does not match template `labels`'));
  if (typeof s.replicas === 'number' && s.replicas < 0) errs.push(invalid('spec.replicas', String(s.replicas), 'must be greater than or equal to 0'));
  errs.push(...podSpecErrors(isObj(template.spec) ? template.spec : undefined, 'spec.template.spec'));
  return errs;
}

function hasTerms(sel: Obj): boolean {
  const ml = isObj(sel.matchLabels) ? Object.keys(sel.matchLabels).length : 0;
  const me = Array.isArray(sel.matchExpressions) ? sel.matchExpressions.length : 0;
  return ml + me > 0;
}

/** metav1.LabelSelector semantics: every matchLabels pair and every expression must hold. */
function selects(sel: Obj, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(isObj(sel.matchLabels) ? sel.matchLabels : {})) if (labels[k] !== v) return false;
  for (const e of Array.isArray(sel.matchExpressions) ? sel.matchExpressions : []) {
    if (!isObj(e) || typeof e.key !== 'string') return false;
    const values = Array.isArray(e.values) ? e.values : [];
    const has = Object.hasOwn(labels, e.key);
    const ok = e.operator === 'In' ? has && values.includes(labels[e.key]) : e.operator === 'NotIn' ? !has || !values.includes(labels[e.key]) : e.operator === 'Exists' ? has : e.operator === 'DoesNotExist' ? !has : false;
    if (!ok) return false;
  }
  return true;
}

/** Go's %#v of a map[string]string, keys sorted, as the real message prints the labels. */
function goMap(m: Record<string, string>): string {
  const keys = Object.keys(m).sort();
  return keys.length === 0 ? 'map[string]string(nil)' : `map[string]string{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(m[k])}`).join(', ')}}`;
}

function goSelector(sel: Obj): string {
  const ml = isObj(sel.matchLabels) ? goMap(sel.matchLabels as Record<string, string>) : 'map[string]string(nil)';
  return `v1.LabelSelector{MatchLabels:${ml}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}`;
}
