import { describe, expect, it } from 'vitest';
import { desiredService } from '../desired.js';
import { endpoint, nodeCtx, service, slice } from '../fixtures.js';
import type { ServicePort } from '../model.js';
import { FakeNft } from './backend.js';
import { NftDataplane } from './dataplane.js';
import { Mirror, Txn } from './mirror.js';
import { ElementList, type TableState } from './state.js';
import { MAX_ENDPOINTS, renderBase } from './render.js';
import { findDrift } from './verify.js';

const ports = (...args: Parameters<typeof desiredService>): ServicePort[] => desiredService(...args).ports;
const web = (eps = [endpoint('10.244.1.5'), endpoint('10.244.2.6', { nodeName: 'node-b' })], o = {}) =>
  ports(service('ns1', 'web', { type: 'NodePort', ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }], ...o }), [slice('ns1', 'web', eps)], nodeCtx);

async function setup(initial: Record<string, ServicePort[]>) {
  const fake = new FakeNft();
  const dp = new NftDataplane(fake, [4], { staging: false });
  await dp.full(new Map(Object.entries(initial)), nodeCtx);
  return { fake, dp };
}

describe('nft rendering', () => {
  it('a full sync replaces the table; a Service port is map elements pointing at a shared tail', async () => {
    const { fake } = await setup({ 'ns1/web': web() });
    const text = fake.last!;
    expect(text.startsWith('add table ip skiff\ndelete table ip skiff\nadd table ip skiff { comment "skiff service proxy" ; }\n')).toBe(true);
    const own = text.split('\n').filter((l) => /-n2\b|element/.test(l) && !/element ip skiff (picks|tails)/.test(l));
    expect(own.join('\n')).toBe(
      [
        'add chain ip skiff lb-cluster-n2',
        'add chain ip skiff lb-external-n2',
        // The count the dispatch leaves in the index bits is cleared before a pick ORs the index in.
        'add rule ip skiff lb-cluster-n2 meta mark set meta mark & 0xffffe000',
        'add rule ip skiff lb-cluster-n2 ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000',
        'add rule ip skiff lb-cluster-n2 numgen random mod 2 vmap @picks-g1',
        'add rule ip skiff lb-external-n2 meta mark set meta mark & 0xffffe000 | 0x00004000',
        'add rule ip skiff lb-external-n2 numgen random mod 2 vmap @picks-g1',
        'add element ip skiff cluster-ips-g1 { 10.96.0.10 }',
        'add element ip skiff hairpin-g1 { 10.244.1.5 . 10.244.1.5 }',
        'add element ip skiff endpoint-addrs-g1 { 32768 : 10.244.1.5, 32769 : 10.244.2.6 }',
        'add element ip skiff endpoint-ports-g1 { 32768 : 8080 }',
        // The mark is slot << 15 | N; the verdict goes to the kind's by-count chain, whose map finds the tail.
        'add element ip skiff service-marks-g1 { 10.96.0.10 . tcp . 80 : 32770 }',
        'add element ip skiff service-ips-g1 { 10.96.0.10 . tcp . 80 : goto by-count-cluster }',
        'add element ip skiff nodeport-marks-g1 { tcp . 30080 : 32770 }',
        'add element ip skiff service-nodeports-g1 { tcp . 30080 : goto by-count-external }',
      ].join('\n'),
    );
    expect(text).not.toContain('ns1/web');
    // Every count below the pick pool has its tails, used or not.
    expect(text).toContain('add element ip skiff tails-cluster-g1 { 2 : goto lb-cluster-n2, 1 : goto lb-cluster-n1, 3 : goto lb-cluster-n3,');
    expect(text).toContain('15 : goto lb-external-n15 }');
    expect(text).toContain('add rule ip skiff lb-cluster-n15 numgen random mod 15 vmap @picks-g1\n');
    expect(text).not.toContain('lb-cluster-n16');
    // The fixed pick chains: index k goes into the mark's low bits, then the one DNAT chain.
    expect(text).toContain('add element ip skiff picks-g1 { 0 : goto endpoint-dnat, 1 : goto pick-1, 2 : goto pick-2,');
    expect(text).toContain('add rule ip skiff pick-1 meta mark set meta mark | 1 goto endpoint-dnat\n');
    expect(text).toContain('add rule ip skiff pick-15 meta mark set meta mark | 15 goto endpoint-dnat\n');
    expect(text).not.toContain('pick-16');
    // No port has endpoints on different ports: no pick chains for endpoint-pairs.
    expect(text).not.toContain('pick-pair');
  });

  it('Services with the same endpoint count share one tail chain; one above the reserved counts goes with its last user', async () => {
    const eps = (n: number, net: number) => Array.from({ length: n }, (_, i) => endpoint(`10.244.${net}.${i + 1}`));
    const api = ports(service('ns2', 'api', { clusterIPs: ['10.96.0.11'] }), [slice('ns2', 'api', eps(16, 1))], nodeCtx);
    const db = ports(service('ns3', 'db', { clusterIPs: ['10.96.0.12'] }), [slice('ns3', 'db', eps(16, 2))], nodeCtx);
    const { fake, dp } = await setup({ 'ns1/web': web(), 'ns2/api': api, 'ns3/db': db });
    expect(fake.last!.match(/^add chain ip skiff lb-cluster-n16$/gm)).toHaveLength(1);
    expect(fake.last).toContain('10.96.0.11 . tcp . 80 : goto by-count-cluster, 10.96.0.12 . tcp . 80 : goto by-count-cluster');
    expect(fake.last).toContain('10.96.0.11 . tcp . 80 : 65552, 10.96.0.12 . tcp . 80 : 98320');
    // web's tails (2 endpoints) are reserved; api leaving keeps the tail db still uses; db leaving removes it.
    await dp.partial([{ key: 'ns1/web', ports: [] }], nodeCtx);
    expect(fake.last).not.toMatch(/chain|tails/);
    await dp.partial([{ key: 'ns2/api', ports: [] }], nodeCtx);
    expect(fake.last).not.toMatch(/chain|tails/);
    await dp.partial([{ key: 'ns3/db', ports: [] }], nodeCtx);
    expect(fake.last).toContain('delete element ip skiff tails-cluster-g1 { 16 }\n');
    expect(fake.last).toContain('flush chain ip skiff lb-cluster-n16\ndelete chain ip skiff lb-cluster-n16\n');
  });

  it('a tail one Service leaves and another joins in the same sync is kept, not deleted', async () => {
    const three = (name: string, ip: string, n: number) => ports(service('ns', name, { clusterIPs: [ip] }), [slice('ns', name, Array.from({ length: n }, (_, i) => endpoint(`10.244.${ip.endsWith('1') ? 1 : 2}.${i + 1}`)))], nodeCtx);
    const { fake, dp } = await setup({ 'ns/a': three('a', '10.96.0.1', 3), 'ns/b': three('b', '10.96.0.2', 4) });
    await dp.partial([{ key: 'ns/a', ports: three('a', '10.96.0.1', 4) }, { key: 'ns/b', ports: three('b', '10.96.0.2', 3) }], nodeCtx);
    expect(fake.last).not.toMatch(/chain/);
  });

  it('the base table hooks and dispatch', () => {
    const t = renderBase(4, { ...nodeCtx, nodePortAddresses: ['192.168.0.0/16'] });
    expect(t.chains.get('services')!.rules).toEqual([
      'meta mark set ip daddr . meta l4proto . th dport map @service-marks-g1',
      'ip daddr . meta l4proto . th dport vmap @service-ips-g1',
      'fib daddr type local ip daddr @nodeport-ips-g1 jump nodeports',
    ]);
    expect(t.chains.get('nodeports')!.rules).toEqual(['meta mark set meta l4proto . th dport map @nodeport-marks-g1', 'meta l4proto . th dport vmap @service-nodeports-g1']);
    expect(t.chains.get('cluster-ips-check')!.rules).toEqual(['ip daddr @cluster-ips-g1 meta l4proto tcp reject with tcp reset', 'ip daddr @cluster-ips-g1 reject', 'ip daddr 10.96.0.0/12 drop']);
    expect(t.chains.get('nat-prerouting')!.hook).toBe('type nat hook prerouting priority -100 ;');
    expect([...t.elements.get('nodeport-ips-g1')!.keys()]).toEqual(['192.168.0.0/16']);
    expect(t.sets.get('endpoint-addrs-g1')!.decl).toBe('type mark : ipv4_addr ;');
    expect(t.sets.get('picks-g1')!.decl).toBe('typeof numgen random mod 2 : verdict ;');
    expect(t.chains.get('endpoint-dnat')!.rules).toEqual(['meta l4proto { tcp, udp, sctp } dnat ip to meta mark & 0xffffbfff map @endpoint-addrs-g1 : meta mark & 0xffffa000 map @endpoint-ports-g1']);
    const v6 = renderBase(6, { ...nodeCtx, serviceCIDRs: ['10.96.0.0/12', 'fd00:96::/112'] });
    expect(v6.chains.get('endpoint-dnat-pairs')!.rules).toEqual(['meta l4proto { tcp, udp, sctp } dnat ip6 to meta mark & 0xffffbfff map @endpoint-pairs-g1']);
    expect(v6.chains.get('lb-external-affinity')!.rules).toEqual(['meta mark set meta mark | 0x00004000', 'goto endpoint-dnat-pairs']);
    expect(t.chains.get('lb-cluster-affinity')!.rules[0]).toBe('ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000');
    expect(renderBase(4, { ...nodeCtx, masqueradeAll: true }).chains.get('lb-cluster-affinity')!.rules[0]).toBe('meta mark set meta mark | 0x00004000');
    expect(v6.chains.get('cluster-ips-check')!.rules).toEqual(['ip6 daddr @cluster-ips-g1 meta l4proto tcp reject with tcp reset', 'ip6 daddr @cluster-ips-g1 reject', 'ip6 daddr fd00:96::/112 drop']);
    expect([...t.chains.keys()].filter((c) => /-n\d/.test(c))).toEqual([]);
    // Dispatch by the endpoint count the mark carries, per kind of tail.
    expect(t.chains.get('by-count-cluster')!.rules).toEqual(['meta mark & 0x00001fff vmap @tails-cluster-g1']);
    expect(t.chains.get('by-count-external-pairs')!.rules).toEqual(['meta mark & 0x00001fff vmap @tails-external-pairs-g1']);
    expect(t.sets.get('tails-cluster-g1')!.decl).toBe('type mark : verdict ;');
  });

  it('an endpoint removal changes the endpoint count: only the marks change', async () => {
    const { fake, dp } = await setup({ 'ns1/web': web() });
    await dp.partial([{ key: 'ns1/web', ports: web([endpoint('10.244.1.5')]) }], nodeCtx);
    // No dispatch verdict and no chain: a verdict element naming a chain makes the kernel validate
    // every verdict map, and a chain costs an nft run; the tail for 1 is reserved.
    expect(fake.last).toBe(
      [
        'delete element ip skiff endpoint-addrs-g1 { 32769 }',
        'delete element ip skiff service-marks-g1 { 10.96.0.10 . tcp . 80 }',
        'delete element ip skiff nodeport-marks-g1 { tcp . 30080 }',
        'add element ip skiff service-marks-g1 { 10.96.0.10 . tcp . 80 : 32769 }',
        'add element ip skiff nodeport-marks-g1 { tcp . 30080 : 32769 }',
        '',
      ].join('\n'),
    );
  });

  it('replacing one endpoint by another changes only map elements', async () => {
    const { fake, dp } = await setup({ 'ns1/web': web() });
    await dp.partial([{ key: 'ns1/web', ports: web([endpoint('10.244.1.5'), endpoint('10.244.3.7')]) }], nodeCtx);
    expect(fake.last).toBe(
      [
        'delete element ip skiff endpoint-addrs-g1 { 32769 }',
        'add element ip skiff hairpin-g1 { 10.244.3.7 . 10.244.3.7 }',
        'add element ip skiff endpoint-addrs-g1 { 32769 : 10.244.3.7 }',
        '',
      ].join('\n'),
    );
  });

  it('a port with many endpoints: one changed endpoint is one delete and one add; drift checks see every element', async () => {
    const many = (changed: string) => Array.from({ length: 40 }, (_, i) => endpoint(i === 39 ? changed : `10.244.9.${i + 10}`, { nodeName: 'node-b' }));
    const { fake, dp } = await setup({ 'ns1/web': web(many('10.244.9.49')) });
    await dp.partial([{ key: 'ns1/web', ports: web(many('10.244.9.99')) }], nodeCtx);
    expect(fake.last).toBe(['delete element ip skiff endpoint-addrs-g1 { 32807 }', 'add element ip skiff endpoint-addrs-g1 { 32807 : 10.244.9.99 }', ''].join('\n'));
    const mirror = (dp as unknown as { fams: Map<number, { mirror: Mirror }> }).fams.get(4)!.mirror;
    const eps = mirror.elementsOf('endpoint-addrs-g1')!;
    expect(eps.size).toBe(40);
    expect(eps.get('32807')).toBe('10.244.9.99');
    expect(mirror.fullText()).toContain('32807 : 10.244.9.99');
    await dp.partial([{ key: 'ns1/web', ports: [] }], nodeCtx);
    expect(mirror.sizeOf('endpoint-addrs-g1')).toBe(0);
    expect(fake.last).toContain('delete element ip skiff endpoint-addrs-g1 { 32768, 32769,');
  });

  it('losing all endpoints swaps the dispatch for a reject; the reserved tails stay', async () => {
    const { fake, dp } = await setup({ 'ns1/web': web() });
    await dp.partial([{ key: 'ns1/web', ports: web([]) }], nodeCtx);
    expect(fake.last).toBe(
      [
        'delete element ip skiff hairpin-g1 { 10.244.1.5 . 10.244.1.5 }',
        'delete element ip skiff endpoint-addrs-g1 { 32768, 32769 }',
        'delete element ip skiff endpoint-ports-g1 { 32768 }',
        'delete element ip skiff service-marks-g1 { 10.96.0.10 . tcp . 80 }',
        'delete element ip skiff service-ips-g1 { 10.96.0.10 . tcp . 80 }',
        'delete element ip skiff nodeport-marks-g1 { tcp . 30080 }',
        'delete element ip skiff service-nodeports-g1 { tcp . 30080 }',
        'add element ip skiff no-endpoint-services-g1 { 10.96.0.10 . tcp . 80 : goto reject-chain }',
        'add element ip skiff no-endpoint-nodeports-g1 { tcp . 30080 : goto reject-chain }',
        '',
      ].join('\n'),
    );
  });

  it('shared elements survive until their last owner goes; only local endpoints get hairpin', async () => {
    const other = ports(service('ns2', 'api', { clusterIPs: ['10.96.0.11'] }), [slice('ns2', 'api', [endpoint('10.244.1.5')])], nodeCtx);
    const { fake, dp } = await setup({ 'ns1/web': web(), 'ns2/api': other });
    await dp.partial([{ key: 'ns1/web', ports: [] }], nodeCtx);
    expect(fake.last).toContain('delete element ip skiff endpoint-addrs-g1 { 32768, 32769 }\n');
    expect(fake.last).not.toContain('10.244.1.5 . 10.244.1.5');
    await dp.partial([{ key: 'ns2/api', ports: [] }], nodeCtx);
    expect(fake.last).toContain('delete element ip skiff hairpin-g1 { 10.244.1.5 . 10.244.1.5 }\n');
  });

  it('affinity keeps a chain per port and a dynamic map that is flushed when endpoints change', async () => {
    const aff = (eps: ReturnType<typeof endpoint>[]) => ports(service('ns1', 'st', { sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 30 }), [slice('ns1', 'st', eps)], nodeCtx);
    const { fake, dp } = await setup({ 'ns1/st': aff([endpoint('10.244.1.5'), endpoint('10.244.1.6')]) });
    expect(fake.last).toContain('add map ip skiff affinity-ns1/st/tcp/http-g1 { type ipv4_addr : mark ; flags dynamic,timeout ; timeout 30s ; }\n');
    expect(fake.last).toContain(
      [
        'add rule ip skiff service-ns1/st/tcp/http meta mark set numgen random mod 2 offset 32768',
        'add rule ip skiff service-ns1/st/tcp/http meta mark set ip saddr map @affinity-ns1/st/tcp/http-g1',
        'add rule ip skiff service-ns1/st/tcp/http update @affinity-ns1/st/tcp/http-g1 { ip saddr : meta mark } goto lb-cluster-affinity',
      ].join('\n'),
    );
    expect(fake.last).toContain('add element ip skiff endpoint-pairs-g1 { 32768 : 10.244.1.5 . 8080, 32769 : 10.244.1.6 . 8080 }');
    expect(fake.last).toContain('add element ip skiff service-ips-g1 { 10.96.0.10 . tcp . 80 : goto service-ns1/st/tcp/http }');
    expect(fake.last).not.toContain('add element ip skiff service-marks-g1');
    await dp.partial([{ key: 'ns1/st', ports: aff([endpoint('10.244.1.5'), endpoint('10.244.1.7')]) }], nodeCtx);
    expect(fake.last!.split('\n')[0]).toBe('flush map ip skiff affinity-ns1/st/tcp/http-g1');
    await dp.partial([{ key: 'ns1/st', ports: [] }], nodeCtx);
    expect(fake.last).toContain('delete map ip skiff affinity-ns1/st/tcp/http-g1\n');
  });

  it('a port written under an earlier node context is diffed against what was written then', async () => {
    // The dataplane keeps ports, not fragments, and renders the old fragment again for a diff.
    const sticky = web(undefined, { externalTrafficPolicy: 'Local', sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 30 });
    const { fake, dp } = await setup({ 'ns1/web': sticky });
    expect(fake.last).toContain(' ip saddr 10.244.0.0/16 goto service-ns1/web/tcp/http\n');
    const moved = { ...nodeCtx, clusterCIDRs: ['10.245.0.0/16'] };
    await dp.partial([{ key: 'ns2/api', ports: ports(service('ns2', 'api', { clusterIPs: ['10.96.0.11'] }), [slice('ns2', 'api', [endpoint('10.244.1.8')])], moved) }], moved);
    await dp.partial([{ key: 'ns1/web', ports: sticky }], moved);
    expect(fake.last).toMatch(/^flush chain ip skiff external-ns1\/web\/tcp\/http$/m);
    expect(fake.last).toContain(' ip saddr 10.245.0.0/16 goto service-ns1/web/tcp/http\n');
    await dp.partial([{ key: 'ns1/web', ports: [] }], moved);
    expect(fake.last).toContain('delete element ip skiff endpoint-pairs-g1 { 32768, 32769, 40960 }\n');
  });

  it('externalTrafficPolicy Local sends external traffic to local endpoints only, or drops it', async () => {
    const local = (eps: ReturnType<typeof endpoint>[]) => web(eps, { externalTrafficPolicy: 'Local' });
    const { fake, dp } = await setup({ 'ns1/web': local([endpoint('10.244.1.5'), endpoint('10.244.2.6', { nodeName: 'node-b' })]) });
    expect(fake.last!.split('\n').filter((l) => l.startsWith('add rule ip skiff external-local-'))).toEqual([
      'add rule ip skiff external-local-c2-l1 ip saddr 10.244.0.0/16 meta mark set meta mark & 0xffffdfff goto lb-cluster-n2',
      'add rule ip skiff external-local-c2-l1 fib saddr type local meta mark set meta mark & 0xffffdfff goto lb-cluster-n2',
      'add rule ip skiff external-local-c2-l1 goto lb-local-n1',
    ]);
    expect(fake.last).toContain('add rule ip skiff lb-local-n1 goto endpoint-dnat\n');
    expect(fake.last).toContain('40960 : 10.244.1.5');
    expect(fake.last).toContain('add element ip skiff nodeport-marks-g1 { tcp . 30080 : 40960 }');
    await dp.partial([{ key: 'ns1/web', ports: local([endpoint('10.244.2.6', { nodeName: 'node-b' })]) }], nodeCtx);
    expect(fake.last).toContain(
      [
        'add rule ip skiff external-local-c1-l0 ip saddr 10.244.0.0/16 meta mark set meta mark & 0xffffdfff goto lb-cluster-n1',
        'add rule ip skiff external-local-c1-l0 fib saddr type local meta mark set meta mark & 0xffffdfff goto lb-cluster-n1',
        'add rule ip skiff external-local-c1-l0 drop',
      ].join('\n'),
    );
    expect(fake.last).toContain('add element ip skiff service-nodeports-g1 { tcp . 30080 : goto external-local-c1-l0 }');
  });

  it('internalTrafficPolicy Local without a local endpoint drops cluster traffic in the dispatch map', async () => {
    const svc = ports(service('ns1', 'il', { internalTrafficPolicy: 'Local' }), [slice('ns1', 'il', [endpoint('10.244.2.6', { nodeName: 'node-b' })])], nodeCtx);
    const { fake } = await setup({ 'ns1/il': svc });
    expect(fake.last).toContain('add element ip skiff service-ips-g1 { 10.96.0.10 . tcp . 80 : drop }');
    expect(fake.last).not.toContain('add element ip skiff service-marks-g1');
  });

  it('LoadBalancer source ranges get a firewall chain', async () => {
    const lb = ports(
      service('ns1', 'lb', { type: 'LoadBalancer', loadBalancerIPs: ['192.0.2.10'], loadBalancerSourceRanges: ['198.51.100.0/24'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30081 }] }),
      [slice('ns1', 'lb', [endpoint('10.244.1.5')])],
      nodeCtx,
    );
    const { fake } = await setup({ 'ns1/lb': lb });
    expect(fake.last).toContain('add rule ip skiff firewall-ns1/lb/tcp/http ip saddr 198.51.100.0/24 return\nadd rule ip skiff firewall-ns1/lb/tcp/http drop\n');
    expect(fake.last).toContain('add element ip skiff firewall-ips-g1 { 192.0.2.10 . tcp . 80 : goto firewall-ns1/lb/tcp/http }');
    expect(fake.last).toContain('192.0.2.10 . tcp . 80 : goto by-count-external');
    expect(fake.last).toContain('192.0.2.10 . tcp . 80 : 32769');
  });

  it('a new Service reuses no slot freed in the same sync and frees it afterwards', async () => {
    const { fake, dp } = await setup({ 'ns1/web': web() });
    const api = ports(service('ns2', 'api', { clusterIPs: ['10.96.0.11'] }), [slice('ns2', 'api', [endpoint('10.244.1.9')])], nodeCtx);
    await dp.partial([{ key: 'ns1/web', ports: [] }, { key: 'ns2/api', ports: api }], nodeCtx);
    expect(fake.last).toContain('add element ip skiff endpoint-addrs-g1 { 65536 : 10.244.1.9 }');
    const db = ports(service('ns3', 'db', { clusterIPs: ['10.96.0.12'] }), [slice('ns3', 'db', [endpoint('10.244.1.10')])], nodeCtx);
    await dp.partial([{ key: 'ns3/db', ports: db }], nodeCtx);
    expect(fake.last).toContain('add element ip skiff endpoint-addrs-g1 { 32768 : 10.244.1.10 }');
  });
});

describe('endpoint lists', () => {
  const svcWith = (list: ReturnType<typeof endpoint>[], second?: ReturnType<typeof endpoint>[]) => {
    const slices = [slice('ns1', 'web', list)];
    if (second) slices.push(slice('ns1', 'web', second, { name: 'web-def', ports: [{ name: 'http', port: 9090, protocol: 'TCP' }] }));
    return ports(service('ns1', 'web'), slices, nodeCtx);
  };
  const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => endpoint(`10.245.${(from + i) >> 8}.${(from + i) & 255}`, { nodeName: 'node-b' }));

  it('endpoints on different ports carry their own port, through the pairs tail and its pick chains', async () => {
    const { fake } = await setup({ 'ns1/web': svcWith(range(2), range(1, 2)) });
    const text = fake.last!;
    expect(text).toContain('add element ip skiff endpoint-pairs-g1 { 32768 : 10.245.0.0 . 8080, 32769 : 10.245.0.1 . 8080, 32770 : 10.245.0.2 . 9090 }');
    expect(text).not.toContain('add element ip skiff endpoint-addrs-g1');
    expect(text).not.toContain('add element ip skiff endpoint-ports-g1');
    expect(text).toContain('add rule ip skiff lb-cluster-n3-pairs numgen random mod 3 vmap @picks-pairs-g1\n');
    expect(text).toContain('add rule ip skiff pick-pair-2 meta mark set meta mark | 2 goto endpoint-dnat-pairs\n');
    expect(text).toContain('add element ip skiff service-ips-g1 { 10.96.0.10 . tcp . 80 : goto by-count-cluster-pairs }');
    expect(text).toContain('add element ip skiff tails-cluster-pairs-g1 { 3 : goto lb-cluster-n3-pairs }');
    // Only the pairs kind has pick chains.
    expect(text).not.toMatch(/add chain ip skiff pick-\d/);
  });

  it('a list longer than any before grows the pick chains in the same transaction', async () => {
    const { fake, dp } = await setup({ 'ns1/web': svcWith(range(10)) });
    expect(fake.last).toContain('add chain ip skiff pick-15\n');
    await dp.partial([{ key: 'ns1/web', ports: svcWith(range(20)) }], nodeCtx);
    const t = fake.last!;
    expect(t).toContain('add chain ip skiff pick-16\n');
    expect(t).toContain('add rule ip skiff pick-31 meta mark set meta mark | 31 goto endpoint-dnat\n');
    expect(t).not.toContain('pick-32');
    expect(t).toContain('add element ip skiff picks-g1 { 16 : goto pick-16,');
    expect(t).toContain('add rule ip skiff lb-cluster-n20 numgen random mod 20 vmap @picks-g1\n');
    // Chains come before the verdict elements that jump to them.
    expect(t.indexOf('add chain ip skiff pick-31')).toBeLessThan(t.indexOf('add element ip skiff picks-g1'));
    // Shrinking keeps them: they are part of the fixed table until the next full sync.
    await dp.partial([{ key: 'ns1/web', ports: svcWith(range(3)) }], nodeCtx);
    expect(fake.last).not.toMatch(/pick-/);
  });

  it('a list is cut at MAX_ENDPOINTS: the index must stay below the mark bit of node-local lists', async () => {
    const { fake } = await setup({ 'ns1/web': svcWith(range(MAX_ENDPOINTS + 5)) });
    const text = fake.last!;
    expect(text).toContain(`add rule ip skiff lb-cluster-n${MAX_ENDPOINTS} numgen random mod ${MAX_ENDPOINTS} vmap @picks-g1`);
    expect(text).toContain(`${32768 + MAX_ENDPOINTS - 1} : `);
    expect(text).not.toContain(`${32768 + MAX_ENDPOINTS} : `);
    expect(text).not.toContain(`pick-${MAX_ENDPOINTS}`);
    // The count does not fit below LOCAL_BIT: 8192 is dispatched as 0. Only small counts are reserved.
    expect(text).toContain(`add element ip skiff tails-cluster-g1 { 0 : goto lb-cluster-n${MAX_ENDPOINTS}, 1 : goto lb-cluster-n1,`);
    expect(text).toContain('31 : goto lb-cluster-n31 }');
    expect(text).toContain('10.96.0.10 . tcp . 80 : 32768 }');
  });
});

describe('the mirror', () => {
  const owned = (list: ElementList): TableState => ({ chains: new Map(), sets: new Map([['endpoint-pairs', { kind: 'map', decl: 'type mark : ipv4_addr . inet_service ;', unique: true }]]), elements: new Map([['endpoint-pairs', list]]) });

  it("finds an owner's endpoint list by its first key whether the list is ranged (number keys) or not", () => {
    const m = new Mirror('ip skiff');
    const ranged = new ElementList();
    ranged.pushRange(32768, ['10.0.0.1 . 80', '10.0.0.2 . 80']);
    m.replace(undefined, owned(ranged), new Txn('ip skiff'));
    // The same port rendered with session affinity: its list's keys are strings.
    const keyed = new ElementList();
    keyed.push('32768', '10.0.0.3 . 80');
    const txn = new Txn('ip skiff');
    m.replace(owned(ranged), owned(keyed), txn);
    expect(m.sizeOf('endpoint-pairs')).toBe(1);
    expect([...m.entriesOf('endpoint-pairs')]).toEqual([['32768', '10.0.0.3 . 80']]);
    expect(txn.text()).toContain('delete element ip skiff endpoint-pairs { 32768, 32769 }');
  });

  it("keeps a plain set's address keys until their last owner leaves, IPv4 or not", () => {
    const m = new Mirror('ip skiff');
    const frag = (keys: string[]): TableState => {
      const list = new ElementList();
      for (const k of keys) list.push(k, '');
      return { chains: new Map(), sets: new Map(), elements: new Map([['cluster-ips', list]]) };
    };
    m.load({ chains: new Map(), sets: new Map([['cluster-ips', { kind: 'set', decl: 'type ipv4_addr ;' }]]), elements: new Map() });
    const a = frag(['10.96.0.1', 'fd00::1']);
    const b = frag(['10.96.0.1', '10.96.0.2']);
    m.replace(undefined, a, new Txn('ip skiff'));
    m.replace(undefined, b, new Txn('ip skiff'));
    expect(new Set(m.elementsOf('cluster-ips')!.keys())).toEqual(new Set(['10.96.0.1', '10.96.0.2', 'fd00::1']));
    const txn = new Txn('ip skiff');
    m.replace(a, undefined, txn);
    expect(txn.text()).toBe('delete element ip skiff cluster-ips { fd00::1 }\n');
    expect(new Set(m.elementsOf('cluster-ips')!.keys())).toEqual(new Set(['10.96.0.1', '10.96.0.2']));
  });
});

describe('drift detection', () => {
  const mirror = (): Mirror => {
    const m = new Mirror('ip skiff');
    m.load({
      chains: new Map([['c1', { rules: ['drop'] }]]),
      sets: new Map([
        ['service-ips', { kind: 'map', decl: '' }],
        ['endpoints', { kind: 'map', decl: '' }],
      ]),
      elements: new Map([
        ['service-ips', new Map([['10.96.0.1 . tcp . 80', 'goto c1']])],
        ['endpoints', new Map([['32768', '10.0.0.1 . 80']])],
      ]),
    });
    return m;
  };
  const listing = (elems: unknown[], rules = 1) => ({
    nftables: [
      { table: { name: 'skiff' } },
      { map: { name: 'service-ips', elem: elems } },
      { map: { name: 'endpoints', elem: [[32768, { concat: ['10.0.0.1', 80] }]] } },
      { chain: { name: 'c1' } },
      ...Array.from({ length: rules }, () => ({ rule: { chain: 'c1' } })),
    ],
  });

  it('matching kernel state is no drift', () => {
    expect(findDrift(listing([[{ concat: ['10.96.0.1', 'tcp', 80] }, { goto: { target: 'c1' } }]]), mirror())).toEqual([]);
  });

  it('reports missing, changed and extra elements and rule counts', () => {
    expect(findDrift(listing([[{ concat: ['10.96.0.1', 'tcp', 80] }, { drop: null }]], 2), mirror())).toEqual([
      'chain c1 has 2 rules, want 1',
      'service-ips: element 10.96.0.1 . tcp . 80 is drop, want goto c1',
    ]);
    expect(findDrift(listing([[{ concat: ['10.96.0.2', 'tcp', 80] }, { goto: { target: 'c1' } }]], 0), mirror())).toEqual([
      'chain c1 has 0 rules, want 1',
      'service-ips: element 10.96.0.1 . tcp . 80 missing',
      'service-ips: unexpected element 10.96.0.2 . tcp . 80',
    ]);
    expect(findDrift(undefined, mirror())).toEqual(['table missing']);
  });
});

describe('staged full sync', () => {
  const many = (n: number, eps = 2): Record<string, ServicePort[]> =>
    Object.fromEntries(
      Array.from({ length: n }, (_, i) => [
        `ns/s${i}`,
        ports(service('ns', `s${i}`, { clusterIPs: [`10.96.1.${i}`] }), [slice('ns', `s${i}`, Array.from({ length: eps }, (_, e) => endpoint(`10.244.${e + 1}.${i}`)))], nodeCtx),
      ]),
    );
  const staged = async (initial: Record<string, ServicePort[]>) => {
    const fake = new FakeNft();
    const dp = new NftDataplane(fake, [4], { stageChunk: 4 });
    await dp.full(new Map(Object.entries(initial)), nodeCtx);
    return { fake, dp };
  };

  /** Every chunk creates the chains its verdict elements jump to before its elements. */
  const chainsFirst = (t: string): void => {
    const head = t.slice(0, t.indexOf('add element'));
    for (const [, target] of t.matchAll(/: (?:goto|jump) ([^,} ]+)/g)) expect(head).toContain(`add chain ip skiff ${target}\n`);
  };

  it('creates the sets, streams elements in chunks (verdicts after the chains they jump to), then switches', async () => {
    const { fake, dp } = await staged(many(3));
    const [prep, ...rest] = fake.transactions;
    const sw = rest.pop()!;
    expect(prep!.split('\n').slice(0, 4)).toEqual([
      'add table ip skiff',
      'delete table ip skiff',
      'add table ip skiff { comment "skiff service proxy" ; }',
      'add set ip skiff cluster-ips-g1 { type ipv4_addr ; size 4096 ; }',
    ]);
    expect(prep).toContain('add map ip skiff endpoint-addrs-g1 { type mark : ipv4_addr ; size 4096 ; }\n');
    expect(prep).not.toContain('add element');
    // 3 Services: 3 cluster IPs, 6 hairpins (local), 6 endpoints, 3 ports, 3 marks, 3 dispatch
    // verdicts = 24 elements, then 16 picks and 2 x 15 reserved tails: 70, 4 per chunk.
    expect(rest).toHaveLength(18);
    for (const t of rest) chainsFirst(t);
    const all = rest.join('');
    expect(all.match(/\d+ : 10\.244/g)).toHaveLength(6);
    // The hairpin set's keys, held once in the mirror, go out as `ip . ip`.
    expect(all.match(/add element ip skiff hairpin-g1 \{ [^}]*\}/g)!.join('').match(/(10\.244\.\d\.\d) \. \1(?=[,} ])/g)).toHaveLength(6);
    expect(all.match(/10\.96\.1\.\d \. tcp \. 80 : goto by-count-cluster/g)).toHaveLength(3);
    expect(all.match(/2 : goto lb-cluster-n2/g)).toHaveLength(1);
    expect(all).toContain('add chain ip skiff lb-cluster-n2\n');
    expect(all).toContain('add chain ip skiff pick-15\n');
    // The first dispatch verdict goes out with the first chunks, not after everything.
    expect(rest.slice(0, 3).join('')).toContain('service-ips-g1');
    expect(all).not.toContain('add chain ip skiff nat-output');
    expect(sw).not.toMatch(/^flush|^delete/m);
    expect(sw).toContain('add chain ip skiff nat-output { type nat hook output priority -100 ; }\n');
    // Chains only rules jump to are created by the switch.
    expect(sw).toContain('add chain ip skiff services\n');
    expect(sw).toContain('add rule ip skiff services meta mark set ip daddr . meta l4proto . th dport map @service-marks-g1\n');
    expect(sw).toContain('add rule ip skiff lb-cluster-n2 numgen random mod 2 vmap @picks-g1\n');
    expect(dp.fallbacks).toBe(0);
  });

  it('verdict elements spread over chunks, each chunk creating the chains first', async () => {
    const { fake } = await staged(many(9, 1));
    const verdicts = fake.transactions.filter((t) => t.includes('add element ip skiff service-ips-g1'));
    expect(verdicts.length).toBeGreaterThan(3);
    for (const t of verdicts) chainsFirst(t);
    expect(verdicts.join('').match(/10\.96\.1\.\d+ \. tcp \. 80 : goto by-count-cluster/g)).toHaveLength(9);
  });

  it('the next full sync stages generation 2 and the switch drops generation 1 and unused chains', async () => {
    // Counts above the reserved tails', so that one goes and one comes.
    const { fake, dp } = await staged(many(2, 40));
    const before = fake.transactions.length;
    await dp.full(new Map(Object.entries(many(2, 41))), nodeCtx);
    const txns = fake.transactions.slice(before);
    expect(txns[0]!.split('\n')[0]).toBe('add table ip skiff');
    expect(txns[0]).toContain('add map ip skiff service-ips-g2 ');
    expect(txns[0]).not.toContain('delete');
    const sw = txns.at(-1)!;
    expect(sw).toContain('flush chain ip skiff services\n');
    expect(sw).toContain('delete map ip skiff endpoint-addrs-g1\n');
    // The verdict map goes before the chain its elements jump to.
    expect(sw.indexOf('delete map ip skiff tails-cluster-g1')).toBeGreaterThan(-1);
    expect(sw.indexOf('delete map ip skiff tails-cluster-g1')).toBeLessThan(sw.indexOf('delete chain ip skiff lb-cluster-n40'));
    expect(sw).not.toContain('delete chain ip skiff lb-cluster-n41');
    expect(sw).not.toContain('delete chain ip skiff lb-cluster-n2\n');
    expect(sw).not.toMatch(/add chain ip skiff nat-output/);
    expect(sw).toContain('add rule ip skiff endpoint-dnat meta l4proto { tcp, udp, sctp } dnat ip to meta mark & 0xffffbfff map @endpoint-addrs-g2 : meta mark & 0xffffa000 map @endpoint-ports-g2\n');
    expect(await dp.verify()).toEqual(['ip skiff: table missing']);
  });

  it('a failed staging falls back to replacing the table in one transaction', async () => {
    const fake = new FakeNft();
    const dp = new NftDataplane(fake, [4], { stageChunk: 4 });
    fake.failOn = /add element ip skiff endpoint-addrs-g1/;
    await dp.full(new Map(Object.entries(many(3))), nodeCtx);
    expect(dp.fallbacks).toBe(1);
    expect(fake.last).toMatch(/^add table ip skiff\ndelete table ip skiff\n/);
    expect(fake.last!.match(/: 10\.244\./g)).toHaveLength(6);
    expect(fake.last).toContain('add rule ip skiff services meta mark set ip daddr . meta l4proto . th dport map @service-marks-g1\n');
  });

  it('a failed set creation sends no element and falls back, though the render did not wait for it', async () => {
    const fake = new FakeNft();
    const dp = new NftDataplane(fake, [4], { stageChunk: 4 });
    fake.failOn = /add map ip skiff service-ips-g1 /;
    await dp.full(new Map(Object.entries(many(3))), nodeCtx);
    expect(dp.fallbacks).toBe(1);
    // Only the fallback reached the kernel: every staged load waited for the sets and gave up.
    expect(fake.transactions).toHaveLength(1);
    expect(fake.last).toMatch(/^add table ip skiff\ndelete table ip skiff\n/);
    expect(fake.last!.match(/: 10\.244\./g)).toHaveLength(6);
  });

  it('an unknown table with chains (an agent restart) is replaced the old way', async () => {
    const fake = new FakeNft();
    fake.listedChains.set('ip skiff', ['services']);
    const dp = new NftDataplane(fake, [4], { stageChunk: 4 });
    await dp.full(new Map(Object.entries(many(1))), nodeCtx);
    expect(fake.transactions).toHaveLength(1);
    expect(fake.last).toMatch(/^add table ip skiff\ndelete table ip skiff\n/);
  });

  it('an element a later owner overrides is rewritten in the switch', async () => {
    // Two Services claim the same cluster IP and port: the later one's mark wins.
    const a = ports(service('ns', 'a', { clusterIPs: ['10.96.0.10'] }), [slice('ns', 'a', [endpoint('10.244.1.1')])], nodeCtx);
    const b = ports(service('ns', 'b', { clusterIPs: ['10.96.0.10'] }), [slice('ns', 'b', [endpoint('10.244.1.2')])], nodeCtx);
    const { fake } = await staged({ 'ns/a': a, 'ns/b': b });
    expect(fake.transactions.slice(1, -1).join('')).toContain('10.96.0.10 . tcp . 80 : 32769');
    expect(fake.last!.split('\n').slice(-3)).toEqual([
      'delete element ip skiff service-marks-g1 { 10.96.0.10 . tcp . 80 }',
      'add element ip skiff service-marks-g1 { 10.96.0.10 . tcp . 80 : 65537 }',
      '',
    ]);
  });

  it('a partial sync that outgrows the fixed set sizes rewrites the table with growing sets', async () => {
    const { fake, dp } = await staged(many(1, 1));
    const big = ports(service('ns', 'big', { clusterIPs: ['10.96.9.9'] }), [slice('ns', 'big', Array.from({ length: 4100 }, (_, i) => endpoint(`10.245.${i >> 8}.${i & 255}`, { nodeName: 'node-b' })))], nodeCtx);
    await dp.partial([{ key: 'ns/big', ports: big }], nodeCtx);
    expect(fake.last).toMatch(/^add table ip skiff\ndelete table ip skiff\n/);
    expect(fake.last).toContain('add map ip skiff endpoint-addrs-g1 { type mark : ipv4_addr ; }\n');
    await dp.partial([{ key: 'ns/s0', ports: [] }], nodeCtx);
    expect(fake.last).toMatch(/^delete element/);
  });
});
