import { describe, expect, it } from 'vitest';
import { ApiError } from '../../sandbox/apiserver/errors.js';
import { FakeStore } from '../../sandbox/apiserver/store.js';
import type { KubeObject } from '../../sandbox/apiserver/resources.js';
import { allocateService, serviceAdmission } from '../../sandbox/service-alloc.js';
import { isServiceIPInRange } from '../../sandbox/ipam.js';

const CIDR = '10.96.0.0/12';
const svc = (name: string, spec: Record<string, unknown>): KubeObject => ({ metadata: { name, namespace: 'default' }, spec });
const seq = () => {
  let i = 0;
  return (n: number) => i++ % n;
};

function storeWithAllocator(): FakeStore {
  const store = new FakeStore();
  store.admit('services', serviceAdmission(() => store.select('services'), { serviceCIDR: CIDR }));
  return store;
}

describe('service allocator', () => {
  it('assigns a cluster IP outside the static band and fills defaults', () => {
    const out = allocateService('CREATE', svc('a', { ports: [{ port: 80 }] }), undefined, [], { serviceCIDR: CIDR, pick: () => 0 });
    const spec = out.spec as Record<string, unknown>;
    // The first 256 addresses are kept for Services that ask for a fixed IP (kube-dns at .10).
    expect(spec.clusterIP).toBe('10.96.1.1');
    expect(spec.clusterIPs).toEqual(['10.96.1.1']);
    expect(spec.type).toBe('ClusterIP');
    expect(spec.ports).toEqual([{ port: 80, protocol: 'TCP', targetPort: 80 }]);
  });

  it('skips addresses already in use', () => {
    const other = svc('b', { clusterIP: '10.96.1.1', clusterIPs: ['10.96.1.1'] });
    const out = allocateService('CREATE', svc('a', {}), undefined, [other], { serviceCIDR: CIDR, pick: () => 0 });
    expect((out.spec as { clusterIP: string }).clusterIP).toBe('10.96.1.2');
  });

  it('keeps headless and ExternalName services without an address', () => {
    const h = allocateService('CREATE', svc('h', { clusterIP: 'None' }), undefined, [], { serviceCIDR: CIDR });
    expect((h.spec as { clusterIPs: string[] }).clusterIPs).toEqual(['None']);
    const e = allocateService('CREATE', svc('e', { type: 'ExternalName', externalName: 'example.org' }), undefined, [], { serviceCIDR: CIDR });
    expect((e.spec as { clusterIP?: string }).clusterIP).toBeUndefined();
  });

  it('allocates node ports for NodePort and LoadBalancer and a health check port for Local LBs', () => {
    const pick = seq();
    const out = allocateService(
      'CREATE',
      svc('lb', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80 }, { name: 'https', port: 443, nodePort: 30001 }] }),
      undefined,
      [],
      { serviceCIDR: CIDR, pick },
    );
    const spec = out.spec as { ports: { nodePort: number }[]; healthCheckNodePort: number };
    const ports = [...spec.ports.map((p) => p.nodePort), spec.healthCheckNodePort];
    expect(ports[1]).toBe(30001);
    expect(new Set(ports).size).toBe(3);
    for (const p of ports) expect(p >= 30000 && p <= 32767).toBe(true);
  });

  it('rejects a duplicate cluster IP and node port with 422 Invalid through the store', () => {
    const store = storeWithAllocator();
    const a = store.create('services', svc('a', { type: 'NodePort', ports: [{ port: 80, nodePort: 31000 }] }));
    const ip = (a.spec as { clusterIP: string }).clusterIP;
    expect(isServiceIPInRange(CIDR, ip)).toBe(true);
    const dupIP = (): unknown => store.create('services', svc('b', { clusterIP: ip, ports: [{ port: 80 }] }));
    expect(dupIP).toThrowError(ApiError);
    try {
      dupIP();
    } catch (e) {
      expect((e as ApiError).code).toBe(422);
      expect((e as ApiError).reason).toBe('Invalid');
      expect((e as ApiError).message).toContain('provided IP is already allocated');
    }
    expect(() => store.create('services', svc('c', { type: 'NodePort', ports: [{ port: 80, nodePort: 31000 }] }))).toThrowError(/port is already allocated/);
    expect(() => store.create('services', svc('d', { clusterIP: '10.0.0.1' }))).toThrowError(/not in the valid range/);
    // Deleting the owner frees both.
    store.delete('services', 'a', 'default');
    const b = store.create('services', svc('b', { clusterIP: ip, type: 'NodePort', ports: [{ port: 80, nodePort: 31000 }] }));
    expect((b.spec as { clusterIP: string }).clusterIP).toBe(ip);
  });

  it('keeps allocations across an update that omits them and refuses to change the cluster IP', () => {
    const store = storeWithAllocator();
    const a = store.create('services', svc('a', { type: 'NodePort', ports: [{ port: 80 }] }));
    const spec = a.spec as { clusterIP: string; ports: { nodePort: number }[] };
    const updated = store.update('services', svc('a', { type: 'NodePort', ports: [{ port: 80 }], selector: { app: 'x' } }));
    const uspec = updated.spec as typeof spec;
    expect(uspec.clusterIP).toBe(spec.clusterIP);
    expect(uspec.ports[0]!.nodePort).toBe(spec.ports[0]!.nodePort);
    expect(() => store.update('services', svc('a', { clusterIP: '10.96.5.5' }))).toThrowError(/immutable/);
  });
});
