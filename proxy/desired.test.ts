import { describe, expect, it } from 'vitest';
import { isIP } from 'node:net';
import type { EndpointInfo } from '../common/types.js';
import { PackedEndpoints } from '../common/watch/packed-endpoints.js';
import { desiredService, familyOf } from './desired.js';
import { endpoint, nodeCtx, service, slice } from './fixtures.js';

const ips = (eps: readonly { ip: string }[]): string[] => eps.map((e) => e.ip);

describe('desiredService', () => {
  it('builds one port with sorted ready endpoints', () => {
    const r = desiredService(service('ns', 'web'), [slice('ns', 'web', [endpoint('10.244.2.9'), endpoint('10.244.1.5', { nodeName: 'node-b' })])], nodeCtx);
    expect(r.problems).toEqual([]);
    expect(r.ports).toHaveLength(1);
    const p = r.ports[0]!;
    expect(p).toMatchObject({ id: 'ns/web/tcp/http', family: 4, protocol: 'tcp', port: 80, clusterIPs: ['10.96.0.10'], hasEndpoints: true });
    expect(p.clusterEndpoints).toEqual([
      { ip: '10.244.1.5', port: 8080, local: false, nodeName: 'node-b' },
      { ip: '10.244.2.9', port: 8080, local: true, nodeName: 'node-a' },
    ]);
    expect(p.localEndpoints).toEqual([]);
  });

  it('lists an address and port once, as the first slice listing it says', () => {
    const a = slice('ns', 'web', [endpoint('10.244.1.7', { nodeName: 'node-b' }), endpoint('10.244.1.5'), endpoint('10.244.1.7', { nodeName: 'node-c' })]);
    const b = slice('ns', 'web', [endpoint('10.244.1.5', { nodeName: 'node-d' }), endpoint('10.244.1.6')], { name: 'web-def' });
    const p = desiredService(service('ns', 'web'), [a, b], nodeCtx).ports[0]!;
    expect(p.clusterEndpoints).toEqual([
      { ip: '10.244.1.5', port: 8080, local: true, nodeName: 'node-a' },
      { ip: '10.244.1.6', port: 8080, local: true, nodeName: 'node-a' },
      { ip: '10.244.1.7', port: 8080, local: false, nodeName: 'node-b' },
    ]);
  });

  it('ignores headless, ExternalName and service-proxy-name labelled Services', () => {
    for (const s of [
      service('ns', 'a', { headless: true, clusterIPs: [] }),
      service('ns', 'b', { type: 'ExternalName', clusterIPs: [], externalName: 'example.org' }),
      service('ns', 'c', { labels: { 'service.kubernetes.io/service-proxy-name': 'other' } }),
    ]) {
      expect(desiredService(s, [], nodeCtx)).toEqual({ ports: [], problems: [] });
    }
  });

  it('skips malformed parts with a problem and keeps the valid rest', () => {
    const s = service('ns', 'bad', {
      clusterIPs: ['10.96.0.300', '10.96.0.11'],
      ports: [
        { name: 'x', protocol: 'ICMP' as never, port: 1, targetPort: 1 },
        { name: 'y', protocol: 'TCP', port: 70000, targetPort: 1 },
        { name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 },
      ],
      externalIPs: ['nope', '192.0.2.1'],
    });
    const r = desiredService(s, [slice('ns', 'bad', [endpoint('10.244.1.5'), endpoint('garbage')])], nodeCtx);
    expect(r.ports.map((p) => p.id)).toEqual(['ns/bad/tcp/http']);
    expect(r.ports[0]!.clusterIPs).toEqual(['10.96.0.11']);
    expect(r.ports[0]!.externalIPs).toEqual(['192.0.2.1']);
    expect(ips(r.ports[0]!.clusterEndpoints)).toEqual(['10.244.1.5']);
    expect(r.problems.map((p) => p.reason)).toEqual([
      'invalid cluster IP "10.96.0.300"',
      'invalid external IP "nope"',
      'port x: unsupported protocol "ICMP"',
      'port "y": invalid port 70000',
      'invalid address "garbage"',
    ]);
  });

  it('a Service with no valid cluster IP yields nothing', () => {
    const r = desiredService(service('ns', 'x', { clusterIPs: ['bogus'] }), [], nodeCtx);
    expect(r.ports).toEqual([]);
    expect(r.problems).toHaveLength(1);
  });

  it('prefers ready endpoints and falls back to serving terminating ones', () => {
    const term = endpoint('10.244.1.7', { ready: false, serving: true, terminating: true });
    const notServing = endpoint('10.244.1.8', { ready: false, serving: false, terminating: true });
    let r = desiredService(service('ns', 'w'), [slice('ns', 'w', [endpoint('10.244.1.6'), term, notServing])], nodeCtx);
    expect(ips(r.ports[0]!.clusterEndpoints)).toEqual(['10.244.1.6']);
    r = desiredService(service('ns', 'w'), [slice('ns', 'w', [term, notServing])], nodeCtx);
    expect(ips(r.ports[0]!.clusterEndpoints)).toEqual(['10.244.1.7']);
    r = desiredService(service('ns', 'w'), [slice('ns', 'w', [notServing])], nodeCtx);
    expect(r.ports[0]!.hasEndpoints).toBe(false);
    r = desiredService(service('ns', 'w', { publishNotReadyAddresses: true }), [slice('ns', 'w', [notServing])], nodeCtx);
    expect(ips(r.ports[0]!.clusterEndpoints)).toEqual(['10.244.1.8']);
  });

  it('matches slice ports by name and protocol', () => {
    const s = service('ns', 'dns', {
      ports: [
        { name: 'dns', protocol: 'UDP', port: 53, targetPort: 53 },
        { name: 'dns-tcp', protocol: 'TCP', port: 53, targetPort: 53 },
      ],
    });
    const sl = slice('ns', 'dns', [endpoint('10.244.1.5')], { ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }] });
    const r = desiredService(s, [sl], nodeCtx);
    expect(r.ports.map((p) => [p.id, p.clusterEndpoints.map((e) => e.port)])).toEqual([
      ['ns/dns/udp/dns', [5353]],
      ['ns/dns/tcp/dns-tcp', []],
    ]);
  });

  it('internalTrafficPolicy Local keeps only local endpoints', () => {
    const r = desiredService(service('ns', 'l', { internalTrafficPolicy: 'Local' }), [slice('ns', 'l', [endpoint('10.244.1.5', { nodeName: 'node-b' }), endpoint('10.244.2.5')])], nodeCtx);
    expect(ips(r.ports[0]!.clusterEndpoints)).toEqual(['10.244.2.5']);
    const none = desiredService(service('ns', 'l', { internalTrafficPolicy: 'Local' }), [slice('ns', 'l', [endpoint('10.244.1.5', { nodeName: 'node-b' })])], nodeCtx);
    expect(none.ports[0]!.clusterEndpoints).toEqual([]);
    expect(none.ports[0]!.hasEndpoints).toBe(true);
  });

  it('externalTrafficPolicy Local computes local endpoints and the health check port', () => {
    const s = service('ns', 'lb', {
      type: 'LoadBalancer',
      externalTrafficPolicy: 'Local',
      healthCheckNodePort: 32000,
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }],
      loadBalancerIPs: ['192.0.2.10'],
      loadBalancerSourceRanges: ['198.51.100.0/24', 'junk'],
    });
    const r = desiredService(s, [slice('ns', 'lb', [endpoint('10.244.1.5', { nodeName: 'node-b' }), endpoint('10.244.2.5')])], nodeCtx);
    const p = r.ports[0]!;
    expect(p).toMatchObject({ externalLocal: true, nodePort: 30080, healthCheckNodePort: 32000, loadBalancerIPs: ['192.0.2.10'], sourceRanges: ['198.51.100.0/24'] });
    expect(ips(p.clusterEndpoints)).toEqual(['10.244.1.5', '10.244.2.5']);
    expect(ips(p.localEndpoints)).toEqual(['10.244.2.5']);
    expect(r.problems.map((x) => x.reason)).toEqual(['invalid loadBalancerSourceRange "junk"']);
  });

  it('uses topology hints for our zone, and all endpoints when hints are incomplete', () => {
    const a = endpoint('10.244.1.5', { hintsForZones: ['zone-a'] });
    const b = endpoint('10.244.1.6', { hintsForZones: ['zone-b'] });
    let r = desiredService(service('ns', 't', { trafficDistribution: 'PreferClose' }), [slice('ns', 't', [a, b])], nodeCtx);
    expect(ips(r.ports[0]!.clusterEndpoints)).toEqual(['10.244.1.5']);
    r = desiredService(service('ns', 't'), [slice('ns', 't', [a, b, endpoint('10.244.1.7')])], nodeCtx);
    expect(ips(r.ports[0]!.clusterEndpoints)).toEqual(['10.244.1.5', '10.244.1.6', '10.244.1.7']);
    r = desiredService(service('ns', 't'), [slice('ns', 't', [b])], nodeCtx);
    expect(ips(r.ports[0]!.clusterEndpoints)).toEqual(['10.244.1.6']);
  });

  it('splits dual-stack Services per family with their own slices', () => {
    const s = service('ns', 'ds', { clusterIPs: ['10.96.0.20', 'fd00:96::20'], ipFamilies: ['IPv4', 'IPv6'] });
    const r = desiredService(s, [slice('ns', 'ds', [endpoint('10.244.1.5')]), slice('ns', 'ds', [endpoint('fd00:244::5')], { name: 'ds-v6', addressType: 'IPv6' })], nodeCtx);
    expect(r.ports.map((p) => [p.family, p.clusterIPs[0], ips(p.clusterEndpoints)])).toEqual([
      [4, '10.96.0.20', ['10.244.1.5']],
      [6, 'fd00:96::20', ['fd00:244::5']],
    ]);
  });

  it('sets affinity timeout for ClientIP', () => {
    const r = desiredService(service('ns', 'a', { sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 60 }), [], nodeCtx);
    expect(r.ports[0]!.affinitySeconds).toBe(60);
    expect(r.ports[0]!.hasEndpoints).toBe(false);
  });
});

describe('desiredService over the watch cache\'s packed endpoints', () => {
  it('chooses what it chooses from a plain list, for every shape of endpoint', () => {
    const v4 = [
      endpoint('10.244.2.9'),
      endpoint('10.244.1.5', { nodeName: 'node-b', zone: 'z1' }),
      endpoint('10.244.1.5', { nodeName: 'node-c' }),
      endpoint('10.244.3.1', { ready: false, serving: true, terminating: true }),
      endpoint('10.244.3.2', { ready: false, serving: false, terminating: true, nodeName: undefined }),
      endpoint('10.244.3.3', { hostname: 'h' }),
      endpoint('10.244.3.4', { hintsForZones: ['z1'] }),
      endpoint('010.1.1.1'),
      endpoint('fd00::1'),
      { addresses: [], ready: true, serving: true, terminating: false },
    ];
    const v6 = [endpoint('fd00:244::5', { nodeName: 'node-b' }), endpoint('10.1.1.1'), endpoint('fd00:244::4', { ready: false })];
    const svc = (o: Parameters<typeof service>[2] = {}) =>
      service('ns', 'web', { clusterIPs: ['10.96.0.10', 'fd00:96::20'], ipFamilies: ['IPv4', 'IPv6'], ...o });
    const slices = (pack: boolean) => [
      slice('ns', 'web', pack ? (PackedEndpoints.of(v4) as unknown as EndpointInfo[]) : v4),
      slice('ns', 'web', pack ? (PackedEndpoints.of(v6) as unknown as EndpointInfo[]) : v6, { name: 'web-v6', addressType: 'IPv6' }),
    ];
    const cases = [svc(), svc({ publishNotReadyAddresses: true }), svc({ internalTrafficPolicy: 'Local' }), svc({ type: 'NodePort', externalTrafficPolicy: 'Local' })];
    for (const s of cases) {
      for (const ctx of [nodeCtx, { ...nodeCtx, zone: 'z1' }]) {
        const plain = desiredService(s, slices(false), ctx);
        expect(desiredService(s, slices(true), ctx)).toEqual(plain);
        expect(plain.problems.map((p) => p.reason)).toEqual(['invalid address "010.1.1.1"', 'invalid address "fd00::1"', 'invalid address "10.1.1.1"']);
      }
    }
  });
});

describe('familyOf', () => {
  it('agrees with net.isIP on dotted quads and their near misses', () => {
    const cases = ['10.0.0.1', '255.255.255.255', '0.0.0.0', '256.1.1.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.04', '1..2.3', '1.2.3.', '.1.2.3', '1.2.3.4 ', 'a.b.c.d', '1.2.3.-4', '::1', 'fd00::10', '::ffff:1.2.3.4', '', '1.2.3.999', '100.100.100.100'];
    for (const c of cases) {
      const f = isIP(c);
      expect([c, familyOf(c)]).toEqual([c, f === 0 ? undefined : f]);
    }
  });
});
