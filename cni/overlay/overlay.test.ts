import { describe, expect, it } from 'vitest';
import type { NodeInfo, PodInfo } from '../../common/types.js';
import { staleAllocations } from '../ipam/reconcile.js';
import type { Allocation } from '../ipam/store.js';
import { masqRuleset } from './masq.js';
import { desiredPeers, diffPeers, peerOps, type PeerState } from './peers.js';
import { pickUnderlay } from './underlay.js';
import { kernelHasChecksumBug } from './vxlan.js';

const node = (name: string, ip: string, cidr: string, mac?: string): NodeInfo => ({
  name,
  uid: name,
  podCIDRs: [cidr],
  addresses: [{ type: 'InternalIP', address: ip }],
  labels: {},
  annotations: mac ? { 'skiff.io/vtep-mac': mac, 'skiff.io/public-ip': ip } : {},
  ready: true,
});
const empty: PeerState = { routes: new Map(), neighbours: new Map(), fdb: new Map() };

describe('desiredPeers', () => {
  it('holds one route, neighbour and FDB entry per published peer, none for self or unpublished nodes', () => {
    const d = desiredPeers('a', [node('a', '10.0.0.1', '10.244.0.0/24', '0a:00:00:00:00:01'), node('b', '10.0.0.2', '10.244.1.0/24', '0A:00:00:00:00:02'), node('c', '10.0.0.3', '10.244.2.0/24')]);
    expect([...d.routes]).toEqual([['10.244.1.0/24', '10.244.1.0']]);
    expect([...d.neighbours]).toEqual([['10.244.1.0', '0a:00:00:00:00:02']]);
    expect([...d.fdb]).toEqual([['0a:00:00:00:00:02', '10.0.0.2']]);
  });
});

describe('diffPeers', () => {
  const want = desiredPeers('a', [node('b', '10.0.0.2', '10.244.1.0/24', '0a:00:00:00:00:02')]);
  it('adds everything on an empty device', () => {
    const d = diffPeers('skiff-vx', empty, want);
    expect(d.ipLines).toEqual(['neigh replace 10.244.1.0 lladdr 0a:00:00:00:00:02 dev skiff-vx nud permanent', 'route replace 10.244.1.0/24 via 10.244.1.0 dev skiff-vx onlink']);
    expect(d.bridgeLines).toEqual(['fdb replace 0a:00:00:00:00:02 dev skiff-vx dst 10.0.0.2 self permanent']);
  });
  it('is empty when the kernel already matches (a restart changes nothing)', () => {
    expect(diffPeers('skiff-vx', want, want)).toEqual({ ipLines: [], bridgeLines: [] });
  });
  it('replaces a changed MAC and drops the stale FDB entry', () => {
    const moved = desiredPeers('a', [node('b', '10.0.0.2', '10.244.1.0/24', '0a:00:00:00:00:99')]);
    const d = diffPeers('skiff-vx', want, moved);
    expect(d.ipLines).toEqual(['neigh replace 10.244.1.0 lladdr 0a:00:00:00:00:99 dev skiff-vx nud permanent']);
    expect(d.bridgeLines).toEqual(['fdb replace 0a:00:00:00:00:99 dev skiff-vx dst 10.0.0.2 self permanent', 'fdb del 0a:00:00:00:00:02 dev skiff-vx self']);
  });
  it('follows a changed node IP with an FDB replace only', () => {
    const moved = desiredPeers('a', [node('b', '10.0.0.9', '10.244.1.0/24', '0a:00:00:00:00:02')]);
    expect(diffPeers('skiff-vx', want, moved)).toEqual({ ipLines: [], bridgeLines: ['fdb replace 0a:00:00:00:00:02 dev skiff-vx dst 10.0.0.9 self permanent'] });
  });
  it('removes every entry of a node that left', () => {
    const d = diffPeers('skiff-vx', want, empty);
    expect(d.ipLines).toEqual(['route del 10.244.1.0/24 dev skiff-vx', 'neigh del 10.244.1.0 dev skiff-vx']);
    expect(d.bridgeLines).toEqual(['fdb del 0a:00:00:00:00:02 dev skiff-vx self']);
  });
  it('orders entry ops FDB -> neighbour -> route when adding and the reverse when removing (netlink path)', () => {
    expect(peerOps(empty, want).map((o) => `${o.kind}${o.del ? '-' : '+'}`)).toEqual(['fdb+', 'neigh+', 'route+']);
    expect(peerOps(want, empty).map((o) => `${o.kind}${o.del ? '-' : '+'}`)).toEqual(['route-', 'neigh-', 'fdb-']);
    expect(peerOps(want, want)).toEqual([]);
  });
});

describe('masqRuleset', () => {
  it('masquerades only cluster traffic to non-pod, non-node destinations, and skips tracking the tunnel', () => {
    const text = masqRuleset({ clusterCIDRs: ['10.244.0.0/16', 'fd00:10::/56'], nodeIPs: ['10.0.0.2', '10.0.0.1', '10.0.0.2'], vxlanPort: 8472, masquerade: true });
    expect(text).toBe(
      [
        'table inet skiff-masq',
        'delete table inet skiff-masq',
        'table inet skiff-masq {',
        '  set cluster4 { type ipv4_addr; flags interval; elements = { 10.244.0.0/16 }; }',
        '  set cluster6 { type ipv6_addr; flags interval; elements = { fd00:10::/56 }; }',
        '  set nodes4 { type ipv4_addr; elements = { 10.0.0.1, 10.0.0.2 }; }',
        '  set nodes6 { type ipv6_addr; }',
        '  chain tunnel-prerouting {',
        '    type filter hook prerouting priority raw; policy accept;',
        '    udp dport 8472 notrack',
        '  }',
        '  chain tunnel-output {',
        '    type filter hook output priority raw; policy accept;',
        '    udp dport 8472 notrack',
        '  }',
        '  chain postrouting {',
        '    type nat hook postrouting priority srcnat; policy accept;',
        '    ip saddr @cluster4 ip daddr != @cluster4 ip daddr != @nodes4 masquerade fully-random',
        '    ip6 saddr @cluster6 ip6 daddr != @cluster6 ip6 daddr != @nodes6 masquerade fully-random',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    expect(masqRuleset({ clusterCIDRs: ['10.244.0.0/16'], nodeIPs: [], vxlanPort: 4789, masquerade: false })).not.toContain('masquerade');
  });
});

describe('staleAllocations', () => {
  const now = 10_000_000;
  const alloc = (o: Partial<Allocation>): Allocation => ({ containerID: 'c', ifname: 'eth0', ip: '10.0.0.2', family: 4, createdMs: 0, ...o });
  const pod = (ns: string, name: string, uid: string): PodInfo => ({ namespace: ns, name, uid, nodeName: 'n', hostNetwork: false, podIPs: [], phase: 'Running', ready: true, deleting: false, labels: {} });
  const pods = new Map([['default/web', pod('default', 'web', 'u1')]]);
  const nsExists = (p: string) => p === '/run/netns/live';
  it.each([
    ['its netns is gone', alloc({ netns: '/run/netns/dead' }), true],
    ['its pod is gone', alloc({ netns: '/run/netns/live', podNamespace: 'default', podName: 'db' }), true],
    ['its pod was recreated (other UID)', alloc({ netns: '/run/netns/live', podNamespace: 'default', podName: 'web', podUID: 'u0' }), true],
    ['it is unreadable', alloc({ containerID: '' }), true],
    ['its pod and netns live', alloc({ netns: '/run/netns/live', podNamespace: 'default', podName: 'web', podUID: 'u1' }), false],
    ['it is younger than the grace period', alloc({ netns: '/run/netns/dead', createdMs: now - 1000 }), false],
  ])('releases an allocation when %s: %s', (_why, a, stale) => {
    expect(staleAllocations([a], pods, nsExists, now).length).toBe(stale ? 1 : 0);
  });
});

describe('underlay and kernel checks', () => {
  it('picks the interface holding the node IP', () => {
    const addrs = [
      { ifname: 'lo', mtu: 65536, addr_info: [{ local: '127.0.0.1' }] },
      { ifname: 'ens5', mtu: 9001, addr_info: [{ local: '172.31.0.5' }] },
    ];
    expect(pickUnderlay(addrs, '172.31.0.5')).toEqual({ ifname: 'ens5', mtu: 9001, ip: '172.31.0.5', subnets: [] });
    expect(pickUnderlay(addrs, '10.9.9.9')).toBeUndefined();
  });
  it('skips lo even when it also holds the node IP (node-local DNS listen address)', () => {
    const addrs = [
      { ifname: 'lo', mtu: 65536, link_type: 'loopback', addr_info: [{ local: '127.0.0.1' }, { local: '172.31.0.5' }] },
      { ifname: 'ens5', mtu: 9001, link_type: 'ether', addr_info: [{ local: '172.31.0.5' }] },
    ];
    expect(pickUnderlay(addrs, '172.31.0.5')).toEqual({ ifname: 'ens5', mtu: 9001, ip: '172.31.0.5', subnets: [] });
    expect(pickUnderlay(addrs.slice(0, 1), '172.31.0.5')).toBeUndefined();
  });
  it("lists the underlay's global subnets for direct routing, never link-local ones", () => {
    const addrs = [
      {
        ifname: 'ens5',
        mtu: 1500,
        addr_info: [
          { local: '172.31.0.5', prefixlen: 20, scope: 'global' },
          { local: '2001:db8::5', prefixlen: 64, scope: 'global' },
          { local: 'fe80::1', prefixlen: 64, scope: 'link' },
        ],
      },
    ];
    expect(pickUnderlay(addrs, '172.31.0.5')?.subnets).toEqual(['172.31.0.5/20', '2001:db8::5/64']);
  });
  it('knows which kernels have the VXLAN checksum bug', () => {
    expect(kernelHasChecksumBug('4.19.0-20-amd64')).toBe(true);
    expect(kernelHasChecksumBug('5.6.19')).toBe(true);
    expect(kernelHasChecksumBug('5.7.0')).toBe(false);
    expect(kernelHasChecksumBug('6.18.44-fc')).toBe(false);
  });
});
