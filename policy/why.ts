// `skiff policy why`: "would A reach B on TCP 80, and which rule decides", asked of the API server's
// objects through the same pure function the agent renders its rules from (explain.ts), so the
// answer cannot disagree with the nft table a node would load for the same objects.
import { isIP } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { helpText, parseFlags } from '../common/cli.js';
import { SkiffError, UsageError } from '../common/errors.js';
import { ApiRequestError, createGetter, type Getter } from '../common/watch/http-get.js';
import { toAdminNetworkPolicy, toBaselineAdminNetworkPolicy, toClusterNetworkPolicy, type ClusterPolicy, type PolicyNodeInfo } from './admin.js';
import { toNetworkPolicy, toPolicyNamespace, toPolicyPod, type Converted } from './convert.js';
import type { PolicyInputs } from './desired.js';
import { explain, type DirectionVerdict, type Explanation, type FlowEnd } from './explain.js';
import type { PolicyPod, Protocol } from './model.js';

const OPTIONS = {
  from: { type: 'string' },
  to: { type: 'string' },
  protocol: { type: 'string' },
  port: { type: 'string' },
  kubeconfig: { type: 'string' },
  'dns-ips': { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
} as const;

const DESCRIPTIONS: Record<string, string> = {
  from: 'the client: NAMESPACE/POD or an IP address',
  to: 'the server: NAMESPACE/POD or an IP address (ask about the endpoint pod, not a Service IP)',
  protocol: 'TCP (default), UDP or SCTP',
  port: "the destination port: a number, or a container port name resolved on the --to pod",
  kubeconfig: 'kubeconfig path (default: $KUBECONFIG, else the in-cluster config)',
  'dns-ips': "node-local DNS addresses, comma-separated, as the agent's dnsServiceIPs (default 10.96.0.10; '' for none)",
  output: 'text (default) or json',
  help: 'show this help',
};

const SUMMARY =
  'Says whether a new connection from --from to --to would pass NetworkPolicy and the admin policy\n' +
  "tiers, and which policy and rule decide: egress on the client's node, ingress on the server's.\n" +
  'Exit status: 0 allowed, 1 denied, 2 usage error or no answer (API server unreachable, unknown pod).';

/** Where the command writes and what it reads from its environment; injected so tests run it in-process. */
export interface WhyIO {
  readonly out: (s: string) => void;
  readonly err: (s: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

export interface WhyRequest {
  readonly from: FlowEnd;
  readonly to: FlowEnd;
  /** undefined: TCP, or the named port's own protocol. */
  readonly protocol?: Protocol;
  readonly port: number | string;
  readonly kubeconfig?: string;
  /** The agent's node-local DNS addresses: egress that allows port 53 also allows these. */
  readonly dnsAddresses: readonly string[];
  readonly output: 'text' | 'json';
}

/** The agent's default dnsServiceIPs (common/config.ts). */
const DEFAULT_DNS = '10.96.0.10';
const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const PORT_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;

function parseEnd(flag: string, v: string | undefined): FlowEnd {
  if (v === undefined || v === '') throw new UsageError(`policy why: --${flag} is required (NAMESPACE/POD or an IP address)`);
  if (isIP(v) !== 0) return { ip: v };
  const parts = v.split('/');
  if (parts.length === 2 && parts[0] && parts[1]) return { pod: v };
  throw new UsageError(`policy why: --${flag} "${v}" is neither NAMESPACE/POD nor an IP address`);
}

export function parseRequest(argv: string[]): WhyRequest | 'help' {
  const { values } = parseFlags('policy why', argv, OPTIONS);
  if (values.help) return 'help';
  const from = parseEnd('from', values.from);
  const to = parseEnd('to', values.to);
  let protocol: Protocol | undefined;
  if (values.protocol !== undefined) {
    protocol = values.protocol.toUpperCase() as Protocol;
    if (!PROTOCOLS.includes(protocol)) throw new UsageError(`policy why: --protocol must be TCP, UDP or SCTP, not "${values.protocol}"`);
  }
  const p = values.port;
  if (p === undefined || p === '') throw new UsageError('policy why: --port is required (a number or a container port name)');
  let port: number | string;
  if (/^\d+$/.test(p)) {
    port = Number(p);
    if (port < 1 || port > 65535) throw new UsageError(`policy why: --port ${p} is outside 1-65535`);
  } else if (PORT_NAME.test(p)) {
    if (!('pod' in to)) throw new UsageError(`policy why: --port "${p}" is a name, which only a pod (--to NAMESPACE/POD) can resolve`);
    port = p;
  } else throw new UsageError(`policy why: --port "${p}" is neither a port number nor a port name`);
  const dnsAddresses = (values['dns-ips'] ?? DEFAULT_DNS).split(',').map((a) => a.trim()).filter(Boolean);
  for (const a of dnsAddresses) if (isIP(a) === 0) throw new UsageError(`policy why: --dns-ips: "${a}" is not an IP address`);
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw new UsageError(`policy why: -o must be text or json, not "${output}"`);
  return { from, to, protocol, port, kubeconfig: values.kubeconfig, dnsAddresses, output };
}

/** The flag, else $KUBECONFIG (a path list, as kubectl reads it), else the in-cluster config. */
export function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv): KubeConfig {
  const kc = new KubeConfig();
  const where = path ?? env.KUBECONFIG ?? 'the in-cluster config';
  try {
    if (path) kc.loadFromFile(path);
    else if (env.KUBECONFIG) kc.loadFromDefault({}, false);
    else kc.loadFromCluster();
  } catch (e) {
    throw new SkiffError('ERR_KUBECONFIG', `policy why: cannot load ${where}: ${(e as Error).message}`);
  }
  if (!kc.getCurrentCluster()) throw new SkiffError('ERR_KUBECONFIG', `policy why: ${where} has no current cluster`);
  return kc;
}

/** Every object of a kind, in pages; undefined when the API server does not serve it (a CRD not installed). */
async function listAll(getter: Getter, path: string, optional: boolean): Promise<unknown[] | undefined> {
  const items: unknown[] = [];
  let cont = '';
  do {
    const q = new URLSearchParams({ limit: '500' });
    if (cont) q.set('continue', cont);
    let page: { metadata?: { continue?: string }; items?: unknown[] };
    try {
      page = (await getter.get(`${path}?${q}`)) as typeof page;
    } catch (e) {
      if (optional && e instanceof ApiRequestError && e.status === 404) return undefined;
      throw e;
    }
    items.push(...(page.items ?? []));
    cont = page.metadata?.continue ?? '';
  } while (cont);
  return items;
}

function objectName(raw: unknown): string {
  const m = (raw as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  const name = typeof m?.name === 'string' ? m.name : '(no name)';
  return typeof m?.namespace === 'string' ? `${m.namespace}/${name}` : name;
}

/** Converts a list, skipping (and saying so) objects the agent would refuse as well. */
function convertAll<T>(kind: string, raws: readonly unknown[], convert: (raw: unknown) => Converted<T>, err: (s: string) => void): T[] {
  const out: T[] = [];
  for (const raw of raws) {
    const c = convert(raw);
    if (c.ok) out.push(c.value);
    else err(`skiff policy why: warning: skipping ${kind} ${objectName(raw)}: ${c.reason}\n`);
  }
  return out;
}

const ADMIN_KINDS = [
  { kind: 'ClusterNetworkPolicy', path: '/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies', convert: toClusterNetworkPolicy },
  { kind: 'AdminNetworkPolicy', path: '/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies', convert: toAdminNetworkPolicy },
  { kind: 'BaselineAdminNetworkPolicy', path: '/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies', convert: toBaselineAdminNetworkPolicy },
] as const;

/** The cluster as the policy engine sees it: the same kinds and converters as the agent's watch cache. */
export async function fetchInputs(kc: KubeConfig, err: (s: string) => void): Promise<PolicyInputs> {
  const getter = await createGetter(kc);
  const [pods, namespaces, policies] = await Promise.all([
    listAll(getter, '/api/v1/pods', false),
    listAll(getter, '/api/v1/namespaces', false),
    listAll(getter, '/apis/networking.k8s.io/v1/networkpolicies', false),
  ]);
  const admin: ClusterPolicy[] = [];
  for (const a of ADMIN_KINDS) admin.push(...convertAll(a.kind, (await listAll(getter, a.path, true)) ?? [], a.convert, err));
  let nodes: PolicyNodeInfo[] = [];
  // Nodes matter only as peers of admin policies (`nodes` selectors), as in the agent.
  if (admin.length > 0) nodes = ((await listAll(getter, '/api/v1/nodes', false)) ?? []).flatMap((raw) => nodeInfo(raw));
  return {
    pods: convertAll('Pod', pods ?? [], toPolicyPod, err),
    namespaces: convertAll('Namespace', namespaces ?? [], toPolicyNamespace, err),
    policies: convertAll('NetworkPolicy', policies ?? [], toNetworkPolicy, err),
    admin,
    nodes,
  };
}

function nodeInfo(raw: unknown): PolicyNodeInfo[] {
  const n = raw as { metadata?: { name?: unknown; labels?: Record<string, unknown> }; status?: { addresses?: { address?: unknown }[] } };
  if (typeof n?.metadata?.name !== 'string') return [];
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(n.metadata.labels ?? {})) if (typeof v === 'string') labels[k] = v;
  const addresses = (Array.isArray(n.status?.addresses) ? n.status.addresses : []).map((a) => a?.address).filter((a): a is string => typeof a === 'string' && isIP(a) !== 0);
  return [{ name: n.metadata.name, labels, addresses }];
}

function podOf(inputs: PolicyInputs, end: FlowEnd): PolicyPod | undefined {
  return 'pod' in end ? inputs.pods.find((p) => `${p.namespace}/${p.name}` === end.pod) : undefined;
}

function nodeOf(inputs: PolicyInputs, end: FlowEnd): string | undefined {
  const n = podOf(inputs, end)?.nodeName;
  return n ? n : undefined;
}

/** A named port resolves on the destination pod, as the API defines (and the renderer does). */
function resolvePort(inputs: PolicyInputs, req: WhyRequest): { protocol: Protocol; port: number } {
  if (typeof req.port === 'number') return { protocol: req.protocol ?? 'TCP', port: req.port };
  const to = podOf(inputs, req.to);
  if (!to) throw new SkiffError('ERR_NOT_FOUND', `policy why: pod ${(req.to as { pod: string }).pod} not found`);
  const named = to.namedPorts.filter((n) => n.name === req.port && (req.protocol === undefined || n.protocol === req.protocol));
  const np = named.find((n) => n.protocol === 'TCP') ?? named[0];
  if (!np) throw new SkiffError('ERR_NOT_FOUND', `policy why: pod ${to.namespace}/${to.name} has no container port named "${req.port}"${req.protocol ? ` for ${req.protocol}` : ''}`);
  return { protocol: np.protocol, port: np.port };
}

export interface WhyAnswer {
  readonly from: string;
  readonly to: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly portName?: string;
  readonly allowed: boolean;
  readonly egress: DirectionVerdict & { readonly node?: string };
  readonly ingress: DirectionVerdict & { readonly node?: string };
}

/** Pure: the inputs and the question in, the answer out. */
export function answer(inputs: PolicyInputs, req: WhyRequest): WhyAnswer {
  for (const [flag, end] of [['from', req.from], ['to', req.to]] as const) {
    if ('pod' in end && !podOf(inputs, end)) throw new SkiffError('ERR_NOT_FOUND', `policy why: --${flag} pod ${end.pod} not found`);
  }
  const { protocol, port } = resolvePort(inputs, req);
  const e: Explanation = explain(inputs, req.from, req.to, protocol, port, { dnsAddresses: req.dnsAddresses });
  const label = (end: FlowEnd): string => {
    const p = podOf(inputs, end);
    if (p) return `${p.namespace}/${p.name}${p.podIPs.length ? ` (${p.podIPs.join(', ')})` : ''}`;
    return 'ip' in end && end.ip ? end.ip : '';
  };
  return {
    from: label(req.from),
    to: label(req.to),
    protocol,
    port,
    portName: typeof req.port === 'string' ? req.port : undefined,
    allowed: e.allowed,
    egress: { ...e.egress, node: nodeOf(inputs, req.from) },
    ingress: { ...e.ingress, node: nodeOf(inputs, req.to) },
  };
}

export function renderAnswer(a: WhyAnswer): string {
  const port = a.portName ? `${a.port} ("${a.portName}")` : String(a.port);
  const line = (dir: string, v: WhyAnswer['egress']): string => {
    const where = v.node ? ` on ${v.node}` : '';
    const decided = v.policy ? `\n    rule: ${v.policy} ${v.rule}` : '';
    // A deny without a rule already names the isolating policies in its reason.
    const isolating = v.policy && v.policies.length > 0 ? `\n    isolated by: ${v.policies.join(', ')}` : '';
    return `${`${dir}${where}:`.padEnd(28)} ${v.verdict}\n    ${v.reason}${decided}${isolating}`;
  };
  return [`${a.from} -> ${a.to} ${a.protocol} ${port}: ${a.allowed ? 'ALLOWED' : 'DENIED'}`, line('egress', a.egress), line('ingress', a.ingress)].join('\n') + '\n';
}

export async function why(argv: string[], io: WhyIO): Promise<number> {
  let req: WhyRequest | 'help';
  try {
    req = parseRequest(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`skiff ${e.message}\nRun 'skiff policy why --help' for its flags.\n`);
    return 2;
  }
  if (req === 'help') {
    io.out(helpText('policy why', SUMMARY, OPTIONS, DESCRIPTIONS));
    return 0;
  }
  let a: WhyAnswer;
  try {
    const inputs = await fetchInputs(loadKubeConfig(req.kubeconfig, io.env), io.err);
    a = answer(inputs, req);
  } catch (e) {
    const msg = e instanceof SkiffError && e.code !== 'ERR_API_REQUEST' ? e.message : `policy why: cannot list from the API server: ${(e as Error).message}`;
    io.err(`skiff ${msg}\n`);
    return 2;
  }
  io.out(req.output === 'json' ? JSON.stringify(a, null, 2) + '\n' : renderAnswer(a));
  return a.allowed ? 0 : 1;
}

export function main(argv: string[]): Promise<number> {
  return why(argv, { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), env: process.env });
}
