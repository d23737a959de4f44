// A one-node cluster for the scenarios that need a live agent: the node namespace joined to the
// host by a veth, the fake API server in this process on the host end, a few Services, and the
// real `skiff agent` in the namespace. The agent's DNS also listens on the node's veth address so
// this process can query it directly; its upstream is a dead port inside the namespace (nothing
// is ever forwarded off the machine) unless the scenario gives one.
import dgram from 'node:dgram';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { startFakeApiServer, type FakeApiServer, type KubeObject } from '../../sandbox/apiserver/index.js';
import { cleanupPrefix, inNs, linkNamespaces } from '../../test/support/netns.js';
import { agentConfig, getInNs, nodeNamespace, startAgent, stopAgent, tempDir, until, type AgentProcess } from './support.js';

export interface Cluster {
  readonly prefix: string;
  readonly ns: string;
  readonly hostIP: string;
  readonly nodeIP: string;
  readonly dir: string;
  api: FakeApiServer;
  agent: AgentProcess;
  readonly configPath: string;
  /** The second node, when asked for: a peer whose DNS takes node-0's pods while node-0's agent is down. */
  readonly peer?: { readonly ns: string; readonly nodeIP: string; agent: AgentProcess };
  restartAgent(signal: NodeJS.Signals): Promise<void>;
  close(): Promise<void>;
}

export const NODE = 'node-0';
export const POD_CIDR = '10.244.0.0/24';
export const PEER_NODE = 'node-1';
const PEER_POD_CIDR = '10.244.1.0/24';

export interface ClusterOptions {
  /**
   * A second node: its own veth to the host (192.168.<hostSubnet>.0/30, for the API server) and a
   * node-to-node link (192.168.<linkSubnet>.0/30) holding both nodes' InternalIPs, so the overlay
   * and node-to-node traffic stay between the two namespaces.
   */
  readonly peer?: { readonly hostSubnet: number; readonly linkSubnet: number };
  /** Run the compiled agent (dist/) rather than whatever skiffCommand() picks. */
  readonly compiled?: boolean;
}

const nodeObject = (name: string, podCIDR: string, ip: string): KubeObject => ({
  metadata: { name },
  spec: { podCIDR, podCIDRs: [podCIDR] },
  status: { addresses: [{ type: 'InternalIP', address: ip }], conditions: [{ type: 'Ready', status: 'True' }] },
});

export function serviceObject(name: string, ip: string, namespace = 'default'): KubeObject {
  return { metadata: { name, namespace }, spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ipFamilies: ['IPv4'], ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } };
}

export function sliceObject(svc: string, ips: string[], namespace = 'default'): KubeObject {
  return {
    metadata: { name: `${svc}-x`, namespace, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true, serving: true, terminating: false }, nodeName: NODE })),
  };
}

/** `subnet` is the third octet of 192.168.X.0/30 for the veth; every scenario uses its own. */
export async function startCluster(prefix: string, subnet: number, dnsExtra: Record<string, unknown> = {}, o: ClusterOptions = {}): Promise<Cluster> {
  cleanupPrefix(prefix);
  const ns = `${prefix}-n0`;
  const hostIP = `192.168.${subnet}.1`;
  const nodeIP = `192.168.${subnet}.2`;
  const dir = tempDir(prefix.slice('skiffg-'.length));
  await nodeNamespace(ns, `${prefix}-h0`, hostIP, nodeIP);
  const api = await startFakeApiServer({ host: hostIP, port: 0, bookmarkIntervalMs: 1000 });
  let internalIP = nodeIP;
  let peerNs: string | undefined;
  let peerIP: string | undefined;
  if (o.peer) {
    peerNs = `${prefix}-n1`;
    internalIP = `192.168.${o.peer.linkSubnet}.1`;
    peerIP = `192.168.${o.peer.linkSubnet}.2`;
    await nodeNamespace(peerNs, `${prefix}-h1`, `192.168.${o.peer.hostSubnet}.1`, `192.168.${o.peer.hostSubnet}.2`);
    // The API server listens on node-0's host address; the host takes it on any interface.
    await inNs(peerNs, 'ip', ['route', 'add', `${hostIP}/32`, 'dev', 'eth0']);
    await linkNamespaces({ ns, ifname: 'eth1', cidr: `${internalIP}/30` }, { ns: peerNs, ifname: 'eth1', cidr: `${peerIP}/30` });
    api.store.create('nodes', nodeObject(PEER_NODE, PEER_POD_CIDR, peerIP));
  }
  api.store.create('nodes', nodeObject(NODE, POD_CIDR, internalIP));
  api.store.create('services', serviceObject('kube-dns', '10.96.0.10', 'kube-system'));
  api.store.create('services', serviceObject('web', '10.96.0.20'));
  api.store.create('endpointslices', sliceObject('web', ['10.244.0.5', '10.244.0.6']));
  const kubeconfig = join(dir, 'kubeconfig');
  api.writeKubeconfig(kubeconfig);
  const configPath = agentConfig(dir, NODE, kubeconfig, {
    clusterCIDRs: ['10.244.0.0/16'],
    dns: { listen: [nodeIP], allowedSourceCIDRs: [`${hostIP}/32`], upstreams: ['127.0.0.1:5399'], ...dnsExtra },
  });
  let peer: Cluster['peer'];
  if (peerNs && peerIP) {
    const peerDir = join(dir, 'peer');
    mkdirSync(peerDir);
    const peerConfig = agentConfig(peerDir, PEER_NODE, kubeconfig, { clusterCIDRs: ['10.244.0.0/16'], dns: { upstreams: ['127.0.0.1:5399'] } });
    peer = { ns: peerNs, nodeIP: peerIP, agent: startAgent(peerNs, peerDir, peerConfig) };
  }
  const c: Cluster = {
    prefix,
    peer,
    ns,
    hostIP,
    nodeIP,
    dir,
    api,
    agent: startAgent(ns, dir, configPath, [], o.compiled),
    configPath,
    async restartAgent(signal) {
      await stopAgent(c.agent, signal);
      c.agent = startAgent(ns, dir, configPath, [], o.compiled);
      await waitReady(c);
    },
    async close() {
      await stopAgent(c.agent, 'SIGTERM', 10_000);
      if (c.peer) await stopAgent(c.peer.agent, 'SIGTERM', 10_000);
      await c.api.close();
      cleanupPrefix(prefix);
      // SKIFFG_KEEP=1 keeps the agent log and state for a post-mortem.
      if (!process.env.SKIFFG_KEEP) rmSync(dir, { recursive: true, force: true });
      else process.stderr.write(`[gauntlet] kept ${dir}\n`);
    },
  };
  try {
    await waitReady(c);
    if (c.peer) await waitReady({ ns: c.peer.ns, agent: c.peer.agent });
  } catch (e) {
    await c.close();
    throw e;
  }
  return c;
}

export async function waitReady(c: Pick<Cluster, 'ns' | 'agent'>, timeoutMs = 90_000): Promise<void> {
  await until(
    'agent /readyz',
    async () => {
      if (c.agent.proc.exitCode !== null) throw new Error(`agent exited with ${c.agent.proc.exitCode}; log ${c.agent.logPath}`);
      try {
        await getInNs(c.ns, 'http://127.0.0.1:10256/readyz');
        return true;
      } catch {
        return undefined;
      }
    },
    timeoutMs,
    250,
  );
}

export interface Answer {
  rcode: string;
  addresses: string[];
}

/** One UDP query from the host end of the veth to the agent's DNS on the node address. */
export function query(server: string, name: string, type: 'A' | 'AAAA' = 'A', timeoutMs = 2000, raw?: Buffer): Promise<Answer | undefined> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    const id = Math.floor(Math.random() * 65535);
    const msg = raw ?? dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
    const done = (a: Answer | undefined): void => {
      clearTimeout(t);
      sock.close();
      resolve(a);
    };
    const t = setTimeout(() => done(undefined), timeoutMs);
    sock.on('error', () => done(undefined));
    sock.on('message', (m) => {
      if (raw) return done({ rcode: 'RAW', addresses: [] });
      try {
        const p = dnsPacket.decode(m) as dnsPacket.DecodedPacket & { rcode?: string };
        if (p.id !== id) return;
        const answers = (p.answers ?? []) as { type: string; data?: unknown }[];
        done({ rcode: p.rcode ?? 'NOERROR', addresses: answers.filter((a) => a.type === 'A' || a.type === 'AAAA').map((a) => String(a.data)) });
      } catch {
        done({ rcode: 'UNPARSABLE', addresses: [] });
      }
    });
    sock.send(msg, 53, server);
  });
}
