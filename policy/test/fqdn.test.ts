// FQDN egress on a real kernel, through the whole agent (DNS in its worker thread, policy, CNI):
// a node namespace with its own API server, pods wired by the agent's CNI, and an "outside"
// namespace holding the upstream resolver (dnsmasq: allowed.example and denied.example, TTL 3 s)
// and a server on each name's address. An Admin ClusterNetworkPolicy lets pods labelled app=a
// reach DNS and `allowed.example.` on TCP 80 and denies every other egress. What it shows: the
// address is refused before any lookup; a lookup through skiff's DNS followed at once (same shell,
// no pause) by a connect succeeds; denied.example's address stays refused after its own lookup;
// the allowance lapses after the TTL without a new lookup; a pod the policy does not select feeds
// nothing. Everything carries the `skiffpq` prefix and is removed after.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../../test/support/env.js';
import { addNetns, cleanupPrefix, inNs, linkNamespaces } from '../../test/support/netns.js';
import { AgentNode } from './agent-node.js';

const P = 'skiffpq';
const OUT = `${P}-out`;
const POD_CIDR = '10.244.19.0/24';
const DNS_IP = '10.96.0.10';
const UPSTREAM = '172.31.226.1';
const ALLOWED_IP = '172.31.227.10';
const DENIED_IP = '172.31.227.20';
const TTL = 3;
const skip = missing('FQDN egress policy', { root: true, tools: ['ip', 'nft', 'curl', 'socat', 'dig', 'dnsmasq', 'cc'] });

describe.skipIf(skip)('FQDN egress: domainNames peers filled from skiff DNS answers (root)', () => {
  const h = new AgentNode({
    prefix: P,
    apiPort: 16446,
    podCIDR: POD_CIDR,
    nodeIP: '172.31.226.11',
    agentArgs: ['--dns-service-ips', DNS_IP, '--disable', 'proxy', '--set', `dns.upstreams=${UPSTREAM}:53`, '--set', 'policy.fqdnMinTTL=1'],
    cleanupArgs: ['--dns-service-ips', DNS_IP],
  });
  const NODE = h.node;
  const { curl } = h;
  const servers: ChildProcess[] = [];
  const waitFor = (what: string, check: () => boolean | Promise<boolean>, ms?: number): Promise<void> => h.waitFor(what, check, ms);

  async function newPod(name: string, labels: Record<string, string>): Promise<void> {
    const ns = `${P}-${name}`;
    await addNetns(ns);
    // What the kubelet writes into a pod (`ip netns exec` mounts /etc/netns/<ns>/* over /etc).
    mkdirSync(`/etc/netns/${ns}`, { recursive: true });
    writeFileSync(`/etc/netns/${ns}/resolv.conf`, `nameserver ${DNS_IP}\nsearch x.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`);
    await curl('POST', '/api/v1/namespaces/x/pods', { metadata: { name, namespace: 'x', labels }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i' }] } });
    const r = h.cniAdd(name);
    const out = JSON.parse(r.stdout) as { ips?: { address: string }[] };
    if (!out.ips) throw new Error(`ADD ${name} failed: ${r.stdout}\nagent log:\n${h.log.slice(-2000)}`);
    const ip = out.ips[0]!.address.split('/')[0]!;
    await curl('PATCH', `/api/v1/namespaces/x/pods/${name}/status`, { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } });
  }

  /** One TCP connection attempt from the pod; true when the server answered. */
  const connects = (pod: string, ip: string): boolean => h.connects(`${P}-${pod}`, ip, 80);

  /**
   * Resolves the name through skiff's DNS and connects to the answer at once, in one shell: with
   * dig (the name as given), or with the pod's own resolver (glibc, the pod's resolv.conf with
   * ndots:5 and the search path, so autopath answers the first expansion).
   */
  function resolveAndConnect(pod: string, name: string, via: 'dig' | 'libc' = 'dig'): { ip: string; connected: boolean } {
    const lookup = via === 'dig' ? `dig +short +time=2 +tries=1 @${DNS_IP} ${name} A | tail -n1` : `getent ahostsv4 ${name} | awk 'NR==1 {print $1}'`;
    const script = `ip=$(${lookup}); echo "ip=$ip"; socat -T1 - TCP4:$ip:80,connect-timeout=1 </dev/null 2>/dev/null; echo "rc=$?"`;
    const r = spawnSync('ip', ['netns', 'exec', `${P}-${pod}`, 'sh', '-c', script], { encoding: 'utf8', timeout: 10_000 });
    const ip = /ip=(\S*)/.exec(r.stdout)?.[1] ?? '';
    return { ip, connected: /rc=0/.test(r.stdout) && /\n(allowed|denied)\n/.test(r.stdout) };
  }

  beforeAll(async () => {
    cleanupPrefix(P);
    h.prepare();
    await addNetns(NODE);
    await addNetns(OUT);
    await linkNamespaces({ ns: NODE, ifname: `${P}-eth`, cidr: '172.31.226.11/24' }, { ns: OUT, ifname: `${P}-ul`, cidr: `${UPSTREAM}/24` });
    await inNs(NODE, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    // "The internet": two servers on addresses behind the outside namespace, routed both ways.
    for (const ip of [ALLOWED_IP, DENIED_IP]) await inNs(OUT, 'ip', ['addr', 'add', `${ip}/32`, 'dev', 'lo']);
    await inNs(NODE, 'ip', ['route', 'add', '172.31.227.0/24', 'via', UPSTREAM]);
    await inNs(OUT, 'ip', ['route', 'add', POD_CIDR, 'via', '172.31.226.11']);
    for (const [ip, word] of [[ALLOWED_IP, 'allowed'], [DENIED_IP, 'denied']]) servers.push(spawn('ip', ['netns', 'exec', OUT, 'socat', `TCP4-LISTEN:80,bind=${ip},reuseaddr,fork`, `SYSTEM:echo ${word}`], { stdio: 'ignore' }));
    servers.push(spawn('ip', ['netns', 'exec', OUT, 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--pid-file=', `--listen-address=${UPSTREAM}`, '--bind-interfaces', `--local-ttl=${TTL}`, `--host-record=allowed.example,${ALLOWED_IP}`, `--host-record=denied.example,${DENIED_IP}`], { stdio: 'ignore' }));
    await h.startApi();
    await h.startAgent();
    await newPod('a', { app: 'a' });
    await newPod('b', { app: 'b' });
    await waitFor('the outside servers', () => connects('a', ALLOWED_IP) && connects('a', DENIED_IP));
    await curl('POST', '/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies', {
      apiVersion: 'policy.networking.k8s.io/v1alpha2',
      kind: 'ClusterNetworkPolicy',
      metadata: { name: 'fqdn-only' },
      spec: {
        tier: 'Admin',
        priority: 10,
        subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'a' } } } },
        egress: [
          { name: 'dns', action: 'Accept', to: [{ networks: [`${DNS_IP}/32`] }], protocols: [{ udp: { destinationPort: { number: 53 } } }] },
          { name: 'allowed', action: 'Accept', to: [{ domainNames: ['allowed.example.'] }], protocols: [{ tcp: { destinationPort: { number: 80 } } }] },
          { name: 'rest', action: 'Deny', to: [{ networks: ['0.0.0.0/0'] }] },
        ],
      },
    });
    await waitFor('the policy to be in force', () => !connects('a', DENIED_IP));
  }, 180_000);

  afterAll(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await h.close();
    cleanupPrefix(P);
    for (const pod of ['a', 'b']) rmSync(`/etc/netns/${P}-${pod}`, { recursive: true, force: true });
  }, 60_000);

  async function lookupThenConnect(): Promise<void> {
    // Nothing looked up yet: the allowed name's address is refused like any other.
    expect(connects('a', ALLOWED_IP)).toBe(false);
    const first = resolveAndConnect('a', 'allowed.example');
    expect(first.ip).toBe(ALLOWED_IP);
    expect(first.connected, `no connection right after the lookup\n${h.log.slice(-3000)}`).toBe(true);
    // Within the TTL the address stays allowed without a new lookup.
    expect(connects('a', ALLOWED_IP)).toBe(true);
    const denied = resolveAndConnect('a', 'denied.example');
    expect(denied.ip).toBe(DENIED_IP);
    expect(denied.connected).toBe(false);
    // After the TTL it is refused again.
    await waitFor('the allowance to lapse', () => !connects('a', ALLOWED_IP), (TTL + 4) * 1000);
    // b is no subject of the policy: its lookups put nothing in force for a.
    expect(resolveAndConnect('b', 'allowed.example').connected).toBe(true);
    expect(connects('a', ALLOWED_IP)).toBe(false);
    // The way applications resolve: glibc tries allowed.example.x.svc.cluster.local first, which
    // autopath answers with a CNAME to allowed.example and its address; that too is in force at once.
    const libc = resolveAndConnect('a', 'allowed.example', 'libc');
    expect(libc.ip).toBe(ALLOWED_IP);
    expect(libc.connected, `no connection right after the glibc lookup\n${h.log.slice(-3000)}`).toBe(true);
    // The reply waited for the add: the time is in /metrics.
    const metrics = (await inNs(NODE, 'curl', ['-sf', 'http://127.0.0.1:10249/metrics'])).stdout;
    expect(metrics).toMatch(/skiff_dns_answer_feed_duration_seconds_count\{server="[^"]*"\} [1-9]/);
    expect(metrics).not.toMatch(/skiff_dns_answer_feed_failures_total\{[^}]*\} [1-9]/);
  }

  it('allows the first connect right after a lookup, only to the allowed name, until the TTL runs out (DNS on a worker thread)', lookupThenConnect, 60_000);

  it('the same with DNS on the main thread (dns.workers: 0)', async () => {
    await h.stopAgent();
    await h.startAgent(['--set', 'dns.workers=0']);
    await waitFor('the policy to be in force again', () => !connects('a', DENIED_IP));
    await lookupThenConnect();
  }, 120_000);
});
