// Validation of NetworkPolicy (kube-apiserver's ValidateNetworkPolicy rules) and of the
// network-policy-api kinds (their CRD schema and CEL rules), returning field errors worded as the
// real servers word them, so a client sees the same 422 here as on a cluster. Pure.
import { isIP } from 'node:net';
import type { FieldError } from './errors.js';
import type { KubeObject, ResourceName } from './resources.js';

type Json = Record<string, unknown>;
type Errs = FieldError[];

const isObj = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);
const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v) ?? 'null');

const invalid = (errs: Errs, field: string, value: unknown, why: string): void => void errs.push({ type: 'FieldValueInvalid', field, detail: `Invalid value: ${show(value)}: ${why}` });
const required = (errs: Errs, field: string, why = ''): void => void errs.push({ type: 'FieldValueRequired', field, detail: why ? `Required value: ${why}` : 'Required value' });
const forbidden = (errs: Errs, field: string, why: string): void => void errs.push({ type: 'FieldValueForbidden', field, detail: `Forbidden: ${why}` });
function notSupported(errs: Errs, field: string, value: unknown, allowed: readonly string[]): void {
  errs.push({ type: 'FieldValueNotSupported', field, detail: `Unsupported value: ${show(value)}: supported values: ${allowed.map((a) => `"${a}"`).join(', ')}` });
}

/** A list field: undefined when absent, else its items (an error and [] when it is not a list). */
function list(errs: Errs, field: string, v: unknown): unknown[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    invalid(errs, field, v, 'must be a list');
    return [];
  }
  return v;
}

function obj(errs: Errs, field: string, v: unknown): Json | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) {
    invalid(errs, field, v, 'must be an object');
    return undefined;
  }
  return v;
}

// ---- shared pieces: label selectors, ports, CIDRs ----

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function qualifiedName(errs: Errs, field: string, key: string): void {
  const parts = key.split('/');
  const name = parts.length === 2 ? parts[1]! : parts[0]!;
  const prefixOk = parts.length === 1 || (parts.length === 2 && parts[0]!.length <= 253 && DNS_SUBDOMAIN.test(parts[0]!));
  if (parts.length > 2 || !prefixOk || name === '' || name.length > 63 || !LABEL_VALUE.test(name)) {
    invalid(errs, field, key, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/'");
  }
}

export function validateLabelSelector(errs: Errs, field: string, v: unknown): void {
  const sel = obj(errs, field, v);
  if (!sel) return;
  const labels = obj(errs, `${field}.matchLabels`, sel.matchLabels);
  for (const [k, val] of Object.entries(labels ?? {})) {
    qualifiedName(errs, `${field}.matchLabels`, k);
    if (typeof val !== 'string' || val.length > 63 || !LABEL_VALUE.test(val)) {
      invalid(errs, `${field}.matchLabels`, val, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character");
    }
  }
  (list(errs, `${field}.matchExpressions`, sel.matchExpressions) ?? []).forEach((e, i) => {
    const f = `${field}.matchExpressions[${i}]`;
    const r = obj(errs, f, e) ?? {};
    const values = list(errs, `${f}.values`, r.values) ?? [];
    if (r.operator === 'In' || r.operator === 'NotIn') {
      if (values.length === 0) required(errs, `${f}.values`, "must be specified when `operator` is 'In' or 'NotIn'");
    } else if (r.operator === 'Exists' || r.operator === 'DoesNotExist') {
      if (values.length > 0) forbidden(errs, `${f}.values`, "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
    } else invalid(errs, `${f}.operator`, r.operator ?? '', 'not a valid selector operator');
    if (typeof r.key !== 'string') required(errs, `${f}.key`);
    else qualifiedName(errs, `${f}.key`, r.key);
  });
}

const PORT_RANGE = 'must be between 1 and 65535, inclusive';
const validPortNumber = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;

/** IANA service name rules (IsValidPortName); returns the first violation. */
export function portNameProblem(name: string): string | undefined {
  if (name.length < 1 || name.length > 15) return 'must be no more than 15 characters';
  if (!/^[-a-z0-9]+$/.test(name)) return 'must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)';
  if (!/[a-z]/.test(name)) return 'must contain at least one letter (a-z)';
  if (name.includes('--')) return 'must not contain consecutive hyphens';
  if (name.startsWith('-') || name.endsWith('-')) return 'must not begin or end with a hyphen';
  return undefined;
}

interface Cidr {
  readonly bits: 32 | 128;
  readonly addr: bigint;
  readonly len: number;
}

function ipToBig(ip: string): bigint | undefined {
  const v = isIP(ip);
  if (v === 4) return ip.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n);
  if (v !== 6) return undefined;
  let text = ip;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const n = ipToBig(dotted[1]!)!;
    text = text.slice(0, -dotted[1]!.length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n);
}

export function parseCidr(s: string): Cidr | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const addr = ipToBig(m[1]!);
  const bits = isIP(m[1]!) === 4 ? 32 : 128;
  const len = Number(m[2]);
  if (addr === undefined || len > bits) return undefined;
  return { bits, addr, len };
}

const CIDR_WHY = 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)';

function validateIpBlock(errs: Errs, field: string, v: Json): void {
  if (typeof v.cidr !== 'string' || v.cidr === '') return required(errs, `${field}.cidr`);
  const outer = parseCidr(v.cidr);
  if (!outer) invalid(errs, `${field}.cidr`, v.cidr, CIDR_WHY);
  (list(errs, `${field}.except`, v.except) ?? []).forEach((e, i) => {
    const f = `${field}.except[${i}]`;
    const inner = typeof e === 'string' ? parseCidr(e) : undefined;
    if (!inner) return invalid(errs, f, e, CIDR_WHY);
    if (!outer) return;
    const shift = BigInt(outer.bits - outer.len);
    if (inner.bits !== outer.bits || inner.len <= outer.len || inner.addr >> shift !== outer.addr >> shift) invalid(errs, f, e, 'must be a strict subset of `cidr`');
  });
}

// ---- networking.k8s.io/v1 NetworkPolicy ----

const PROTOCOLS = ['SCTP', 'TCP', 'UDP'];

function validateNetpolPort(errs: Errs, field: string, v: unknown): void {
  const p = obj(errs, field, v);
  if (!p) return;
  if (p.protocol !== undefined && !PROTOCOLS.includes(p.protocol as string)) notSupported(errs, `${field}.protocol`, p.protocol, PROTOCOLS);
  const { port, endPort } = p;
  if (endPort !== undefined && endPort !== null && (typeof endPort !== 'number' || !Number.isInteger(endPort))) return invalid(errs, `${field}.endPort`, endPort, 'must be an integer');
  if (port === undefined || port === null) {
    if (endPort !== undefined && endPort !== null) invalid(errs, `${field}.endPort`, endPort, 'may not be specified when `port` is not specified');
  } else if (typeof port === 'number') {
    if (!validPortNumber(port)) invalid(errs, `${field}.port`, port, PORT_RANGE);
    if (typeof endPort === 'number') {
      if (endPort < port) invalid(errs, `${field}.endPort`, port, 'must be greater than or equal to `port`');
      if (!validPortNumber(endPort)) invalid(errs, `${field}.endPort`, endPort, PORT_RANGE);
    }
  } else if (typeof port === 'string') {
    if (typeof endPort === 'number') invalid(errs, `${field}.endPort`, endPort, 'may not be specified when `port` is non-numeric');
    const why = portNameProblem(port);
    if (why) invalid(errs, `${field}.port`, port, why);
  } else invalid(errs, `${field}.port`, port, 'must be an integer or a string');
}

function validateNetpolPeer(errs: Errs, field: string, v: unknown): void {
  const peer = obj(errs, field, v);
  if (!peer) return required(errs, field, 'must specify a peer');
  let n = 0;
  if (peer.podSelector !== undefined && peer.podSelector !== null) {
    n++;
    validateLabelSelector(errs, `${field}.podSelector`, peer.podSelector);
  }
  if (peer.namespaceSelector !== undefined && peer.namespaceSelector !== null) {
    n++;
    validateLabelSelector(errs, `${field}.namespaceSelector`, peer.namespaceSelector);
  }
  const ipBlock = obj(errs, `${field}.ipBlock`, peer.ipBlock);
  if (ipBlock) {
    n++;
    validateIpBlock(errs, `${field}.ipBlock`, ipBlock);
  }
  if (n === 0) required(errs, field, 'must specify a peer');
  else if (n > 1 && ipBlock) forbidden(errs, field, 'may not specify both ipBlock and another peer');
}

function validateNetworkPolicy(errs: Errs, o: KubeObject): void {
  const spec = obj(errs, 'spec', o.spec) ?? {};
  validateLabelSelector(errs, 'spec.podSelector', spec.podSelector);
  for (const [dir, peers] of [['ingress', 'from'], ['egress', 'to']] as const) {
    (list(errs, `spec.${dir}`, spec[dir]) ?? []).forEach((r, i) => {
      const rule = obj(errs, `spec.${dir}[${i}]`, r) ?? {};
      (list(errs, `spec.${dir}[${i}].ports`, rule.ports) ?? []).forEach((p, j) => validateNetpolPort(errs, `spec.${dir}[${i}].ports[${j}]`, p));
      (list(errs, `spec.${dir}[${i}].${peers}`, rule[peers]) ?? []).forEach((p, j) => validateNetpolPeer(errs, `spec.${dir}[${i}].${peers}[${j}]`, p));
    });
  }
  const types = list(errs, 'spec.policyTypes', spec.policyTypes) ?? [];
  types.forEach((t, i) => {
    if (t !== 'Ingress' && t !== 'Egress') notSupported(errs, `spec.policyTypes[${i}]`, t, ['Egress', 'Ingress']);
  });
  if (types.length > 2) invalid(errs, 'spec.policyTypes', types, 'may not specify more than two policyTypes');
}

// ---- policy.networking.k8s.io: CRD schema (OpenAPI + CEL) ----

function int(errs: Errs, field: string, v: unknown, min: number, max: number, req = true): number | undefined {
  if (v === undefined || v === null) {
    if (req) required(errs, field);
    return undefined;
  }
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    invalid(errs, field, v, `${field} in body must be of type integer: "${typeof v}"`);
    return undefined;
  }
  if (v < min) invalid(errs, field, v, `${field} in body should be greater than or equal to ${min}`);
  if (v > max) invalid(errs, field, v, `${field} in body should be less than or equal to ${max}`);
  return v;
}

function enumOf(errs: Errs, field: string, v: unknown, allowed: readonly string[]): void {
  if (v === undefined || v === null) required(errs, field);
  else if (!allowed.includes(v as string)) notSupported(errs, field, v, allowed);
}

/** minItems/maxItems of a CRD list; returns the items. */
function items(errs: Errs, field: string, v: unknown, min: number, max: number, req: boolean): unknown[] {
  const l = list(errs, field, v);
  if (l === undefined) {
    if (req) required(errs, field);
    return [];
  }
  if (l.length < min) invalid(errs, field, l.length, `${field} in body should have at least ${min} items`);
  if (l.length > max) errs.push({ type: 'FieldValueTooMany', field, detail: `Too many: ${l.length}: must have at most ${max} items` });
  return l;
}

/** Exactly one of `keys` set (MinProperties=1, MaxProperties=1); returns the one set. */
function oneOf(errs: Errs, field: string, v: unknown, keys: readonly string[]): [string, unknown] | undefined {
  const o = obj(errs, field, v);
  if (!o) {
    required(errs, field);
    return undefined;
  }
  const set = Object.keys(o).filter((k) => o[k] !== undefined && o[k] !== null);
  const unknown = set.filter((k) => !keys.includes(k));
  for (const k of unknown) invalid(errs, `${field}.${k}`, k, 'field not declared in schema');
  if (set.length < 1) invalid(errs, field, set.length, `${field} in body should have at least 1 properties`);
  if (set.length > 1) invalid(errs, field, set.length, `${field} in body should have at most 1 properties`);
  const k = set.find((x) => keys.includes(x));
  return set.length === 1 && k ? [k, o[k]] : undefined;
}

function namespacedPod(errs: Errs, field: string, v: unknown): void {
  const p = obj(errs, field, v) ?? {};
  if (p.podSelector === undefined) required(errs, `${field}.podSelector`);
  validateLabelSelector(errs, `${field}.podSelector`, p.podSelector);
  validateLabelSelector(errs, `${field}.namespaceSelector`, p.namespaceSelector);
}

function peer(errs: Errs, field: string, v: unknown, keys: readonly string[]): void {
  const one = oneOf(errs, field, v, keys);
  if (!one) return;
  const [k, val] = one;
  const f = `${field}.${k}`;
  if (k === 'pods') namespacedPod(errs, f, val);
  else if (k === 'networks') {
    items(errs, f, val, 1, 25, true).forEach((c, i) => {
      if (typeof c !== 'string' || !parseCidr(c)) invalid(errs, `${f}[${i}]`, c, 'Invalid CIDR format provided');
    });
  } else if (k === 'domainNames') {
    items(errs, f, val, 1, 25, true).forEach((d, i) => {
      if (typeof d !== 'string' || !/^(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$/.test(d)) invalid(errs, `${f}[${i}]`, d, `${f}[${i}] in body should match the domain name pattern`);
    });
  } else validateLabelSelector(errs, f, val);
}

function portRange(errs: Errs, field: string, v: unknown): void {
  const r = obj(errs, field, v) ?? {};
  const start = int(errs, `${field}.start`, r.start, 1, 65535);
  const end = int(errs, `${field}.end`, r.end, 1, 65535);
  if (start !== undefined && end !== undefined && !(start < end)) invalid(errs, field, 'object', 'Start port must be less than End port');
}

/** v1alpha2 `protocols[]`: tcp/udp/sctp with a destinationPort number or range, or destinationNamedPort. */
function cnpProtocol(errs: Errs, field: string, v: unknown): void {
  const one = oneOf(errs, field, v, ['tcp', 'udp', 'sctp', 'destinationNamedPort']);
  if (!one) return;
  const [k, val] = one;
  if (k === 'destinationNamedPort') {
    const why = typeof val === 'string' ? portNameProblem(val) : 'must be a string';
    if (why) invalid(errs, `${field}.${k}`, val, why);
    return;
  }
  const proto = obj(errs, `${field}.${k}`, val) ?? {};
  if (Object.keys(proto).length < 1) invalid(errs, `${field}.${k}`, 0, `${field}.${k} in body should have at least 1 properties`);
  if (proto.destinationPort === undefined) return;
  const port = oneOf(errs, `${field}.${k}.destinationPort`, proto.destinationPort, ['number', 'range']);
  if (port?.[0] === 'number') int(errs, `${field}.${k}.destinationPort.number`, port[1], 1, 65535);
  if (port?.[0] === 'range') portRange(errs, `${field}.${k}.destinationPort.range`, port[1]);
}

/** v1alpha1 `ports[]`: portNumber {protocol, port}, namedPort, or portRange {protocol, start, end}. */
function anpPort(errs: Errs, field: string, v: unknown): void {
  const one = oneOf(errs, field, v, ['portNumber', 'namedPort', 'portRange']);
  if (!one) return;
  const [k, val] = one;
  const f = `${field}.${k}`;
  if (k === 'namedPort') {
    const why = typeof val === 'string' ? portNameProblem(val) : 'must be a string';
    if (why) invalid(errs, f, val, why);
    return;
  }
  const p = obj(errs, f, val) ?? {};
  if (p.protocol !== undefined) enumOf(errs, `${f}.protocol`, p.protocol, ['TCP', 'UDP', 'SCTP']);
  if (k === 'portNumber') int(errs, `${f}.port`, p.port, 1, 65535);
  else portRange(errs, f, p);
}

interface CrdShape {
  readonly actions: readonly string[];
  readonly ingressPeers: readonly string[];
  readonly egressPeers: readonly string[];
  readonly maxRules: number;
  readonly maxPeers: number;
  readonly ports: 'protocols' | 'ports';
}

const CNP: CrdShape = { actions: ['Accept', 'Deny', 'Pass'], ingressPeers: ['namespaces', 'pods'], egressPeers: ['namespaces', 'pods', 'nodes', 'networks', 'domainNames'], maxRules: 25, maxPeers: 25, ports: 'protocols' };
const ANP: CrdShape = { actions: ['Allow', 'Deny', 'Pass'], ingressPeers: ['namespaces', 'pods'], egressPeers: ['namespaces', 'pods', 'nodes', 'networks'], maxRules: 100, maxPeers: 100, ports: 'ports' };
const BANP: CrdShape = { ...ANP, actions: ['Allow', 'Deny'] };

function validateCrdRules(errs: Errs, spec: Json, shape: CrdShape): void {
  for (const [dir, peers, keys] of [['ingress', 'from', shape.ingressPeers], ['egress', 'to', shape.egressPeers]] as const) {
    items(errs, `spec.${dir}`, spec[dir], 0, shape.maxRules, false).forEach((r, i) => {
      const f = `spec.${dir}[${i}]`;
      const rule = obj(errs, f, r) ?? {};
      if (rule.name !== undefined && (typeof rule.name !== 'string' || rule.name.length > 100)) errs.push({ type: 'FieldValueTooMany', field: `${f}.name`, detail: 'Too long: may not be longer than 100' });
      enumOf(errs, `${f}.action`, rule.action, shape.actions);
      items(errs, `${f}.${peers}`, rule[peers], 1, shape.maxPeers, true).forEach((p, j) => peer(errs, `${f}.${peers}[${j}]`, p, keys));
      const ports = items(errs, `${f}.${shape.ports}`, rule[shape.ports], 1, shape.maxPeers, false);
      ports.forEach((p, j) => (shape.ports === 'protocols' ? cnpProtocol : anpPort)(errs, `${f}.${shape.ports}[${j}]`, p));
      if (dir === 'egress') {
        const ipPeers = ((rule.to as unknown[]) ?? []).some((p) => isObj(p) && (p.networks !== undefined || p.nodes !== undefined || p.domainNames !== undefined));
        const named = ports.some((p) => isObj(p) && (p.destinationNamedPort !== undefined || p.namedPort !== undefined));
        if (ipPeers && named) invalid(errs, f, 'object', 'networks/nodes/domainNames peer cannot be set with namedPorts since there are no namedPorts for networks/nodes/domainNames');
        const domains = ((rule.to as unknown[]) ?? []).some((p) => isObj(p) && p.domainNames !== undefined);
        if (domains && rule.action !== 'Accept') invalid(errs, f, 'object', 'domainNames peer can only be used with the Accept action');
      }
    });
  }
}

function validateSubject(errs: Errs, spec: Json): void {
  const subject = oneOf(errs, 'spec.subject', spec.subject, ['namespaces', 'pods']);
  if (subject?.[0] === 'namespaces') validateLabelSelector(errs, 'spec.subject.namespaces', subject[1]);
  if (subject?.[0] === 'pods') namespacedPod(errs, 'spec.subject.pods', subject[1]);
}

function validateClusterNetworkPolicy(errs: Errs, o: KubeObject): void {
  const spec = obj(errs, 'spec', o.spec);
  if (!spec) return required(errs, 'spec');
  enumOf(errs, 'spec.tier', spec.tier, ['Admin', 'Baseline']);
  int(errs, 'spec.priority', spec.priority, 0, 1000);
  validateSubject(errs, spec);
  validateCrdRules(errs, spec, CNP);
}

function validateAdminNetworkPolicy(errs: Errs, o: KubeObject): void {
  const spec = obj(errs, 'spec', o.spec);
  if (!spec) return required(errs, 'spec');
  int(errs, 'spec.priority', spec.priority, 0, 1000);
  validateSubject(errs, spec);
  validateCrdRules(errs, spec, ANP);
}

function validateBaselineAdminNetworkPolicy(errs: Errs, o: KubeObject): void {
  if (o.metadata.name !== 'default') invalid(errs, 'metadata.name', o.metadata.name ?? '', 'Only one baseline admin network policy with metadata.name="default" can be created in the cluster');
  const spec = obj(errs, 'spec', o.spec);
  if (!spec) return required(errs, 'spec');
  validateSubject(errs, spec);
  validateCrdRules(errs, spec, BANP);
}

const VALIDATORS: Partial<Record<ResourceName, (errs: Errs, o: KubeObject) => void>> = {
  networkpolicies: validateNetworkPolicy,
  clusternetworkpolicies: validateClusterNetworkPolicy,
  adminnetworkpolicies: validateAdminNetworkPolicy,
  baselineadminnetworkpolicies: validateBaselineAdminNetworkPolicy,
};

/** The field errors of a policy object (empty when valid, and for every other resource). */
export function validatePolicy(resource: ResourceName, o: KubeObject): FieldError[] {
  const errs: FieldError[] = [];
  VALIDATORS[resource]?.(errs, o);
  return errs;
}
