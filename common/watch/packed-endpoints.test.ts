// The packed endpoints give back exactly what was packed, in order, whatever its shape.
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { EndpointInfo } from '../types.js';
import { ENDPOINT_READY, ENDPOINT_SERVING, ENDPOINT_TERMINATING, ENDPOINT_WHOLE, ipv4String, ipv4Word, PackedEndpoints } from './packed-endpoints.js';

const c = { ready: true, serving: true, terminating: false };

describe('PackedEndpoints', () => {
  it('returns every endpoint as packed, in order, whatever its shape', () => {
    const eps: EndpointInfo[] = [
      { addresses: ['10.244.1.5'], ...c },
      { addresses: ['10.244.1.6'], ready: false, serving: true, terminating: true, nodeName: 'node-a' },
      { addresses: ['255.255.255.255'], ready: false, serving: false, terminating: false, nodeName: 'node-a', zone: 'z1' },
      { addresses: ['0.0.0.0'], ...c, zone: 'z1' },
      { addresses: ['fd00::1'], ...c, nodeName: 'node-b' },
      // Spellings that would not come back the same as integers stay strings.
      { addresses: ['010.0.0.1'], ...c },
      { addresses: ['10.0.0.256'], ...c },
      { addresses: ['10.0.0.1', '10.0.0.2'], ...c },
      { addresses: [], ...c },
      { addresses: ['10.0.0.3'], ...c, hostname: 'web-0', nodeName: 'node-a' },
      { addresses: ['10.0.0.4'], ...c, hintsForZones: ['z1'] },
    ];
    const packed = PackedEndpoints.of(eps);
    expect(packed.length).toBe(eps.length);
    expect([...packed]).toEqual(eps);
    for (const e of packed) for (const v of Object.values(e)) expect(v).not.toBeUndefined();
    expect(packed.at(1)).toEqual(eps[1]);
    expect(packed.at(eps.length)).toBeUndefined();
    expect([...PackedEndpoints.of([])]).toEqual([]);
  });

  it('answers each endpoint\'s address, conditions and node in place, or says it is kept whole', () => {
    const eps: EndpointInfo[] = [
      { addresses: ['10.244.1.6'], ready: false, serving: true, terminating: true, nodeName: 'node-a', zone: 'z1' },
      { addresses: ['fd00::1'], ready: true, serving: false, terminating: false },
      { addresses: ['10.0.0.3'], ...c, hostname: 'web-0' },
    ];
    const p = PackedEndpoints.of(eps);
    expect([p.conditionsAt(0), p.isIPv4At(0), p.addressAt(0), p.nodeNameAt(0)]).toEqual([ENDPOINT_SERVING | ENDPOINT_TERMINATING, true, '10.244.1.6', 'node-a']);
    expect([p.conditionsAt(1), p.isIPv4At(1), p.addressAt(1), p.nodeNameAt(1)]).toEqual([ENDPOINT_READY, false, 'fd00::1', undefined]);
    expect(p.conditionsAt(2)).toBe(ENDPOINT_WHOLE);
    expect(p.at(2)).toBe(eps[2]);
  });

  it('packs equal lists equally, so the store still sees an unchanged slice as unchanged', () => {
    const a = [{ addresses: ['10.0.0.1'], ...c, nodeName: 'n1' }];
    expect(isDeepStrictEqual(PackedEndpoints.of(a), PackedEndpoints.of([{ ...a[0]! }]))).toBe(true);
    expect(isDeepStrictEqual(PackedEndpoints.of(a), PackedEndpoints.of([{ ...a[0]!, ready: false }]))).toBe(false);
    expect(isDeepStrictEqual(PackedEndpoints.of(a), PackedEndpoints.of([{ ...a[0]!, addresses: ['10.0.0.2'] }]))).toBe(false);
  });

  it('keeps a slice whose string table would overflow correct', () => {
    const eps = Array.from({ length: 5000 }, (_, i): EndpointInfo => ({ addresses: [`fd00::${i.toString(16)}`], ...c, nodeName: `node-${i}` }));
    expect([...PackedEndpoints.of(eps)]).toEqual(eps);
  });

  it.each(['1.2.3.4', '0.0.0.0', '255.255.255.255', '192.168.100.7'])('reads and writes %s as one integer', (s) => {
    expect(ipv4String(ipv4Word(s)!)).toBe(s);
  });

  it.each(['1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.256', '1..2.3', '1.2.3.4 ', '::1', '1.2.3.1000', '', '1.2.3.00', '1..3.4', '1.2.3.', '.1.2.3', '1.2.3.4/32', 'fd00::1', ' 1.2.3.4', '1.2.3.4 . 1.2.3.4'])('refuses %j', (s) => {
    expect(ipv4Word(s)).toBeUndefined();
  });

  it("reads an address as the word its octets make (the proxy's mirror keeps them unsigned)", () => {
    expect(ipv4Word('0.0.0.0')).toBe(0);
    expect(ipv4Word('10.244.1.5')! >>> 0).toBe(0x0af40105);
    expect(ipv4Word('255.255.255.255')! >>> 0).toBe(0xffffffff);
  });
});
