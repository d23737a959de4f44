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

  it('sends a ClusterIP Service slice without endpoints', () => {
    expect(dnsSlice(s, false).endpoints).toEqual([]);
    expect(dnsSlice(s, false).ports).toEqual(s.ports);
  });

  it('drops a Service\'s labels and selector, keeps the rest', () => {
    const svc = service('default', 'web', { clusterIPs: ['10.96.0.20'], labels: { a: 'b' }, selector: { app: 'web' } });
    const { labels: _l, selector: _s, ...rest } = svc;
    expect(dnsService(svc)).toEqual({ ...rest, labels: {} });
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

  it('rebuilds what it receives equal to what was sent, sharing what repeats', () => {
    const clone = <T>(x: T): T => structuredClone(x);
    const a = dnsService(service('ns1', 'a', { clusterIPs: ['10.96.0.1'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }], externalName: 'x' }));
    const b = dnsService(service('ns1', 'b', { clusterIPs: ['10.96.0.2'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }] }));
    const [ra, rb] = [receivedService(clone(a)), receivedService(clone(b))];
    expect(ra).toEqual(a);
    expect(rb).toEqual(b);
    expect(ra.ports).toBe(rb.ports);
    expect(ra.ipFamilies).toBe(rb.ipFamilies);
    expect(ra.externalIPs).toBe(rb.externalIPs);
    const sa = dnsSlice(s, true);
    const sb = dnsSlice(slice('default', 'db', 'db-2', { ports: s.ports }), false);
    const [rsa, rsb] = [receivedSlice(clone(sa)), receivedSlice(clone(sb))];
    expect(rsa).toEqual(sa);
    expect(rsb).toEqual(sb);
    expect(rsa.ports).toBe(rsb.ports);
    expect(receivedSlice(clone(dnsSlice(s, false))).endpoints).toBe(rsb.endpoints);
  });
});
