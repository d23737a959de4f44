import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../common/config.js';
import type { NodeInfo } from '../../common/types.js';
import { directGateway, directVia, onSubnet, parseVia } from './direct.js';
import { desiredPeers, diffPeers, nodePeerEntries, peerOps, type PeerState } from './peers.js';

const MAC = '0a:00:00:00:00:02';
const peer = (o: { ip?: string; ip6?: string; direct?: boolean; v6?: boolean } = {}): NodeInfo => ({
  name: 'b',
  uid: 'b',
  podCIDRs: ['10.244.1.0/24', ...(o.v6 ? ['fd00:10:1::/64'] : [])],
  addresses: [{ type: 'InternalIP', address: o.ip ?? '192.168.1.2' }, ...(o.ip6 ? [{ type: 'InternalIP', address: o.ip6 }] : [])],
  labels: {},
  annotations: { 'skiff.io/vtep-mac': MAC, 'skiff.io/public-ip': o.ip ?? '192.168.1.2', ...(o.direct === false ? {} : { 'skiff.io/direct-routing': 'true' }) },
  ready: true,
});
const UNDERLAY = { dev: 'eth0', subnets: ['192.168.1.1/24', '2001:db8::1/64'] };
const empty: PeerState = { routes: new Map(), neighbours: new Map(), fdb: new Map() };

describe('directGateway', () => {
  it.each([
    ['a peer on the underlay subnet', UNDERLAY, peer(), 4, '192.168.1.2'],
    ['direct routing off here', undefined, peer(), 4, undefined],
    ['a peer that does not route directly itself', UNDERLAY, peer({ direct: false }), 4, undefined],
    ['a peer on another subnet', UNDERLAY, peer({ ip: '192.168.2.2' }), 4, undefined],
    ['a /32 underlay (cloud): no peer is on-link', { dev: 'eth0', subnets: ['192.168.1.1/32'] }, peer(), 4, undefined],
    ['a peer claiming this node address', UNDERLAY, peer({ ip: '192.168.1.1' }), 4, undefined],
    ['IPv6 with the peer IPv6 address on the subnet', UNDERLAY, peer({ ip6: '2001:db8::2', v6: true }), 6, '2001:db8::2'],
    ['IPv6 without a peer IPv6 address', UNDERLAY, peer({ v6: true }), 6, undefined],
    ['IPv6 with the peer IPv6 address elsewhere', UNDERLAY, peer({ ip6: '2001:db9::2', v6: true }), 6, undefined],
  ] as const)('%s', (_why, d, p, family, want) => {
    expect(directGateway(d, p, family, p.addresses[0]!.address)).toBe(want);
  });

  it('matches subnets per family and includes both ends of the range', () => {
    expect(onSubnet(['10.1.0.9/30'], '10.1.0.8')).toBe(true);
    expect(onSubnet(['10.1.0.9/30'], '10.1.0.11')).toBe(true);
    expect(onSubnet(['10.1.0.9/30'], '10.1.0.12')).toBe(false);
    expect(onSubnet(['2001:db8::1/64'], '10.1.0.8')).toBe(false);
  });

  it('round-trips a route value', () => {
    expect(parseVia(directVia('192.168.1.2', 'eth0'))).toEqual({ gateway: '192.168.1.2', dev: 'eth0' });
    expect(parseVia('10.244.1.0')).toEqual({ gateway: '10.244.1.0' });
  });
});

describe('entries of a direct peer', () => {
  it('is a route via the node IP on the underlay, without neighbour or FDB entries', () => {
    expect(nodePeerEntries('a', peer(), UNDERLAY)).toEqual({ routes: [['10.244.1.0/24', '192.168.1.2 dev eth0']], neighbours: [], fdb: [] });
  });

  it('keeps an IPv6 podCIDR on VXLAN when the peer has no IPv6 node address, with the tunnel entries it needs', () => {
    expect(nodePeerEntries('a', peer({ v6: true }), UNDERLAY)).toEqual({
      routes: [
        ['10.244.1.0/24', '192.168.1.2 dev eth0'],
        ['fd00:10:1::/64', 'fd00:10:1::'],
      ],
      neighbours: [['fd00:10:1::', MAC]],
      fdb: [[MAC, '192.168.1.2']],
    });
    expect(nodePeerEntries('a', peer({ v6: true, ip6: '2001:db8::2' }), UNDERLAY).routes).toEqual([
      ['10.244.1.0/24', '192.168.1.2 dev eth0'],
      ['fd00:10:1::/64', '2001:db8::2 dev eth0'],
    ]);
  });

  it('switches VXLAN -> direct with one route replace, then drops the tunnel entries', () => {
    const vxlan = desiredPeers('a', [peer()]);
    const direct = desiredPeers('a', [peer()], UNDERLAY);
    expect(diffPeers('skiff-vx', vxlan, direct)).toEqual({
      ipLines: ['route replace 10.244.1.0/24 via 192.168.1.2 dev eth0 proto 95', 'neigh del 10.244.1.0 dev skiff-vx'],
      bridgeLines: [`fdb del ${MAC} dev skiff-vx self`],
    });
    // The replace comes before the deletions: the route never points at a missing neighbour.
    expect(peerOps(vxlan, direct).map((o) => `${o.kind}${o.del ? '-' : '+'}`)).toEqual(['route+', 'neigh-', 'fdb-']);
  });

  it('switches direct -> VXLAN (the peer moved off-subnet) with the tunnel entries first', () => {
    const direct = desiredPeers('a', [peer()], UNDERLAY);
    const moved = desiredPeers('a', [peer({ ip: '10.9.0.2' })], UNDERLAY);
    expect(diffPeers('skiff-vx', direct, moved)).toEqual({
      ipLines: [`neigh replace 10.244.1.0 lladdr ${MAC} dev skiff-vx nud permanent`, 'route replace 10.244.1.0/24 via 10.244.1.0 dev skiff-vx onlink'],
      bridgeLines: [`fdb replace ${MAC} dev skiff-vx dst 10.9.0.2 self permanent`],
    });
  });

  it('moves an IPv6 podCIDR back to VXLAN by deleting the direct route first (IPv6 rejects the onlink gateway otherwise)', () => {
    const direct = desiredPeers('a', [peer({ v6: true, ip6: '2001:db8::2' })], UNDERLAY);
    const off = desiredPeers('a', [peer({ v6: true, ip6: '2001:db8::2', direct: false })], UNDERLAY);
    expect(diffPeers('skiff-vx', direct, off).ipLines).toEqual([
      `neigh replace 10.244.1.0 lladdr ${MAC} dev skiff-vx nud permanent`,
      `neigh replace fd00:10:1:: lladdr ${MAC} dev skiff-vx nud permanent`,
      'route replace 10.244.1.0/24 via 10.244.1.0 dev skiff-vx onlink',
      'route del fd00:10:1::/64 dev eth0 proto 95',
      'route replace fd00:10:1::/64 via fd00:10:1:: dev skiff-vx onlink',
    ]);
  });

  it('removes a direct route on its own device and only with our protocol number', () => {
    const direct = desiredPeers('a', [peer()], UNDERLAY);
    expect(diffPeers('skiff-vx', direct, empty)).toEqual({ ipLines: ['route del 10.244.1.0/24 dev eth0 proto 95'], bridgeLines: [] });
  });
});

describe('cni.directRouting', () => {
  it('is off by default and set by SKIFF_CNI_DIRECT_ROUTING', () => {
    expect(loadConfig({}, { NODE_NAME: 'a' }).cni.directRouting).toBe(false);
    expect(loadConfig({}, { NODE_NAME: 'a', SKIFF_CNI_DIRECT_ROUTING: 'true' }).cni.directRouting).toBe(true);
    expect(loadConfig({ 'cni.directRouting': false }, { NODE_NAME: 'a', SKIFF_CNI_DIRECT_ROUTING: 'true' }).cni.directRouting).toBe(false);
  });
});
