// The policy component on a real kernel, inside the whole agent: a node namespace with its own API
// server on loopback, pods as namespaces wired by the agent's CNI through the C shim, policies
// written to the API. What it shows: traffic allowed then denied; an established connection cut
// within 1 s in strict mode and kept with the switch off; the node always reaching its pods; and a
// pod that connects, or is connected to, right after ADD (the same shell, no API status yet)
// meeting its policy.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../../test/support/env.js';
import { addNetns, cleanupPrefix, inNs, linkNamespaces } from '../../test/support/netns.js';
import { whoamiServer } from '../../test/cni/support/harness.js';
import { AgentNode } from './agent-node.js';

const P = 'skiffpn';
const PEER = `${P}-peer`;
const skip = missing('policy on a node', { root: true, tools: ['ip', 'nft', 'curl', 'socat', 'conntrack', 'cc'] });

const sel = (labels: Record<string, string>) => ({ matchLabels: labels });

describe.skipIf(skip)('policy component (root)', () => {
  const h = new AgentNode({ prefix: P, apiPort: 16445, podCIDR: '10.244.9.0/24', nodeIP: '172.31.222.11', agentArgs: ['--disable', 'proxy,dns'] });
  const NODE = h.node;
  const { curl } = h;
  const servers: ChildProcess[] = [];
  const ips = new Map<string, string>();
  const netpol = (name: string, spec: unknown) => curl('POST', '/apis/networking.k8s.io/v1/namespaces/x/networkpolicies', { metadata: { name, namespace: 'x' }, spec });
  const dropPolicy = (name: string) => curl('DELETE', `/apis/networking.k8s.io/v1/namespaces/x/networkpolicies/${name}`);
  const apiPod = (name: string, labels: Record<string, string>) =>
    curl('POST', '/api/v1/namespaces/x/pods', { metadata: { name, namespace: 'x', labels }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i', ports: [{ name: 'http', containerPort: 80 }] }] } });

  /**
   * ADD through the shim, then (in the same shell, no pause) one connection: from the new pod to
   * `target`, or into the new pod (its address read off its eth0) from the namespace `from`.
   */
  function addAndConnect(name: string, target?: { ip: string; port: number } | { from: string; port: number }): { code: number; ip: string; connected?: boolean } {
    const ns = `${P}-${name}`;
    const socat = (fromNs: string, ip: string, port: number) => `ip netns exec ${fromNs} socat -T1 - TCP4:${ip}:${port},connect-timeout=1 </dev/null 2>/dev/null; echo " rc=$?"`;
    const connect = !target
      ? ''
      : 'ip' in target
        ? `; printf '\\n@@'; ${socat(ns, target.ip, target.port)}`
        : `; printf '\\n@@'; ip=$(ip -n ${ns} -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1); ${socat(target.from, '$ip', target.port)}`;
    const r = h.cniAdd(name, connect);
    const [json, probe] = r.stdout.split('\n@@');
    const out = JSON.parse(json!) as { ips?: { address: string }[]; code?: number; msg?: string };
    if (!out.ips) throw new Error(`ADD ${name} failed: ${json}\nagent log:\n${h.log.slice(-2000)}`);
    const ip = out.ips[0]!.address.split('/')[0]!;
    ips.set(name, ip);
    return { code: r.status ?? -1, ip, ...(probe !== undefined ? { connected: /rc=0/.test(probe) && !/^\s*rc=/.test(probe) } : {}) };
  }

  async function newPod(name: string, labels: Record<string, string>, reportIP = true): Promise<string> {
    await addNetns(`${P}-${name}`);
    await apiPod(name, labels);
    const { ip } = addAndConnect(name);
    // What the kubelet would report after the ADD.
    if (reportIP) await curl('PATCH', `/api/v1/namespaces/x/pods/${name}/status`, { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } });
    return ip;
  }

  const connects = (fromNs: string, ip: string, port: number): boolean => h.connects(fromNs, ip, port);
  const waitFor = (what: string, check: () => boolean | Promise<boolean>, ms?: number): Promise<void> => h.waitFor(what, check, ms);

  beforeAll(async () => {
    cleanupPrefix(P);
    h.prepare();
    await addNetns(NODE);
    await addNetns(PEER);
    await linkNamespaces({ ns: NODE, ifname: `${P}-eth`, cidr: '172.31.222.11/24' }, { ns: PEER, ifname: `${P}-ul`, cidr: '172.31.222.1/24' });
    await h.startApi();
    // Off, same-node pod traffic would bypass the forward hook: the component turns it back on.
    await inNs(NODE, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=0']);
    await h.startAgent();
    expect((await inNs(NODE, 'sysctl', ['-n', 'net.bridge.bridge-nf-call-iptables'])).stdout.trim()).toBe('1');
    await newPod('a', { app: 'a' });
    await newPod('b', { app: 'b' });
    servers.push(whoamiServer(`${P}-a`, 80), whoamiServer(`${P}-b`, 80));
    // An echo server on b:81 for long-lived connections.
    servers.push(spawn('ip', ['netns', 'exec', `${P}-b`, 'socat', 'TCP4-LISTEN:81,reuseaddr,fork', 'EXEC:cat'], { stdio: 'ignore' }));
    await waitFor('the servers', () => connects(`${P}-a`, ips.get('b')!, 80) && connects(`${P}-b`, ips.get('a')!, 80));
  }, 120_000);

  afterAll(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await h.close();
    cleanupPrefix(P);
  }, 60_000);

  it('allows traffic until a policy denies it; the node still reaches the pod; denied packets are counted', async () => {
    const [a, b] = [`${P}-a`, `${P}-b`];
    expect(connects(a, ips.get('b')!, 80)).toBe(true);
    await netpol('b-deny-all', { podSelector: sel({ app: 'b' }), policyTypes: ['Ingress'] });
    await waitFor('the deny to be in force', () => !connects(a, ips.get('b')!, 80));
    // Kubelet probes come from the node: never subject to policy.
    expect(connects(NODE, ips.get('b')!, 80)).toBe(true);
    // b itself may still reach a (only b's ingress is isolated).
    expect(connects(b, ips.get('a')!, 80)).toBe(true);
    const metrics = (await inNs(NODE, 'curl', ['-sf', 'http://127.0.0.1:10249/metrics'])).stdout;
    expect(metrics).toMatch(/skiff_policy_denied_connections_total\{namespace="x",pod="b",direction="ingress"\} [1-9]/);
    expect(metrics).toMatch(/skiff_policy_sync_duration_seconds_count\{kind="partial"\} [1-9]/);
    await dropPolicy('b-deny-all');
    await waitFor('the policy to be gone', () => connects(a, ips.get('b')!, 80));
  }, 60_000);

  /** A connection from a to b:81 echoing lines; `alive()` sends one and waits up to ms for it back. */
  async function openEcho(): Promise<{ alive: (ms: number) => Promise<boolean>; close: () => void }> {
    const c = spawn('ip', ['netns', 'exec', `${P}-a`, 'socat', '-', `TCP4:${ips.get('b')}:81`], { stdio: ['pipe', 'pipe', 'ignore'] });
    let got = '';
    c.stdout!.on('data', (d) => (got += d));
    let n = 0;
    const alive = async (ms: number): Promise<boolean> => {
      const token = `ping${n++}\n`;
      c.stdin!.write(token);
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (got.includes(token)) return true;
        await new Promise((r) => setTimeout(r, 20));
      }
      return false;
    };
    return { alive, close: () => c.kill('SIGKILL') };
  }

  it('strict mode: an established connection a policy now denies is cut within 1 s', async () => {
    const echo = await openEcho();
    try {
      expect(await echo.alive(3000), `the echo connection never worked\n${h.log.slice(-2000)}`).toBe(true);
      const written = Date.now();
      await netpol('b-deny-strict', { podSelector: sel({ app: 'b' }), policyTypes: ['Ingress'] });
      await new Promise((r) => setTimeout(r, Math.max(0, written + 1000 - Date.now())));
      // 1 s after the API write: nothing gets through any more (it would, without strict mode).
      expect(await echo.alive(1500), `still alive 1 s after the policy\n${h.log.slice(-2000)}`).toBe(false);
      expect((await inNs(NODE, 'curl', ['-sf', 'http://127.0.0.1:10249/metrics'])).stdout).toMatch(/skiff_policy_conntrack_deleted_total [1-9]/);
    } finally {
      echo.close();
      await dropPolicy('b-deny-strict');
    }
    await waitFor('the policy to be gone', () => connects(`${P}-a`, ips.get('b')!, 80));
  }, 60_000);

  it('with policy.strictEstablished off, an established connection outlives the policy that denies it', async () => {
    await h.stopAgent();
    await h.startAgent(['--set', 'policy.strictEstablished=false']);
    const echo = await openEcho();
    try {
      expect(await echo.alive(3000), `the echo connection never worked\n${h.log.slice(-2000)}`).toBe(true);
      await netpol('b-deny-lax', { podSelector: sel({ app: 'b' }), policyTypes: ['Ingress'] });
      await waitFor('new connections to be denied', () => !connects(`${P}-a`, ips.get('b')!, 80));
      await new Promise((r) => setTimeout(r, 1000));
      expect(await echo.alive(1500), `cut although strict mode is off\n${h.log.slice(-2000)}`).toBe(true);
    } finally {
      echo.close();
      await dropPolicy('b-deny-lax');
      await h.stopAgent();
      await h.startAgent();
    }
  }, 120_000);

  it('a pod that connects right after ADD already meets its policy, both ways', async () => {
    const target = { ip: ips.get('a')!, port: 80 };
    await netpol('c-no-egress', { podSelector: sel({ app: 'c' }), policyTypes: ['Egress'] });
    await netpol('b-only-from-e', { podSelector: sel({ app: 'b' }), policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: sel({ app: 'e' }) }] }] });
    for (const name of ['c', 'd', 'e']) {
      await addNetns(`${P}-${name}`);
      await apiPod(name, { app: name });
    }
    // Wait until the agent has seen the three pods (their addresses are still unknown to the API).
    await waitFor('the pods in the watch', async () => {
      const m = (await inNs(NODE, 'curl', ['-sf', 'http://127.0.0.1:10249/metrics'])).stdout;
      return /skiff_watch_objects\{kind="policypods"\} 5/.test(m);
    });
    // c may not send anything: its first connection is dropped.
    expect(addAndConnect('c', target).connected).toBe(false);
    // d has no policy: the same first connection goes through, so the setup itself is not what blocks c.
    expect(addAndConnect('d', target).connected).toBe(true);
    // e is the only peer b admits: its address is in b's peer set before its ADD returned.
    expect(addAndConnect('e', { ip: ips.get('b')!, port: 80 }).connected).toBe(true);
    // ...and d, not selected, is refused by b.
    expect(connects(`${P}-d`, ips.get('b')!, 80)).toBe(false);
    await dropPolicy('c-no-egress');
    await dropPolicy('b-only-from-e');
  }, 60_000);

  it('a pod that is connected to right after ADD is already isolated by its ingress policy', async () => {
    await netpol('g-no-ingress', { podSelector: sel({ app: 'g' }), policyTypes: ['Ingress'] });
    // Each new pod serves before its network exists, so the first SYN that arrives is answered.
    for (const name of ['g', 'h']) {
      await addNetns(`${P}-${name}`);
      servers.push(whoamiServer(`${P}-${name}`, 80));
      await apiPod(name, { app: name });
    }
    await waitFor('the pods in the watch', async () => {
      const m = (await inNs(NODE, 'curl', ['-sf', 'http://127.0.0.1:10249/metrics'])).stdout;
      return /skiff_watch_objects\{kind="policypods"\} 7/.test(m);
    });
    // h has no policy: a's connection right after its ADD is answered, so the server is up in time...
    expect(addAndConnect('h', { from: `${P}-a`, port: 80 }).connected).toBe(true);
    // ...and g's first packet from a is dropped, the ADD having returned only with g isolated.
    expect(addAndConnect('g', { from: `${P}-a`, port: 80 }).connected).toBe(false);
    await dropPolicy('g-no-ingress');
    await waitFor('g open once its policy is gone', () => connects(`${P}-a`, ips.get('g')!, 80));
  }, 60_000);

  // Last: it leaves the agent running without policy.
  it('restarted with policy disabled, the agent removes its table; pods keep their network and a new pod is added', async () => {
    await netpol('b-isolated', { podSelector: sel({ app: 'b' }), policyTypes: ['Ingress'] });
    await waitFor('b isolated', () => !connects(`${P}-a`, ips.get('b')!, 80));
    await h.stopAgent();
    await h.startAgent(['--disable', 'proxy,dns,policy']);
    await expect(inNs(NODE, 'nft', ['list', 'table', 'inet', 'skiff-policy'])).rejects.toThrow();
    expect(h.log).not.toContain('cleanup of disabled feature failed');
    // Without policy there is no cluster-wide pod watch: the CNI works from what it always watched.
    const metrics = (await inNs(NODE, 'curl', ['-sf', 'http://127.0.0.1:10249/metrics'])).stdout;
    expect(metrics).toMatch(/skiff_watch_objects\{kind="services"\}/);
    expect(metrics).not.toMatch(/skiff_watch_objects\{kind="policypods"\}/);
    // The policy still exists in the API; nothing enforces it any more.
    expect(connects(`${P}-a`, ips.get('b')!, 80)).toBe(true);
    await addNetns(`${P}-f`);
    await apiPod('f', { app: 'f' });
    expect(addAndConnect('f', { ip: ips.get('b')!, port: 80 }).connected).toBe(true);
    await dropPolicy('b-isolated');
  }, 60_000);
});
