import { describe, expect, it } from 'vitest';
import { endpoint, service, slice } from '../testing/fixtures.js';
import { dnsService, dnsSlice, headlessChanged, receivedService, receivedSlice } from './feed.js';

describe('what a DNS thread is fed', () => {
  const eps = [endpoint(['10.1.0.1'], { nodeName: 'n1', zone: 'z', hostname: 'a' }), endpoint(['10.1.0.2'], { ready: false })];
  const s = slice('default', 'db', 'db-1', { endpoints: eps, labels: { 'kubernetes.io/service-name': 'db' }, triggerTimeMs: 5, ports: [{ name: 'pg', port: 5432, protocol: 'TCP' }] });

  it('keeps a headless Service slice\'s endpoints with only what records need', () => {
    expect(dnsSlice(s, true)).toEqual({
      namespace: 'default', name: 'db-1', serviceName: 'db', addressType: 'IPv4', ports: s.ports, labels: {},
      endpoints: [
        { addresses: ['10.1.0.1'], ready: true, serving: true, terminating: false, hostname: 'a' },
        { addresses: ['10.1.0.2'], ready: false, serving: true, terminating: false },
      ],
    });
  });

  it('does not send a ClusterIP Service\'s slices at all', () => {
    expect(dnsSlice(s, false)).toBeUndefined();
  });

  it('sends a Service as the fields DNS reads and rebuilds it with the rest at their defaults', () => {
    const svc = service('default', 'web', {
      clusterIPs: ['10.96.0.20'], labels: { a: 'b' }, selector: { app: 'web' }, uid: 'u1', externalIPs: ['1.2.3.4'], externalTrafficPolicy: 'Local', publishNotReadyAddresses: true,
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }, { name: 'dns', protocol: 'UDP', port: 53, targetPort: 'dns' }],
    });
    const got = receivedService(structuredClone(dnsService(svc)));
    expect(got).toMatchObject({ namespace: 'default', name: 'web', type: 'ClusterIP', clusterIPs: ['10.96.0.20'], headless: false, publishNotReadyAddresses: true, labels: {}, externalIPs: [], uid: '' });
    expect(got.ports.map((p) => [p.name, p.protocol, p.port])).toEqual([['http', 'TCP', 80], ['dns', 'UDP', 53]]);
    expect(got.externalName).toBeUndefined();
    const ext = receivedService(structuredClone(dnsService(service('default', 'x', { type: 'ExternalName', clusterIPs: [], ports: [], externalName: 'example.com' }))));
    expect(ext).toMatchObject({ type: 'ExternalName', externalName: 'example.com', ports: [] });
  });

  it('notices a Service turning headless or not, created or deleted', () => {
    const cip = service('default', 'x', { clusterIPs: ['10.96.0.1'] });
    const hl = service('default', 'x', { headless: true });
    expect(headlessChanged('services', undefined, hl)).toBe(true);
    expect(headlessChanged('services', hl, undefined)).toBe(true);
    expect(headlessChanged('services', cip, hl)).toBe(true);
    expect(headlessChanged('services', undefined, cip)).toBe(false);
    expect(headlessChanged('services', hl, hl)).toBe(false);
    expect(headlessChanged('endpointslices', undefined, s)).toBe(false);
  });

  it('rebuilds what it receives, sharing what repeats', () => {
    const clone = <T>(x: T): T => structuredClone(x);
    const a = receivedService(clone(dnsService(service('ns1', 'a', { clusterIPs: ['10.96.0.1'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }] }))));
    const b = receivedService(clone(dnsService(service('ns1', 'b', { clusterIPs: ['10.96.0.2'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 9090 }] }))));
    expect(a.ports).toBe(b.ports);
    expect(a.ipFamilies).toBe(b.ipFamilies);
    const sa = dnsSlice(s, true)!;
    const sb = dnsSlice(slice('default', 'db', 'db-2', { ports: s.ports }), true)!;
    const [rsa, rsb] = [receivedSlice(clone(sa)), receivedSlice(clone(sb))];
    expect(rsa).toEqual(sa);
    expect(rsb).toEqual(sb);
    expect(rsa.ports).toBe(rsb.ports);
  });
});
