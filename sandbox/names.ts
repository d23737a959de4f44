// Every name and address a sandbox uses, derived from its NAME and node count only, so `up`, the
// supervisor and `down` agree without sharing state, and two sandboxes with different names (and
// subnets) never collide. Link names are at most 15 bytes, hence the short NAME limit.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { UsageError } from '../common/errors.js';

export const DEFAULT_NAME = 'skiff';
export const DEFAULT_SUBNET = '172.31.213.0/24';
export const CLUSTER_CIDR = '10.244.0.0/16';
export const NODE_CIDR_MASK = 24;
export const SERVICE_CIDR = '10.96.0.0/12';
export const DNS_SERVICE_IP = '10.96.0.10';
export const CLUSTER_DOMAIN = 'cluster.local';
export const API_PORT = 6443;
/** The same API server over HTTPS (self-signed), the target of the `kubernetes` Service as in a real cluster. */
export const API_TLS_PORT = 6444;
export const AGENT_HEALTH_PORT = 10256;
/** The agent's metrics listener (common/config.ts metricsBindAddress, 0.0.0.0:10249 like kube-proxy). */
export const AGENT_METRICS_PORT = 10249;
/** TEST-NET-2 address on the outside namespace: "the internet" for masquerade tests. */
export const INTERNET_IP = '198.51.100.1';

export interface SandboxSpec {
  readonly name: string;
  readonly nodes: number;
  /** The underlay /24, e.g. 172.31.213.0/24. */
  readonly subnet: string;
  readonly stateDir: string;
}

export interface Layout extends SandboxSpec {
  readonly underlayNs: string;
  readonly bridge: string;
  /** Host end of the host<->underlay veth; carries the API server address. */
  readonly hostLink: string;
  readonly extNs: string;
  readonly hostIP: string;
  readonly extIP: string;
  readonly prefixLen: number;
  readonly apiServer: string;
  readonly kubeconfig: string;
  readonly pidFile: string;
  readonly logFile: string;
  readonly specFile: string;
  readonly apiStateFile: string;
  /** The TLS listener's self-signed certificate, for in-cluster clients (a service account's ca.crt). */
  readonly apiCaFile: string;
}

export function validateName(name: string): string {
  // "-" is the separator in derived names; NAME-host must fit in 15 bytes.
  if (!/^skiff[a-z0-9]{0,5}$/.test(name)) {
    throw new UsageError(`sandbox name "${name}" must be "skiff" followed by at most 5 lowercase letters or digits`);
  }
  return name;
}

export function validateSubnet(subnet: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)\.0\/24$/.exec(subnet);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) throw new UsageError(`--subnet must be an IPv4 /24 such as ${DEFAULT_SUBNET}, got "${subnet}"`);
  return subnet;
}

export function defaultStateDir(name: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.SKIFF_SANDBOX_DIR || join('/var/lib/skiff-sandbox', name);
}

export function layout(spec: SandboxSpec): Layout {
  const { name, subnet, stateDir } = spec;
  const base = subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  const hostIP = `${base}.1`;
  return {
    ...spec,
    underlayNs: `${name}-underlay`,
    bridge: `${name}-ul0`,
    hostLink: `${name}-host`,
    extNs: `${name}-ext`,
    hostIP,
    extIP: `${base}.2`,
    prefixLen: 24,
    apiServer: `http://${hostIP}:${API_PORT}`,
    kubeconfig: join(stateDir, 'kubeconfig'),
    pidFile: join(stateDir, 'supervisor.pid'),
    logFile: join(stateDir, 'supervisor.log'),
    specFile: join(stateDir, 'sandbox.json'),
    apiStateFile: join(stateDir, 'apiserver-state.json'),
    apiCaFile: join(stateDir, 'apiserver-ca.crt'),
  };
}

export interface NodeLayout {
  readonly index: number;
  /** Node object name and its netns name. */
  readonly name: string;
  readonly ip: string;
  readonly zone: string;
  readonly dir: string;
  readonly cniConfDir: string;
  readonly cniBinDir: string;
  readonly agentLog: string;
  readonly agentStatus: string;
}

/** Node i (1-based) sits at .10+i on the underlay; zones alternate a, b. */
export function nodeLayout(l: Layout, index: number): NodeLayout {
  const base = l.hostIP.split('.').slice(0, 3).join('.');
  const dir = join(l.stateDir, `node-${index}`);
  return {
    index,
    name: `${l.name}-node-${index}`,
    ip: `${base}.${10 + index}`,
    zone: index % 2 === 1 ? 'zone-a' : 'zone-b',
    dir,
    cniConfDir: join(dir, 'etc', 'cni', 'net.d'),
    cniBinDir: join(dir, 'opt', 'cni', 'bin'),
    agentLog: join(dir, 'agent.log'),
    agentStatus: join(dir, 'agent.status.json'),
  };
}

export function nodeLayouts(l: Layout): NodeLayout[] {
  return Array.from({ length: l.nodes }, (_, i) => nodeLayout(l, i + 1));
}

/** The pod netns name: stable for a pod UID, short enough for `ip netns` and log lines. */
export function podNetns(sandbox: string, uid: string): string {
  return `${sandbox}-pod-${createHash('sha256').update(uid).digest('hex').slice(0, 10)}`;
}

/** The container id handed to CNI (CNI_CONTAINERID), like a sandbox container id. */
export function podContainerId(uid: string): string {
  return createHash('sha256').update(`sandbox:${uid}`).digest('hex');
}
