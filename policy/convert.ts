// Raw API JSON -> the engine's model. Applies the API server's defaulting (policyTypes, protocol)
// and the validation it would have done, so a malformed object (an old server, a hand-written
// sandbox object) is refused whole with a reason; the caller logs it and skips it, and the other
// policies are unaffected. Half a policy would be worse than none: it could allow too much.
import { parseCidr, subtract } from './ipnet.js';
import type { IPBlock, LabelRequirement, LabelSelector, NamedPort, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicyRule, Operator, PolicyNamespace, PolicyPod, PolicyType, Protocol } from './model.js';

export type Converted<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

class Invalid extends Error {}

type Json = Record<string, unknown>;

function fail(field: string, why: string): never {
  throw new Invalid(`${field}: ${why}`);
}
function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function obj(v: unknown, field: string): Json {
  if (v === undefined || v === null) return {};
  return isObj(v) ? v : fail(field, 'must be an object');
}
function arr(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : fail(field, 'must be a list');
}
function str(v: unknown, field: string): string {
  return typeof v === 'string' ? v : fail(field, v === undefined ? 'missing' : 'must be a string');
}
function strMap(v: unknown, field: string): Record<string, string> {
  const o = obj(v, field);
  for (const [k, s] of Object.entries(o)) if (typeof s !== 'string') fail(`${field}.${k}`, 'must be a string');
  return o as Record<string, string>;
}

function guard<T>(f: () => T): Converted<T> {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, reason: e.message };
    throw e;
  }
}

function meta(raw: unknown, namespaced: boolean): { name: string; namespace: string; m: Json } {
  if (!isObj(raw)) fail('(object)', 'not a JSON object');
  const m = obj(raw.metadata, 'metadata');
  const name = str(m.name, 'metadata.name');
  if (!name) fail('metadata.name', 'empty');
  const namespace = namespaced ? str(m.namespace, 'metadata.namespace') : '';
  if (namespaced && !namespace) fail('metadata.namespace', 'empty');
  return { name, namespace, m };
}

const OPERATORS: readonly Operator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

export function toSelector(v: unknown, field: string): LabelSelector {
  const o = obj(v, field);
  const matchLabels = strMap(o.matchLabels, `${field}.matchLabels`);
  const matchExpressions = arr(o.matchExpressions, `${field}.matchExpressions`).map((e, i): LabelRequirement => {
    const f = `${field}.matchExpressions[${i}]`;
    const r = obj(e, f);
    const key = str(r.key, `${f}.key`);
    if (!key) fail(`${f}.key`, 'empty');
    const operator = str(r.operator, `${f}.operator`) as Operator;
    if (!OPERATORS.includes(operator)) fail(`${f}.operator`, `unknown operator "${operator}"`);
    const values = arr(r.values, `${f}.values`).map((x, j) => str(x, `${f}.values[${j}]`));
    if ((operator === 'In' || operator === 'NotIn') && values.length === 0) fail(`${f}.values`, `must be non-empty for ${operator}`);
    if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0) fail(`${f}.values`, `must be empty for ${operator}`);
    return { key, operator, values };
  });
  return { matchLabels, matchExpressions };
}

function protocol(v: unknown, field: string): Protocol {
  const p = v === undefined || v === null ? 'TCP' : str(v, field);
  if (p !== 'TCP' && p !== 'UDP' && p !== 'SCTP') fail(field, `unknown protocol "${p}"`);
  return p;
}

function portNumber(v: unknown, field: string): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) fail(field, 'must be an integer in 1-65535');
  return v as number;
}

// IANA_SVC_NAME: at most 15 characters, lowercase alphanumerics and '-', at least one letter,
// no leading, trailing or double '-'.
const SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*$/;
function portName(s: string, field: string): string {
  if (s.length > 15 || !SVC_NAME.test(s) || s.endsWith('-')) fail(field, `invalid port name "${s}"`);
  return s;
}

function toPort(v: unknown, field: string): NetworkPolicyPort {
  const o = obj(v, field);
  const proto = protocol(o.protocol, `${field}.protocol`);
  const endPort = o.endPort === undefined || o.endPort === null ? undefined : portNumber(o.endPort, `${field}.endPort`);
  if (o.port === undefined || o.port === null) {
    if (endPort !== undefined) fail(`${field}.endPort`, 'needs port');
    return { protocol: proto };
  }
  if (typeof o.port === 'string' && !/^\d+$/.test(o.port)) {
    if (endPort !== undefined) fail(`${field}.endPort`, 'not allowed with a named port');
    return { protocol: proto, port: portName(o.port, `${field}.port`) };
  }
  // An int-or-string holding digits is the number (the API's IntOrString decodes it so).
  const port = portNumber(typeof o.port === 'string' ? Number(o.port) : o.port, `${field}.port`);
  if (endPort === undefined) return { protocol: proto, port };
  if (endPort < port) fail(`${field}.endPort`, `must not be below port ${port}`);
  return { protocol: proto, port, endPort };
}

function toIpBlock(v: unknown, field: string): IPBlock {
  const o = obj(v, field);
  const cidr = str(o.cidr, `${field}.cidr`);
  const net = parseCidr(cidr);
  if (!net) fail(`${field}.cidr`, `invalid CIDR "${cidr}"`);
  const except = arr(o.except, `${field}.except`).map((x, i) => {
    const f = `${field}.except[${i}]`;
    const e = str(x, f);
    const sub = parseCidr(e);
    if (!sub) fail(f, `invalid CIDR "${e}"`);
    if (sub.family !== net.family || subtract([sub], [net]).length > 0) fail(f, `${e} is not within ${cidr}`);
    if (sub.prefix <= net.prefix) fail(f, `${e} must be a strict subset of ${cidr}`);
    return e;
  });
  return { cidr, except };
}

function toPeer(v: unknown, field: string): NetworkPolicyPeer {
  const o = obj(v, field);
  const has = (k: string): boolean => o[k] !== undefined && o[k] !== null;
  if (has('ipBlock')) {
    if (has('podSelector') || has('namespaceSelector')) fail(field, 'ipBlock cannot be combined with a selector');
    return { ipBlock: toIpBlock(o.ipBlock, `${field}.ipBlock`) };
  }
  if (!has('podSelector') && !has('namespaceSelector')) fail(field, 'must specify a peer');
  const peer: { podSelector?: LabelSelector; namespaceSelector?: LabelSelector } = {};
  if (has('podSelector')) peer.podSelector = toSelector(o.podSelector, `${field}.podSelector`);
  if (has('namespaceSelector')) peer.namespaceSelector = toSelector(o.namespaceSelector, `${field}.namespaceSelector`);
  return peer;
}

function toRule(v: unknown, field: string, peersKey: 'from' | 'to'): NetworkPolicyRule {
  const o = obj(v, field);
  return {
    peers: arr(o[peersKey], `${field}.${peersKey}`).map((p, i) => toPeer(p, `${field}.${peersKey}[${i}]`)),
    ports: arr(o.ports, `${field}.ports`).map((p, i) => toPort(p, `${field}.ports[${i}]`)),
  };
}

/** networking.k8s.io/v1 NetworkPolicy. */
export function toNetworkPolicy(raw: unknown): Converted<NetworkPolicy> {
  return guard(() => {
    const { name, namespace } = meta(raw, true);
    const spec = obj((raw as Json).spec, 'spec');
    const ingress = arr(spec.ingress, 'spec.ingress').map((r, i) => toRule(r, `spec.ingress[${i}]`, 'from'));
    const egress = arr(spec.egress, 'spec.egress').map((r, i) => toRule(r, `spec.egress[${i}]`, 'to'));
    let policyTypes = arr(spec.policyTypes, 'spec.policyTypes').map((t, i) => {
      const s = str(t, `spec.policyTypes[${i}]`);
      if (s !== 'Ingress' && s !== 'Egress') fail(`spec.policyTypes[${i}]`, `unknown type "${s}"`);
      return s as PolicyType;
    });
    // The API's defaulting: every policy affects ingress; egress only when it has egress rules.
    if (policyTypes.length === 0) policyTypes = egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
    return {
      namespace,
      name,
      podSelector: toSelector(spec.podSelector, 'spec.podSelector'),
      policyTypes: [...new Set(policyTypes)],
      ingress,
      egress,
    };
  });
}

/** A Pod, keeping what policy needs; finished pods lose their addresses (they may be reused). */
export function toPolicyPod(raw: unknown): Converted<PolicyPod> {
  return guard(() => {
    const { name, namespace, m } = meta(raw, true);
    const spec = obj((raw as Json).spec, 'spec');
    const status = obj((raw as Json).status, 'status');
    let podIPs = arr(status.podIPs, 'status.podIPs').map((p, i) => str(obj(p, `status.podIPs[${i}]`).ip, `status.podIPs[${i}].ip`));
    if (podIPs.length === 0 && typeof status.podIP === 'string' && status.podIP) podIPs = [status.podIP];
    if (status.phase === 'Succeeded' || status.phase === 'Failed') podIPs = [];
    const namedPorts: NamedPort[] = [];
    for (const [ci, c] of arr(spec.containers, 'spec.containers').entries()) {
      for (const [pi, p] of arr(obj(c, `spec.containers[${ci}]`).ports, `spec.containers[${ci}].ports`).entries()) {
        const f = `spec.containers[${ci}].ports[${pi}]`;
        const po = obj(p, f);
        if (po.name === undefined || po.name === null || po.name === '') continue;
        namedPorts.push({ name: str(po.name, `${f}.name`), port: portNumber(po.containerPort, `${f}.containerPort`), protocol: protocol(po.protocol, `${f}.protocol`) });
      }
    }
    return {
      namespace,
      name,
      nodeName: typeof spec.nodeName === 'string' ? spec.nodeName : '',
      hostNetwork: spec.hostNetwork === true,
      podIPs,
      labels: strMap(m.labels, 'metadata.labels'),
      namedPorts,
    };
  });
}

export function toPolicyNamespace(raw: unknown): Converted<PolicyNamespace> {
  return guard(() => {
    const { name, m } = meta(raw, false);
    return { name, labels: strMap(m.labels, 'metadata.labels') };
  });
}
