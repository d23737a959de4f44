// A one-node cluster in network namespaces for root tests: a "node" namespace (where the rules go),
// routed /32 "pods" (each a namespace running a small HTTP + UDP echo server) and an outside
// "client" namespace. Pods are routed, not bridged, so every pod packet crosses the node's
// conntrack exactly as it would with a CNI. Nothing touches the host's own namespace.
import type { ChildProcess } from 'node:child_process';
import { CommandError, execRunner, type Runner } from '../exec.js';
import { addNetns, cleanupPrefix, inNs as inNsOnce, sh, spawnInNs, type RunResult } from '../../test/support/netns.js';
import { RawNetlinkSocket } from 'netlink';
import { loadNetnsAddon } from '../../cni/plugin/netns-addon.js';
import { nfTablesBatches, type NfTablesBatches } from '../../common/nft/batch.js';

/**
 * `ip netns exec` itself (exit 255, before the command runs) can fail transiently while other
 * suites add and delete namespaces on a busy machine; such failures are retried, the command's
 * own failures are not.
 */
async function inNs(ns: string, cmd: string, args: readonly string[], input?: string): Promise<RunResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await inNsOnce(ns, cmd, args, input);
    } catch (e) {
      if (!(e instanceof CommandError && e.exitCode === 255) || attempt >= 4) throw e;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

/** A Runner into namespace ns with the same retry, for the proxy under test. */
export function nsRunner(ns: string): Runner {
  const run = execRunner(['ip', 'netns', 'exec', ns]);
  return async (cmd, args, input) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run(cmd, args, input);
      } catch (e) {
        if (!(e instanceof CommandError && e.exitCode === 255 && cmd !== 'conntrack') || attempt >= 4) throw e;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  };
}

/**
 * nf_tables batches written into namespace ns, as the agent writes its staged elements into its
 * own; undefined (nft text then) when the netns addon is not built, with the reason.
 */
export function nsBatches(ns: string): { batches?: NfTablesBatches; error?: string } {
  const { addon, error } = loadNetnsAddon();
  if (!addon) return { error: `netns addon: ${error}` };
  return { batches: nfTablesBatches(() => addon.inNetns(`/run/netns/${ns}`, () => new RawNetlinkSocket(12, { recvBufferSize: 1 << 20, sendBufferSize: 4 << 20 }))) };
}

export const CLIENT_IP = '192.168.77.2';
export const NODE_IP = '192.168.77.1';
export const POD_GW = '10.244.1.1';
// The same layout over IPv6, for dual-stack Services.
export const CLIENT_IP6 = 'fd00:77::2';
export const NODE_IP6 = 'fd00:77::1';
export const POD_GW6 = 'fd00:244::1';
/** A pod's IPv6 address: 10.244.1.x becomes fd00:244::x (hexadecimal). */
export const podIP6 = (ip4: string): string => `fd00:244::${Number(ip4.split('.')[3]).toString(16)}`;

const SERVER = `
const name = process.argv[1];
const answer = (q, s) => s.end(name + ' ' + q.socket.remoteAddress.replace('::ffff:', ''));
require('http').createServer(answer).listen(8080);
// A second port: endpoints of one Service port may listen on different numbers (named targetPort).
require('http').createServer((q, s) => answer(q, s)).listen(8081);
const u = require('dgram').createSocket('udp4');
u.on('message', (m, r) => u.send(name + ' ' + r.address, r.port, r.address));
u.bind(5353);
`;

const UDP_CLIENT = `
const [ip, port, srcPort] = process.argv.slice(1);
const s = require('dgram').createSocket('udp4');
const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, 1000);
s.on('message', (m) => { console.log(String(m)); clearTimeout(t); s.close(); });
s.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });
s.bind(Number(srcPort) || 0, () => s.send('x', Number(port), ip));
`;

export class Topology {
  readonly node: string;
  readonly client: string;
  private readonly servers: ChildProcess[] = [];
  private readonly pods = new Map<string, string>();
  private podCount = 0;

  constructor(readonly prefix: string) {
    if (!prefix.startsWith('skiffpx-')) throw new Error('proxy test namespaces must start with skiffpx-');
    this.node = `${prefix}node`;
    this.client = `${prefix}cl`;
  }

  async create(): Promise<void> {
    cleanupPrefix(this.prefix);
    await addNetns(this.node);
    await addNetns(this.client);
    await inNs(this.node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    // A default route so traffic to unserved Service addresses takes the forward path, as on a node.
    // (A veth pair inside the node: the kernel here has no dummy driver.)
    await sh('ip', ['-n', this.node, 'link', 'add', 'skiffpd', 'type', 'veth', 'peer', 'name', 'skiffpd2']);
    await sh('ip', ['-n', this.node, 'link', 'set', 'skiffpd2', 'up']);
    await sh('ip', ['-n', this.node, 'link', 'set', 'skiffpd', 'up']);
    await sh('ip', ['-n', this.node, 'route', 'add', 'default', 'dev', 'skiffpd']);
    await sh('ip', ['-n', this.node, '-6', 'route', 'add', 'default', 'dev', 'skiffpd']);
    await sh('ip', ['-n', this.node, 'link', 'add', 'skiffpc', 'type', 'veth', 'peer', 'name', 'skiffpe', 'netns', this.client]);
    await sh('ip', ['-n', this.node, 'addr', 'add', `${NODE_IP}/24`, 'dev', 'skiffpc']);
    await sh('ip', ['-n', this.node, 'addr', 'add', `${NODE_IP6}/64`, 'dev', 'skiffpc', 'nodad']);
    await sh('ip', ['-n', this.node, 'link', 'set', 'skiffpc', 'up']);
    await sh('ip', ['-n', this.client, 'addr', 'add', `${CLIENT_IP}/24`, 'dev', 'skiffpe']);
    await sh('ip', ['-n', this.client, 'addr', 'add', `${CLIENT_IP6}/64`, 'dev', 'skiffpe', 'nodad']);
    await sh('ip', ['-n', this.client, 'link', 'set', 'skiffpe', 'up']);
    await sh('ip', ['-n', this.client, 'route', 'add', 'default', 'via', NODE_IP]);
    await sh('ip', ['-n', this.client, '-6', 'route', 'add', 'default', 'via', NODE_IP6]);
  }

  /** Adds pod `name` with address ip (10.244.1.x) and starts its servers. */
  async addPod(name: string, ip: string): Promise<void> {
    const ns = `${this.prefix}${name}`;
    const idx = ++this.podCount;
    await addNetns(ns);
    const host = `skiffpv${idx}`;
    await sh('ip', ['-n', this.node, 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'skiffpeth', 'netns', ns]);
    const ip6 = podIP6(ip);
    await sh('ip', ['-n', this.node, 'addr', 'add', `${POD_GW}/32`, 'dev', host]);
    await sh('ip', ['-n', this.node, 'addr', 'add', `${POD_GW6}/128`, 'dev', host, 'nodad']);
    await sh('ip', ['-n', this.node, 'link', 'set', host, 'up']);
    await sh('ip', ['-n', this.node, 'route', 'add', `${ip}/32`, 'dev', host]);
    await sh('ip', ['-n', this.node, '-6', 'route', 'add', `${ip6}/128`, 'dev', host]);
    await sh('ip', ['-n', ns, 'addr', 'add', `${ip}/32`, 'dev', 'skiffpeth']);
    await sh('ip', ['-n', ns, 'addr', 'add', `${ip6}/128`, 'dev', 'skiffpeth', 'nodad']);
    await sh('ip', ['-n', ns, 'link', 'set', 'skiffpeth', 'up']);
    await sh('ip', ['-n', ns, 'route', 'add', POD_GW, 'dev', 'skiffpeth']);
    await sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', POD_GW]);
    await sh('ip', ['-n', ns, '-6', 'route', 'add', POD_GW6, 'dev', 'skiffpeth']);
    await sh('ip', ['-n', ns, '-6', 'route', 'add', 'default', 'via', POD_GW6]);
    this.pods.set(name, ns);
    const p = spawnInNs(ns, process.execPath, ['-e', SERVER, name]);
    this.servers.push(p);
    for (let i = 0; i < 100; i++) {
      if ((await this.curlFrom(this.node, `http://${ip}:8080/`, 1).catch(() => '')).startsWith(name)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`pod ${name} server did not start`);
  }

  podNs(name: string): string {
    return this.pods.get(name)!;
  }

  /** HTTP GET from a namespace; resolves the body, or "exit N" for curl's failure code. */
  async curlFrom(ns: string, url: string, timeoutS = 2): Promise<string> {
    try {
      // -g: brackets are an IPv6 literal, not a glob.
      return (await inNs(ns, 'curl', ['-s', '-g', '-m', String(timeoutS), url])).stdout;
    } catch (e) {
      return `exit ${e instanceof CommandError ? e.exitCode : '?'}`;
    }
  }

  /** One UDP request/response; "timeout" when nothing came back within a second. */
  async udpFrom(ns: string, ip: string, port: number, srcPort = 0): Promise<string> {
    return (await inNs(ns, process.execPath, ['-e', UDP_CLIENT, ip, String(port), String(srcPort)])).stdout.trim();
  }

  async nft(args: string[], input?: string): Promise<string> {
    return (await inNs(this.node, 'nft', args, input)).stdout;
  }

  destroy(): void {
    for (const p of this.servers) p.kill('SIGKILL');
    cleanupPrefix(this.prefix);
  }
}
