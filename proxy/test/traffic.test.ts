// Real traffic through skiff's Service rules in a namespace "node", with each backend: nftables,
// and the iptables fallback with either flavour of iptables. The same behaviours, the same
// assertions: ClusterIP from outside, from pods and from the node, NodePort within
// nodePortAddresses, rejects and drops, source ranges, affinity, traffic policies, masquerade,
// UDP conntrack cleanup, drift repair and cleanup. nftables-only checks (the dual-stack table)
// come last.
import { execFileSync } from 'node:child_process';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../common/config.js';
import { Health } from '../../common/health.js';
import type { EndpointInfo, EndpointPort, ServiceInfo } from '../../common/types.js';
import { MemoryCache } from '../../common/watch/store.js';
import { missing } from '../../test/support/env.js';
import type { Dataplane } from '../dataplane.js';
import { desiredService } from '../desired.js';
import type { Runner } from '../exec.js';
import { endpoint, nodeCtx, service, slice } from '../fixtures.js';
import { addNetns, inNs, sh, spawnInNs } from '../../test/support/netns.js';
import { IptablesDataplane } from '../iptables/dataplane.js';
import { toolsOf, type IptablesMode } from '../iptables/mode.js';
import { svcChain } from '../iptables/render.js';
import { ExecNft } from '../nft/backend.js';
import { NftDataplane } from '../nft/dataplane.js';
import { NftSession } from '../../common/nft/session.js';
import { Proxier } from '../proxier.js';
import { CLIENT_IP, NODE_IP, NODE_IP6, POD_GW, POD_GW6, podIP6, Topology, nsBatches, nsRunner } from './topology.js';

/** The kernel has SCTP sockets (this one may not: the rules load either way, traffic needs them). */
function kernelHasSctp(): boolean {
  try {
    execFileSync('timeout', ['0.3', 'socat', '-u', 'SCTP4-LISTEN:19998,reuseaddr', 'STDOUT'], { stdio: 'ignore' });
    return true;
  } catch (e) {
    return (e as { status?: number }).status === 124; // still listening when the timeout hit
  }
}
const sctp = !missing('proxy SCTP traffic', { tools: ['socat', 'timeout'] }) && kernelHasSctp();
if (!sctp) console.warn('skipping the SCTP traffic check: this kernel has no SCTP sockets (its rules are still loaded and verified)');

const skip = missing('proxy traffic', { root: true, tools: ['nft', 'curl', 'conntrack', 'iptables-legacy-restore', 'iptables-nft-restore'] });

/** A backend under test: its dataplane, how to damage what it wrote, and what it leaves after cleanup. */
interface Backend {
  readonly name: string;
  readonly tag: string;
  dataplane(topo: Topology, run: Runner): Dataplane;
  /** Changes the rules behind the proxy's back so that 10.96.0.10 (web) is no longer served. */
  corrupt(topo: Topology): Promise<void>;
  /** What the periodic check must report after corrupt(). */
  readonly drift: RegExp;
  /** Whatever of skiff's is left in the kernel (empty after cleanup). */
  leftovers(topo: Topology): Promise<string>;
}

const webPort = desiredService(service('ns', 'web', { type: 'NodePort', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }] }), [], nodeCtx).ports[0]!;

const iptables = (mode: IptablesMode): Backend => ({
  name: `iptables (${mode})`,
  tag: mode === 'legacy' ? 'l' : 'f',
  dataplane: (_topo, run) => new IptablesDataplane(run, [4, 6], mode),
  corrupt: async (topo) => void (await inNs(topo.node, toolsOf(mode, 4).cmd, ['-w', '-t', 'nat', '-F', svcChain(webPort)])),
  drift: new RegExp(`nat ${svcChain(webPort)}: 0 rules, want \\d+`),
  leftovers: async (topo) => {
    const saved = [(await inNs(topo.node, toolsOf(mode, 4).save, [])).stdout, (await inNs(topo.node, toolsOf(mode, 6).save, [])).stdout].join('\n');
    return saved.split('\n').filter((l) => l.includes('SKIFF')).join('\n');
  },
});

const BACKENDS: readonly Backend[] = [
  {
    name: 'nftables',
    tag: 'n',
    // Partial syncs go through a long-lived `nft -i` in the namespace and staged elements over
    // netlink, as in the agent.
    dataplane: (topo, run) => new NftDataplane(new ExecNft(run, { session: new NftSession(['ip', 'netns', 'exec', topo.node, 'nft', '-i']), batches: nsBatches(topo.node).batches }), [4, 6]),
    corrupt: async (topo) => {
      await topo.nft(['delete', 'element', 'ip', 'skiff', 'service-ips-g1', '{ 10.96.0.10 . tcp . 80 }']);
      await topo.nft(['flush', 'chain', 'ip', 'skiff', 'lb-cluster-n2']);
    },
    drift: /ip skiff: (chain lb-cluster-n2 has 0 rules, want 3|service-ips-g1: element 10\.96\.0\.10 \. tcp \. 80 missing)/,
    leftovers: async (topo) => (await topo.nft(['list', 'tables'])).split('\n').filter((l) => l.includes('skiff')).join('\n'),
  },
  iptables('legacy'),
  iptables('nft'),
];

describe.skipIf(skip).each(BACKENDS)('Service traffic through $name', (backend) => {
  const topo = new Topology(`skiffpx-${backend.tag}-`);
  const cache = new MemoryCache();
  let proxier: Proxier;
  let dataplane: Dataplane;

  const svc = (name: string, ip: string, o: Partial<ServiceInfo> = {}): void => cache.upsert('services', `ns/${name}`, service('ns', name, { clusterIPs: [ip], ...o }));
  const eps = (name: string, list: EndpointInfo[], ports: EndpointPort[] = [{ name: 'http', port: 8080, protocol: 'TCP' }]): void =>
    cache.upsert('endpointslices', `ns/${name}-abc`, slice('ns', name, list, { ports }));
  const apply = async (): Promise<void> => {
    await new Promise((r) => setImmediate(r));
    await proxier.sync();
  };
  const who = (body: string): string => body.split(' ')[0]!;

  beforeAll(async () => {
    await topo.create();
    await Promise.all([topo.addPod('p1', '10.244.1.11'), topo.addPod('p2', '10.244.1.12'), topo.addPod('p3', '10.244.1.13')]);
    // A second node address, outside nodePortAddresses (the client reaches it through its default route).
    await sh('ip', ['-n', topo.node, 'addr', 'add', '10.250.0.1/32', 'dev', 'skiffpd']);
    const config = parseConfig({
      nodeName: 'node-a',
      clusterCIDRs: ['10.244.0.0/16', 'fd00:244::/64'],
      serviceCIDRs: ['10.96.0.0/12', 'fd00:96::/112'],
      proxy: { minSyncPeriod: 0, nodePortAddresses: ['192.168.77.0/24', 'fd00:77::/64'] },
    });
    const run = nsRunner(topo.node);
    dataplane = backend.dataplane(topo, run);
    proxier = new Proxier({ cache, config, log: pino({ level: 'silent' }), health: new Health(), dataplane, run });
    cache.subscribe(['services', 'endpointslices', 'nodes'], (b) => proxier.onBatch(b));
    cache.markSynced('services');
    cache.markSynced('endpointslices');
    cache.markSynced('nodes');

    svc('web', '10.96.0.10', { type: 'NodePort', ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }] });
    eps('web', [endpoint('10.244.1.11'), endpoint('10.244.1.12')]);
    svc('empty', '10.96.0.20');
    svc('dns', '10.96.0.53', { ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 5353 }] });
    eps('dns', [endpoint('10.244.1.11')], [{ name: 'dns', port: 5353, protocol: 'UDP' }]);
    svc('sticky', '10.96.0.30', { sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 60 });
    eps('sticky', [endpoint('10.244.1.11'), endpoint('10.244.1.12')]);
    svc('local', '10.96.0.40', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30040 }] });
    eps('local', [endpoint('10.244.1.11'), endpoint('10.244.1.12', { nodeName: 'node-b' })]);
    const lbPorts = [{ name: 'http', protocol: 'TCP' as const, port: 80, targetPort: 8080, nodePort: 30050 }];
    svc('lb-open', '10.96.0.50', { type: 'LoadBalancer', loadBalancerIPs: ['203.0.113.10'], loadBalancerSourceRanges: ['192.168.77.0/24'], ports: lbPorts });
    eps('lb-open', [endpoint('10.244.1.12')]);
    svc('lb-closed', '10.96.0.51', { type: 'LoadBalancer', loadBalancerIPs: ['203.0.113.11'], loadBalancerSourceRanges: ['198.51.100.0/24'], ports: [{ ...lbPorts[0]!, nodePort: 30051 }] });
    eps('lb-closed', [endpoint('10.244.1.12')]);
    svc('ext', '10.96.0.60', { externalIPs: ['203.0.113.20'] });
    eps('ext', [endpoint('10.244.1.11')]);
    svc('empty-udp', '10.96.0.21', { ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 53 }] });
    svc('empty-np', '10.96.0.22', { type: 'NodePort', ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30022 }] });
    // Dual-stack: one Service, a cluster IP and a slice per family.
    svc('web6', '10.96.0.90', { type: 'NodePort', clusterIPs: ['10.96.0.90', 'fd00:96::90'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30090 }] });
    eps('web6', [endpoint('10.244.1.11'), endpoint('10.244.1.12')]);
    cache.upsert('endpointslices', 'ns/web6-v6', slice('ns', 'web6', [endpoint(podIP6('10.244.1.11')), endpoint(podIP6('10.244.1.12'))], { name: 'web6-v6', addressType: 'IPv6' }));
    svc('sctp', '10.96.0.80', { ports: [{ name: 'sig', protocol: 'SCTP', port: 3868, targetPort: 3868 }] });
    eps('sctp', [endpoint('10.244.1.12')], [{ name: 'sig', port: 3868, protocol: 'SCTP' }]);
    await apply();
  }, 60_000);

  afterAll(async () => {
    await dataplane.cleanup().catch(() => undefined);
    topo.destroy();
  });

  it('ClusterIP from outside the cluster reaches every endpoint, masqueraded', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 16; i++) {
      const body = await topo.curlFrom(topo.client, 'http://10.96.0.10/');
      expect(body).toMatch(new RegExp(`^p[12] ${POD_GW}$`));
      seen.add(who(body));
    }
    expect([...seen].sort()).toEqual(['p1', 'p2']);
  });

  it('pod to Service keeps the client pod IP', async () => {
    expect(await topo.curlFrom(topo.podNs('p3'), 'http://10.96.0.10/')).toMatch(/^p[12] 10\.244\.1\.13$/);
  });

  it('the node itself reaches a ClusterIP, is refused on an unserved port, and LB source ranges apply to it', async () => {
    expect(await topo.curlFrom(topo.node, 'http://10.96.0.10/')).toMatch(/^p[12] /);
    expect(await topo.curlFrom(topo.node, 'http://10.96.0.10:81/')).toBe('exit 7');
    expect(await topo.curlFrom(topo.node, 'http://10.96.0.20/')).toBe('exit 7');
    // lb-closed admits only 198.51.100.0/24, which holds none of the node's addresses: checked on
    // the LB address before the DNAT rewrites it, as for traffic arriving from outside.
    expect(await topo.curlFrom(topo.node, 'http://203.0.113.11/', 1)).toBe('exit 28');
    expect(await topo.curlFrom(topo.node, 'http://203.0.113.20/')).toMatch(/^p1 /);
  });

  it('a pod reaching itself through its Service is masqueraded (hairpin)', async () => {
    for (let i = 0; i < 6; i++) {
      const body = await topo.curlFrom(topo.podNs('p1'), 'http://10.96.0.10/');
      expect(body === `p1 ${POD_GW}` || body === 'p2 10.244.1.11').toBe(true);
    }
  });

  it('NodePort from outside, masqueraded', async () => {
    expect(await topo.curlFrom(topo.client, `http://${NODE_IP}:30080/`)).toMatch(new RegExp(`^p[12] ${POD_GW}$`));
  });

  it('no endpoints, an unserved port and an unallocated address: refused at once or dropped', async () => {
    // curl exit 7 is "connection refused": an answer, never a timeout (that would be 28).
    expect(await topo.curlFrom(topo.client, 'http://10.96.0.20/')).toBe('exit 7');
    expect(await topo.curlFrom(topo.podNs('p3'), 'http://10.96.0.10:81/')).toBe('exit 7');
    // 10.96.0.99 is routed to p3, which holds it and would refuse the connection (exit 7): only
    // the drop of unallocated Service addresses makes it a timeout.
    await sh('ip', ['-n', topo.node, 'route', 'replace', '10.96.0.99/32', 'dev', 'skiffpv3']);
    await sh('ip', ['-n', topo.podNs('p3'), 'addr', 'replace', '10.96.0.99/32', 'dev', 'lo']);
    expect(await topo.curlFrom(topo.client, 'http://10.96.0.99:8080/', 1)).toBe('exit 28');
  });

  it('a TCP connect that is refused is refused at once, with a reset', async () => {
    // Timed inside the client: an ICMP port unreachable in SYN_SENT is a soft error on this kernel,
    // so without a reset the refusal only lands with the SYN retransmit, about 1 s later.
    const timedConnect = (host: string, port: number): string => `const t0 = process.hrtime.bigint();
      const c = require('net').connect({ host: '${host}', port: ${port} });
      c.on('connect', () => { console.log('connected'); process.exit(0); });
      c.on('error', (e) => { console.log(e.code, Number(process.hrtime.bigint() - t0) / 1e6); process.exit(0); });
      setTimeout(() => { console.log('timeout'); process.exit(0); }, 3000);`;
    const refusal = async (ns: string, host: string, port: number): Promise<{ code: string; ms: number }> => {
      const [code, ms] = (await inNs(ns, process.execPath, ['-e', timedConnect(host, port)])).stdout.trim().split(' ');
      return { code: code!, ms: Number(ms) };
    };
    for (const [ns, host, port] of [
      [topo.podNs('p3'), '10.96.0.20', 80], // no endpoints
      [topo.podNs('p3'), '10.96.0.10', 81], // an unserved port of a Service IP
      [topo.podNs('p3'), 'fd00:96::90', 81],
      [topo.client, NODE_IP, 30022], // a NodePort without endpoints
      [topo.node, '10.96.0.20', 80],
    ] as const) {
      const r = await refusal(ns, host, port);
      expect({ to: `${host}:${port}`, code: r.code }).toEqual({ to: `${host}:${port}`, code: 'ECONNREFUSED' });
      // Well under the ~1 s a refusal by ICMP alone takes, with room for a loaded CI machine (it
      // took over 100 ms there when the test suites ran beside it).
      expect(r.ms).toBeLessThan(500);
    }
  });

  it('LoadBalancer IPs honour loadBalancerSourceRanges; externalIPs work', async () => {
    expect(await topo.curlFrom(topo.client, 'http://203.0.113.10/')).toBe(`p2 ${POD_GW}`);
    expect(await topo.curlFrom(topo.client, 'http://203.0.113.11/', 1)).toBe('exit 28');
    expect(await topo.curlFrom(topo.client, 'http://203.0.113.20/')).toBe(`p1 ${POD_GW}`);
  });

  it('a dual-stack Service answers over IPv6 too: ClusterIP from outside (masqueraded) and from a pod (kept), NodePort', async () => {
    const v6 = (body: string) => body.replace(/^(p[12]) /, '$1|');
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const body = await topo.curlFrom(topo.client, 'http://[fd00:96::90]/');
      expect(v6(body)).toMatch(new RegExp(`^p[12]\\|${POD_GW6}$`));
      seen.add(who(body));
    }
    expect([...seen].sort()).toEqual(['p1', 'p2']);
    expect(await topo.curlFrom(topo.podNs('p3'), 'http://[fd00:96::90]/')).toMatch(new RegExp(`^p[12] ${podIP6('10.244.1.13')}$`));
    expect(await topo.curlFrom(topo.client, `http://[${NODE_IP6}]:30090/`)).toMatch(/^p[12] /);
    // The IPv4 side of the same Service, unchanged; an unserved IPv6 port is refused.
    expect(await topo.curlFrom(topo.podNs('p3'), 'http://10.96.0.90/')).toMatch(/^p[12] 10\.244\.1\.13$/);
    expect(await topo.curlFrom(topo.podNs('p3'), 'http://[fd00:96::90]:81/')).toBe('exit 7');
  });

  it('without endpoints, a UDP Service and a NodePort are refused at once, even where the node listens', async () => {
    // A connected UDP socket sees the ICMP port unreachable as ECONNREFUSED; without the reject the
    // datagram would be forwarded out of the default route and never answered.
    const CONNECTED_UDP = `const s = require('dgram').createSocket('udp4');
      setTimeout(() => { console.log('timeout'); process.exit(0); }, 1500);
      s.on('error', (e) => { console.log(e.code); process.exit(0); });
      s.connect(53, '10.96.0.21', () => { s.send('x'); setTimeout(() => s.send('x'), 200); });`;
    expect((await inNs(topo.podNs('p3'), process.execPath, ['-e', CONNECTED_UDP])).stdout.trim()).toBe('ECONNREFUSED');
    // Something of the node's own listens on that port: the Service's refusal still comes first.
    const listener = spawnInNs(topo.node, 'socat', ['TCP4-LISTEN:30022,reuseaddr,fork', 'SYSTEM:echo node']);
    try {
      await new Promise((r) => setTimeout(r, 300));
      expect(await topo.curlFrom(topo.client, `http://${NODE_IP}:30022/`)).toBe('exit 7');
    } finally {
      listener.kill('SIGKILL');
    }
  });

  it('a forwarded packet conntrack calls INVALID is dropped, not passed on (no spurious resets)', async () => {
    // An established pod-to-pod connection loses its conntrack entry; with mid-stream pickup off,
    // its next packets are INVALID. Passed on, they would reach the other end un-NATed (for a
    // DNATed flow, the source of kube-proxy's "connection reset by peer"); dropped, they stall.
    const echo = spawnInNs(topo.podNs('p1'), 'socat', ['TCP4-LISTEN:7777,reuseaddr,fork', 'EXEC:cat']);
    const CLIENT = `const c = require('net').connect(7777, '10.244.1.11');
      let step = 0;
      c.on('data', (d) => { if (step === 0 && String(d) === 'a') { step = 1; console.log('first'); setTimeout(() => c.write('b'), 1000); } else if (step === 1) { console.log('second'); process.exit(0); } });
      c.on('connect', () => c.write('a'));
      setTimeout(() => { console.log('stalled'); process.exit(0); }, 3000);`;
    await inNs(topo.node, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_tcp_loose=0']);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const client = spawnInNs(topo.podNs('p3'), process.execPath, ['-e', CLIENT]);
      let out = '';
      client.stdout!.on('data', (d) => (out += d));
      const done = new Promise((r) => client.once('close', r));
      const end = Date.now() + 2000;
      while (!out.includes('first') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(out).toContain('first');
      await inNs(topo.node, 'conntrack', ['-D', '-p', 'tcp', '--dport', '7777']);
      await done;
      expect(out.trim().split('\n')).toEqual(['first', 'stalled']);
    } finally {
      echo.kill('SIGKILL');
      await inNs(topo.node, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_tcp_loose=1']);
    }
  });

  it.skipIf(!sctp)('SCTP ClusterIP', async () => {
    const server = spawnInNs(topo.podNs('p2'), 'socat', ['SCTP4-LISTEN:3868,reuseaddr,fork', 'SYSTEM:echo p2-sctp']);
    try {
      await new Promise((r) => setTimeout(r, 300));
      expect((await inNs(topo.podNs('p3'), 'socat', ['-T2', '-', 'SCTP4:10.96.0.80:3868'], '')).stdout.trim()).toBe('p2-sctp');
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('UDP ClusterIP', async () => {
    expect(await topo.udpFrom(topo.podNs('p3'), '10.96.0.53', 53)).toBe('p1 10.244.1.13');
  });

  it('ClientIP affinity pins a client to one endpoint', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) seen.add(who(await topo.curlFrom(topo.client, 'http://10.96.0.30/')));
    expect(seen.size).toBe(1);
  });

  it('externalTrafficPolicy Local: only local endpoints, client IP kept, dropped without one', async () => {
    for (let i = 0; i < 6; i++) expect(await topo.curlFrom(topo.client, `http://${NODE_IP}:30040/`)).toBe(`p1 ${CLIENT_IP}`);
    eps('local', [endpoint('10.244.1.12', { nodeName: 'node-b' })]);
    await apply();
    expect(await topo.curlFrom(topo.client, `http://${NODE_IP}:30040/`, 1)).toBe('exit 28');
    // Cluster traffic still reaches the remote endpoint.
    expect(await topo.curlFrom(topo.podNs('p3'), 'http://10.96.0.40/')).toBe('p2 10.244.1.13');
  });

  it('removing a UDP endpoint flushes its conntrack entries', async () => {
    expect(await topo.udpFrom(topo.podNs('p3'), '10.96.0.53', 53, 40001)).toBe('p1 10.244.1.13');
    eps('dns', [endpoint('10.244.1.12')], [{ name: 'dns', port: 5353, protocol: 'UDP' }]);
    await apply();
    // Same 5-tuple: without the flush the old entry would still lead to p1.
    expect(await topo.udpFrom(topo.podNs('p3'), '10.96.0.53', 53, 40001)).toBe('p2 10.244.1.13');
  });

  it('endpoints listening on different ports of a named targetPort all take traffic', async () => {
    svc('mixed', '10.96.0.70');
    cache.upsert('endpointslices', 'ns/mixed-a', slice('ns', 'mixed', [endpoint('10.244.1.11')], { name: 'mixed-a' }));
    cache.upsert('endpointslices', 'ns/mixed-b', slice('ns', 'mixed', [endpoint('10.244.1.12')], { name: 'mixed-b', ports: [{ name: 'http', port: 8081, protocol: 'TCP' }] }));
    await apply();
    const seen = new Set<string>();
    for (let i = 0; i < 16; i++) seen.add(who(await topo.curlFrom(topo.podNs('p3'), 'http://10.96.0.70/')));
    expect([...seen].sort()).toEqual(['p1', 'p2']);
    // Back to one port: the plain tail again.
    cache.remove('endpointslices', 'ns/mixed-b');
    await apply();
    for (let i = 0; i < 4; i++) expect(await topo.curlFrom(topo.podNs('p3'), 'http://10.96.0.70/')).toBe('p1 10.244.1.13');
  });

  it('NodePorts answer only on the node addresses within nodePortAddresses', async () => {
    expect(await topo.curlFrom(topo.client, `http://${NODE_IP}:30080/`)).toMatch(/^p[12] /);
    // 10.250.0.1 is the node's too, but outside 192.168.77.0/24: nothing listens there.
    expect(await topo.curlFrom(topo.client, 'http://10.250.0.1:30080/')).toBe('exit 7');
  });

  it('the periodic check finds and repairs drift', async () => {
    expect(await proxier.check()).toEqual([]);
    await backend.corrupt(topo);
    const drift = await proxier.check();
    expect(drift.some((d) => backend.drift.test(d)), drift.join('; ')).toBe(true);
    await proxier.sync();
    expect(await proxier.check()).toEqual([]);
    expect(await topo.curlFrom(topo.client, 'http://10.96.0.10/')).toMatch(/^p[12] /);
  });

  it('cleanup removes every rule skiff wrote', async () => {
    expect(await backend.leftovers(topo)).not.toBe('');
    await dataplane.cleanup();
    expect(await backend.leftovers(topo)).toBe('');
  });
});

describe.skipIf(skip)('nftables only', () => {
  const topo = new Topology('skiffpx-6-');
  afterAll(() => topo.destroy());

  it('a dual-stack table loads, and a full sync replaces what is there', async () => {
    const ns = `${topo.prefix}v6`;
    await addNetns(ns);
    try {
      const dp = new NftDataplane(new ExecNft(nsRunner(ns)), [4, 6]);
      const ctx = { ...nodeCtx, clusterCIDRs: ['10.244.0.0/16', 'fd00:244::/56'], serviceCIDRs: ['10.96.0.0/12', 'fd00:96::/112'], nodePortAddresses: ['192.168.0.0/16', 'fd00:1::/64'] };
      const s = service('ns', 'ds', { type: 'NodePort', clusterIPs: ['10.96.0.70', 'fd00:96::70'], sessionAffinity: 'ClientIP', ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 53, nodePort: 30053 }] });
      const slices = [
        slice('ns', 'ds', [endpoint('10.244.1.11')], { ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] }),
        slice('ns', 'ds', [endpoint('fd00:244::11')], { name: 'ds-v6', addressType: 'IPv6', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] }),
      ];
      const plain = (v6eps: string[]) =>
        desiredService(
          service('ns', 'pl', { type: 'NodePort', externalTrafficPolicy: 'Local', clusterIPs: ['10.96.0.71', 'fd00:96::71'], ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 53, nodePort: 30054 }] }),
          [slice('ns', 'pl', v6eps.map((ip) => endpoint(ip)), { name: 'pl-v6', addressType: 'IPv6', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] })],
          ctx,
        ).ports;
      const all = new Map([
        ['ns/ds', desiredService(s, slices, ctx).ports],
        ['ns/pl', plain(['fd00:244::12'])],
      ]);
      await dp.full(all, ctx);
      await dp.full(all, ctx);
      // A later run adds udp tails for a new endpoint count: the map's typeof is read back from the kernel.
      await dp.partial([{ key: 'ns/pl', ports: plain(['fd00:244::12', 'fd00:244::13']) }], ctx);
      const v6 = (await inNs(ns, 'nft', ['list', 'table', 'ip6', 'skiff'])).stdout;
      expect(v6).toContain('fd00:96::70 . udp . 53 : goto service-ns/ds/udp/dns');
      expect(v6).toContain('dnat ip6 to meta mark & 0xffffbfff map @endpoint-pairs');
      expect(v6).toContain('fd00:96::71 . udp . 53 : goto by-count-cluster');
      expect(v6).toContain('0x00000002 : goto lb-cluster-n2');
      expect(v6).toContain('udp . 30054 : goto external-local-c2-l2');
      expect(v6).toContain('numgen random mod 2 vmap @picks');
      expect(await dp.verify()).toEqual([]);
    } finally {
      await sh('ip', ['netns', 'del', ns]);
    }
  });

});
