import { describe, expect, it } from 'vitest';
import type { EndpointSliceInfo, ServiceInfo } from '../common/types.js';
import { boundsOfObjects, boundsOfPorts } from './bounds.js';
import { desiredService } from './desired.js';
import { endpoint, nodeCtx, service, slice } from './fixtures.js';
import type { ServicePort } from './model.js';

/** A small deterministic generator (mulberry32): the same cases on every run. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

describe('full-sync size bounds from the raw objects', () => {
  it('never undershoot what the desired state renders, whatever the Services look like', () => {
    const r = rng(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    for (let round = 0; round < 200; round++) {
      const services: ServiceInfo[] = [];
      const slices = new Map<string, EndpointSliceInfo[]>();
      const computed = new Map<string, ServicePort[]>();
      for (let i = 0; i < 6; i++) {
        const name = `s${i}`;
        const clusterIPs = pick([['10.96.0.1'], ['fd00::1'], ['10.96.0.2', 'fd00::2'], ['bogus'], []]);
        const ports = Array.from({ length: 1 + Math.floor(r() * 3) }, (_, p) => ({
          name: `p${p}`,
          protocol: pick(['TCP', 'UDP', 'SCTP', 'ICMP'] as const),
          port: 80 + p,
          targetPort: 8080 + p,
          nodePort: 30000 + p,
        }));
        const svc = service('ns', name, {
          clusterIPs,
          ports: ports as ServiceInfo['ports'],
          type: pick(['ClusterIP', 'NodePort', 'LoadBalancer'] as const),
          externalTrafficPolicy: pick(['Cluster', 'Local'] as const),
          externalIPs: pick([[], ['203.0.113.1'], ['203.0.113.1', '2001:db8::1']]),
          loadBalancerIPs: pick([[], ['198.51.100.1']]),
        });
        services.push(svc);
        const own = Array.from({ length: Math.floor(r() * 3) }, (_, k) => {
          const v6 = r() < 0.3;
          const n = Math.floor(r() * 5);
          const eps = Array.from({ length: n }, (_, e) => endpoint(v6 ? `fd00:244::${k}:${e + 1}` : `10.244.${k}.${e + 1}`, { nodeName: pick(['node-a', 'node-b']), ready: r() < 0.8 }));
          return slice('ns', name, eps, { name: `${name}-${k}`, addressType: v6 ? 'IPv6' : 'IPv4', ports: ports.filter(() => r() < 0.8).map((p) => ({ name: p.name, port: p.targetPort, protocol: p.protocol as 'TCP' })) });
        });
        slices.set(`ns/${name}`, own);
        computed.set(`ns/${name}`, desiredService(svc, own, nodeCtx).ports);
      }
      const bound = boundsOfObjects(services, [...slices.values()].flat());
      const exact = boundsOfPorts(computed);
      for (const f of [4, 6] as const) {
        expect(bound[f].clusterIPs).toBeGreaterThanOrEqual(exact[f].clusterIPs);
        expect(bound[f].keys).toBeGreaterThanOrEqual(exact[f].keys);
        for (const p of ['tcp', 'udp', 'sctp'] as const) expect(bound[f].endpoints[p]).toBeGreaterThanOrEqual(exact[f].endpoints[p]);
      }
    }
  });

  it('count every endpoint twice for externalTrafficPolicy Local (a cluster and a node-local list)', () => {
    const svc = service('ns', 'web', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }] });
    const s = [slice('ns', 'web', [endpoint('10.244.1.5'), endpoint('10.244.1.6')])];
    const b = boundsOfObjects([svc], s);
    expect(b[4].endpoints.tcp).toBe(4);
    expect(boundsOfPorts(new Map([['ns/web', desiredService(svc, s, nodeCtx).ports]]))[4].endpoints.tcp).toBe(4);
  });
});
