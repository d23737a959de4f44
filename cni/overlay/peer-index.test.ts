import { describe, expect, it } from 'vitest';
import type { NodeInfo } from '../../common/types.js';
import { masqElementOps } from './masq.js';
import { NodeIPIndex, PeerIndex } from './peer-index.js';
import { desiredPeers, peerOps, peerOpsFor, vtepAddress, type PeerOp, type PeerState } from './peers.js';

type NodeOpts = { mac?: number; ip?: number; cidr?: number; published?: boolean; direct?: boolean; v6?: boolean };
const node = (i: number, o: NodeOpts = {}): NodeInfo => {
  const ipN = o.ip ?? i;
  const ip = `10.0.${ipN >> 8}.${ipN & 255}`;
  const c = o.cidr ?? i;
  const mac = `0a:00:00:00:${((o.mac ?? i) >> 8).toString(16).padStart(2, '0')}:${((o.mac ?? i) & 255).toString(16).padStart(2, '0')}`;
  const annotations: Record<string, string> = o.published === false ? {} : { 'skiff.io/vtep-mac': mac, 'skiff.io/public-ip': ip };
  if (o.direct && o.published !== false) annotations['skiff.io/direct-routing'] = 'true';
  return {
    name: `n${i}`,
    uid: `n${i}`,
    podCIDRs: [`10.${100 + (c >> 8)}.${c & 255}.0/24`, ...(o.v6 ? [`fd00:${c.toString(16)}::/64`] : [])],
    addresses: [{ type: 'InternalIP', address: ip }, ...(o.v6 ? [{ type: 'InternalIP', address: `fd00::${ipN.toString(16)}` }] : [])],
    labels: {},
    annotations,
    ready: true,
  };
};

// This node's underlay: 10.0.0.0/22 and fd00::/120 are on-link, so moved peers land on both sides.
const DIRECT = { dev: 'eth0', subnets: ['10.0.0.250/22', 'fd00::fa/120'] };

const sorted = (p: PeerState): unknown => ({ routes: [...p.routes].sort(), neighbours: [...p.neighbours].sort(), fdb: [...p.fdb].sort() });

const RANK = { 'fdb+': 0, 'neigh+': 1, 'route+': 2, 'route-': 3, 'neigh-': 4, 'fdb-': 5 } as const;
const rank = (o: PeerOp): number => RANK[`${o.kind}${o.del ? '-' : '+'}` as keyof typeof RANK];
/** FDB, neighbour, route when adding; the reverse when removing. */
// An IPv6 route leaving direct routing is deleted just before its VXLAN replacement (peers.ts).
const swap = (ops: readonly PeerOp[], i: number): boolean => {
  const o = ops[i]!;
  const next = ops[i + 1];
  return o.kind === 'route' && o.del && next?.kind === 'route' && !next.del && next.key === o.key;
};
const isOrdered = (ops: readonly PeerOp[]): boolean => {
  const plain = ops.filter((_, i) => !swap(ops, i));
  return plain.every((o, i) => i === 0 || rank(plain[i - 1]!) <= rank(o));
};
const canon = (ops: readonly PeerOp[]): string[] => ops.map((o, i) => `${swap(ops, i) ? 2 : rank(o)} ${o.key} ${o.del ? '-' : '+'} ${o.value}`).sort();

// A small deterministic PRNG so a failure replays.
function rng(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

describe('PeerIndex', () => {
  it('matches a full recompute after every single-node event of a random history', () => {
    const r = rng(7);
    const store = new Map<string, NodeInfo>();
    for (let i = 0; i < 40; i++) store.set(`n${i}`, node(i));
    const idx = new PeerIndex('n0');
    idx.reset(store.values());
    let known: PeerState = desiredPeers('n0', store.values());
    for (let step = 0; step < 200; step++) {
      const i = Math.floor(r() * 50);
      const roll = r();
      // Changes keep keys unique per node (copied MACs are the shared-key case below).
      if (roll < 0.25) store.delete(`n${i}`);
      else if (roll < 0.5) store.set(`n${i}`, node(i, { ip: 1000 + Math.floor(r() * 1000) }));
      else if (roll < 0.65) store.set(`n${i}`, node(i, { published: false }));
      else if (roll < 0.8) store.set(`n${i}`, node(i, { mac: 2000 + i }));
      else store.set(`n${i}`, node(i));
      const keys = idx.update(`n${i}`, store.get(`n${i}`));
      expect(keys).toBeDefined();
      const full = desiredPeers('n0', store.values());
      expect(sorted(idx.desired)).toEqual(sorted(full));
      // The key-restricted diff against the previous state does what the full diff does.
      const ops = peerOpsFor(known, idx.desired, keys!);
      expect(ops).toEqual(peerOps(known, full));
      known = { routes: new Map(full.routes), neighbours: new Map(full.neighbours), fdb: new Map(full.fdb) };
    }
  });

  it('still matches with direct routing: peers switch between direct and VXLAN as they move, opt in or out', () => {
    const r = rng(11);
    const store = new Map<string, NodeInfo>();
    const random = (i: number): NodeInfo =>
      node(i, { ip: Math.floor(r() * 2048), direct: r() < 0.7, v6: r() < 0.5, published: r() > 0.1, mac: r() < 0.2 ? 3000 + i : i });
    for (let i = 0; i < 40; i++) store.set(`n${i}`, random(i));
    const idx = new PeerIndex('n0');
    idx.reset(store.values(), DIRECT);
    let known: PeerState = desiredPeers('n0', store.values(), DIRECT);
    const kinds = new Set<string>();
    for (let step = 0; step < 200; step++) {
      const i = Math.floor(r() * 50);
      if (r() < 0.2) store.delete(`n${i}`);
      else store.set(`n${i}`, random(i));
      const keys = idx.update(`n${i}`, store.get(`n${i}`));
      expect(keys).toBeDefined();
      const full = desiredPeers('n0', store.values(), DIRECT);
      expect(sorted(idx.desired)).toEqual(sorted(full));
      const ops = peerOpsFor(known, idx.desired, keys!);
      // Dual-stack peers have two keys per kind, whose order within a kind does not matter.
      expect(isOrdered(ops)).toBe(true);
      expect(canon(ops)).toEqual(canon(peerOps(known, full)));
      // A direct peer never has a neighbour or FDB entry; its route is on the underlay.
      for (const [cidr, via] of full.routes) {
        kinds.add(via.includes(' dev ') ? `direct${cidr.includes(':') ? 6 : 4}` : `vxlan${cidr.includes(':') ? 6 : 4}`);
        if (via.includes(' dev ')) expect(full.neighbours.has(vtepAddress(cidr))).toBe(false);
      }
      known = { routes: new Map(full.routes), neighbours: new Map(full.neighbours), fdb: new Map(full.fdb) };
    }
    // The history really mixed both kinds in both families.
    expect([...kinds].sort()).toEqual(['direct4', 'direct6', 'vxlan4', 'vxlan6']);
    // Flipping the key is a full recompute: every direct route goes back to its VTEP in one replace.
    idx.reset(store.values(), undefined);
    const off = desiredPeers('n0', store.values());
    expect(sorted(idx.desired)).toEqual(sorted(off));
    expect([...off.routes.values()].some((v) => v.includes(' dev '))).toBe(false);
  });

  it('touches only the changed node: one key per kind for a new peer, none for this node', () => {
    const idx = new PeerIndex('n0');
    idx.reset([node(0), node(1)]);
    const k = idx.update('n2', node(2))!;
    expect([...k.routes, ...k.neighbours, ...k.fdb]).toEqual(['10.100.2.0/24', '10.100.2.0', '0a:00:00:00:00:02']);
    const self = idx.update('n0', node(0, { ip: 99 }))!;
    expect(self.routes.size + self.neighbours.size + self.fdb.size).toBe(0);
  });

  it('counts the peers it routes to, direct or over VXLAN, and not unpublished nodes or itself', () => {
    const idx = new PeerIndex('n0');
    idx.reset([node(0, { direct: true }), node(1, { direct: true }), node(2), node(3, { published: false })], DIRECT);
    expect(idx.desired.fdb.size).toBe(1);
    expect(idx.peers).toBe(2);
    idx.update('n3', node(3));
    expect(idx.peers).toBe(3);
    idx.update('n1', undefined);
    expect(idx.peers).toBe(2);
  });

  it('asks for a full recompute when two nodes claim one key (a copied MAC)', () => {
    const idx = new PeerIndex('n0');
    idx.reset([node(0), node(1), node(2)]);
    expect(idx.update('n2', node(2, { mac: 1 }))).toBeUndefined();
    idx.reset([node(0), node(1), node(2, { mac: 1 })]);
    // Removing one claimant of a shared key is also not decidable locally.
    expect(idx.update('n1', undefined)).toBeUndefined();
  });
});

describe('NodeIPIndex and masq element deltas', () => {
  it('reports an address only when the first node takes it or the last one lets it go', () => {
    const ips = new NodeIPIndex();
    ips.reset([node(1), node(2)]);
    expect(ips.update('n3', node(3, { ip: 1 }))).toEqual({ added: [], removed: [] });
    expect(ips.update('n1', undefined)).toEqual({ added: [], removed: [] });
    expect(ips.update('n3', node(3))).toEqual({ added: ['10.0.0.3'], removed: ['10.0.0.1'] });
    expect(ips.all().sort()).toEqual(['10.0.0.2', '10.0.0.3']);
  });

  it('renders deltas as element commands, deletions first', () => {
    expect(masqElementOps(['10.0.0.3', 'fd00::3'], ['10.0.0.1'])).toBe(
      ['delete element inet skiff-masq nodes4 { 10.0.0.1 }', 'add element inet skiff-masq nodes4 { 10.0.0.3 }', 'add element inet skiff-masq nodes6 { fd00::3 }', ''].join('\n'),
    );
    expect(masqElementOps([], [])).toBe('');
  });
});
