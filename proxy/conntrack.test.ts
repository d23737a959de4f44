import { describe, expect, it } from 'vitest';
import { staleFlows } from './conntrack.js';
import { desiredService } from './desired.js';
import { endpoint, nodeCtx, service, slice } from './fixtures.js';

const udp = (ips: string[]) =>
  desiredService(
    service('ns', 'dns', { type: 'NodePort', ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 53, nodePort: 30053 }] }),
    [slice('ns', 'dns', ips.map((ip) => endpoint(ip)), { ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] })],
    nodeCtx,
  ).ports[0]!;

describe('staleFlows', () => {
  it('deletes entries DNATed to a removed UDP endpoint', () => {
    expect(staleFlows(udp(['10.244.1.5', '10.244.1.6']), udp(['10.244.1.6']))).toEqual([
      ['-D', '-p', 'udp', '--orig-dst', '10.96.0.10', '--dst-nat', '10.244.1.5'],
      ['-D', '-p', 'udp', '--orig-port-dst', '30053', '--dst-nat', '10.244.1.5'],
    ]);
  });

  it('flushes the Service address when it gets its first endpoint', () => {
    expect(staleFlows(udp([]), udp(['10.244.1.5']))).toEqual([
      ['-D', '-p', 'udp', '--orig-dst', '10.96.0.10', '--orig-port-dst', '53'],
      ['-D', '-p', 'udp', '--orig-port-dst', '30053'],
    ]);
    expect(staleFlows(undefined, udp(['10.244.1.5']))).toHaveLength(2);
  });

  it('does nothing for TCP or unchanged endpoints', () => {
    const tcp = desiredService(service('ns', 'w'), [slice('ns', 'w', [endpoint('10.244.1.5')])], nodeCtx).ports[0]!;
    expect(staleFlows(tcp, undefined)).toEqual([]);
    expect(staleFlows(udp(['10.244.1.5']), udp(['10.244.1.5']))).toEqual([]);
  });
});
