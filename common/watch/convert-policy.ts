// The informer boundary for NetworkPolicy: networking.k8s.io/v1 NetworkPolicy objects, and pods
// cluster-wide trimmed to what selecting and matching peers needs. Validation follows the API
// server's (a selector operator with the wrong values, an endPort on a named port, a bad CIDR):
// such a policy is reported and skipped like any malformed object, the others stay in force.
import { isIP } from 'node:net';
import type { IPBlock, LabelSelector, LabelSelectorRequirement, NamedPort, NetworkPolicyInfo, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicyRule, PolicyPodInfo, PolicyType, SelectorOperator } from '../types.js';
import { arr, defined, fail, int, Interner, isObj, obj, optBool, optInt, optStr, protocol, str, strArr, strMap, type Json } from './fields.js';

const OPERATORS = new Set<SelectorOperator>(['In', 'NotIn', 'Exists', 'DoesNotExist']);

export function toNetworkPolicy(raw: Json, _meta: Json, name: string, namespace: string): NetworkPolicyInfo {
  const spec = obj(raw.spec, 'spec');
  const ingress = arr(spec.ingress, 'spec.ingress').map((r, i) => rule(r, `spec.ingress[${i}]`, 'from'));
  const egress = arr(spec.egress, 'spec.egress').map((r, i) => rule(r, `spec.egress[${i}]`, 'to'));
  let policyTypes = strArr(spec.policyTypes, 'spec.policyTypes') as PolicyType[];
  for (const t of policyTypes) if (t !== 'Ingress' && t !== 'Egress') fail('spec.policyTypes', `unknown policy type "${t}"`);
  // The API server's defaulting: Ingress always, Egress when the policy has egress rules.
  if (policyTypes.length === 0) policyTypes = egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
  else policyTypes = [...new Set(policyTypes)].sort() as PolicyType[];
  return { namespace, name, podSelector: selector(spec.podSelector, 'spec.podSelector'), policyTypes, ingress, egress };
}

function rule(v: unknown, field: string, peersKey: 'from' | 'to'): NetworkPolicyRule {
  const o = obj(v, field);
  return {
    peers: arr(o[peersKey], `${field}.${peersKey}`).map((p, i) => peer(p, `${field}.${peersKey}[${i}]`)),
    ports: arr(o.ports, `${field}.ports`).map((p, i) => port(p, `${field}.ports[${i}]`)),
  };
}

function peer(v: unknown, field: string): NetworkPolicyPeer {
  const o = obj(v, field);
  const has = (k: string): boolean => o[k] !== undefined && o[k] !== null;
  const out: { podSelector?: LabelSelector; namespaceSelector?: LabelSelector; ipBlock?: IPBlock } = {};
  if (has('podSelector')) out.podSelector = selector(o.podSelector, `${field}.podSelector`);
  if (has('namespaceSelector')) out.namespaceSelector = selector(o.namespaceSelector, `${field}.namespaceSelector`);
  if (has('ipBlock')) {
    if (out.podSelector || out.namespaceSelector) fail(field, 'ipBlock cannot be combined with a selector');
    out.ipBlock = ipBlock(o.ipBlock, `${field}.ipBlock`);
  }
  if (!out.podSelector && !out.namespaceSelector && !out.ipBlock) fail(field, 'must set podSelector, namespaceSelector or ipBlock');
  return out;
}

function ipBlock(v: unknown, field: string): IPBlock {
  const o = obj(v, field);
  const cidr = str(o.cidr, `${field}.cidr`);
  const fam = cidrFamily(cidr);
  if (!fam) fail(`${field}.cidr`, `"${cidr}" is not a CIDR`);
  const except = strArr(o.except, `${field}.except`);
  for (const [i, e] of except.entries()) if (cidrFamily(e) !== fam) fail(`${field}.except[${i}]`, `"${e}" is not a CIDR of the same family as ${cidr}`);
  return { cidr, except };
}

function port(v: unknown, field: string): NetworkPolicyPort {
  const o = obj(v, field);
  const p = o.port;
  let value: number | string | undefined;
  if (p === undefined || p === null) value = undefined;
  else if (typeof p === 'number') value = portNumber(p, `${field}.port`);
  else if (typeof p === 'string') {
    if (!/^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/.test(p) || !/[a-z]/.test(p)) fail(`${field}.port`, `"${p}" is not a port name`);
    value = p;
  } else fail(`${field}.port`, 'must be a number or a name');
  const endPort = optInt(o.endPort, `${field}.endPort`);
  if (endPort !== undefined) {
    if (typeof value !== 'number') fail(`${field}.endPort`, 'needs a numeric port');
    if (endPort < value || endPort > 65535) fail(`${field}.endPort`, `must be between ${value} and 65535`);
  }
  return defined({ protocol: protocol(o.protocol, `${field}.protocol`), port: value, endPort });
}

function portNumber(n: number, field: string): number {
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail(field, 'must be a port number (1-65535)');
  return n;
}

function selector(v: unknown, field: string): LabelSelector {
  const o = obj(v, field);
  const matchExpressions = arr(o.matchExpressions, `${field}.matchExpressions`).map((e, i): LabelSelectorRequirement => {
    const f = `${field}.matchExpressions[${i}]`;
    const r = obj(e, f);
    const operator = str(r.operator, `${f}.operator`) as SelectorOperator;
    if (!OPERATORS.has(operator)) fail(`${f}.operator`, `unknown operator "${operator}"`);
    const values = strArr(r.values, `${f}.values`);
    const wantsValues = operator === 'In' || operator === 'NotIn';
    if (wantsValues !== values.length > 0) fail(`${f}.values`, wantsValues ? `${operator} needs values` : `${operator} takes no values`);
    return { key: str(r.key, `${f}.key`), operator, values };
  });
  return { matchLabels: strMap(o.matchLabels, `${field}.matchLabels`), matchExpressions };
}

function cidrFamily(s: string): 4 | 6 | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const fam = isIP(m[1]!);
  const bits = Number(m[2]);
  if (fam === 4 && bits <= 32) return 4;
  if (fam === 6 && bits <= 128) return 6;
  return undefined;
}

const FINISHED = new Set(['Succeeded', 'Failed']);

const strings = new Interner<string>(100_000);
const labelSets = new Interner<Readonly<Record<string, string>>>(50_000);
const portSets = new Interner<readonly NamedPort[]>(10_000);
const NO_PORTS: readonly NamedPort[] = [];

function internLabels(labels: Record<string, string>): Readonly<Record<string, string>> {
  let key = '';
  for (const k in labels) key += `${k}\u0000${labels[k]}\u0000`;
  return labelSets.get(key, labels);
}

function internPorts(ports: NamedPort[]): readonly NamedPort[] {
  if (ports.length === 0) return NO_PORTS;
  let key = '';
  for (const p of ports) key += `${p.name}/${p.port}/${p.protocol},`;
  return portSets.get(key, ports);
}

export function toPolicyPod(raw: Json, meta: Json, name: string, namespace: string): PolicyPodInfo {
  const spec = obj(raw.spec, 'spec');
  const status = obj(raw.status, 'status');
  const phase = optStr(status.phase, 'status.phase');
  let podIPs: string[] = [];
  if (!FINISHED.has(phase ?? '')) {
    podIPs = arr(status.podIPs, 'status.podIPs').map((p, i) => str(obj(p, `status.podIPs[${i}]`).ip, `status.podIPs[${i}].ip`));
    const podIP = optStr(status.podIP, 'status.podIP');
    if (podIPs.length === 0 && podIP) podIPs = [podIP];
  }
  const nodeName = optStr(spec.nodeName, 'spec.nodeName') ?? '';
  return {
    namespace: strings.get(namespace, namespace),
    name,
    nodeName: strings.get(nodeName, nodeName),
    hostNetwork: optBool(spec.hostNetwork, 'spec.hostNetwork') ?? false,
    podIPs,
    labels: internLabels(strMap(meta.labels, 'metadata.labels')),
    namedPorts: internPorts(namedPorts(spec)),
  };
}

function namedPorts(spec: Json): NamedPort[] {
  const out: NamedPort[] = [];
  const scan = (list: string): void => {
    for (const [i, c] of arr(spec[list], `spec.${list}`).entries()) {
      const f = `spec.${list}[${i}]`;
      const co = obj(c, f);
      // Init containers serve only as sidecars (restartPolicy Always); the others have exited.
      if (list === 'initContainers' && co.restartPolicy !== 'Always') continue;
      for (const [j, p] of arr(co.ports, `${f}.ports`).entries()) {
        const po = isObj(p) ? p : fail(`${f}.ports[${j}]`, 'must be an object');
        const portName = optStr(po.name, `${f}.ports[${j}].name`);
        if (!portName) continue;
        out.push({ name: portName, port: int(po.containerPort, `${f}.ports[${j}].containerPort`), protocol: protocol(po.protocol, `${f}.ports[${j}].protocol`) });
      }
    }
  };
  scan('containers');
  scan('initContainers');
  return out;
}
