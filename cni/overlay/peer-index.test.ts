import { describe, expect, it } from 'vitest';
import type { NodeInfo } from '../../common/types.js';
import { masqElementOps } from './masq.js';
import { NodeIPIndex, PeerIndex } from './peer-index.js';
import { desiredPeers, peerOps, peerOpsFor, type PeerState } from './peers.js';

const node = (i: number, o: { mac?: number; ip?: number; cidr?: number; published?: boolean } = {}): NodeInfo => {
  const ip = `10.0.${(o.ip ?? i) >> 8}.${(o.ip ?? i) & 255}`;
  const c = o.cidr ?? i;
  const mac = `0a:00:00:00:${((o.mac ?? i) >> 8).toString(16).padStart(2, '0')}:${((o.mac ?? i) & 255).toString(16).padStart(2, '0')}`;
  return {
    name: `n${i}`,
    uid: `n${i}`,
    podCIDRs: [`10.${100 + (c >> 8)}.${c & 255}.0/24`],
    addresses: [{ type: 'InternalIP', address: ip }],
    labels: {},
    annotations: o.published === false ? {} : { 'skiff.io/vtep-mac': mac, 'skiff.io/public-ip': ip },
    ready: true,
  };
};

const sorted = (p: PeerState): unknown => ({ routes: [...p.routes].sort(), neighbours: [...p.neighbours].sort(), fdb: [...p.fdb].sort() });

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

  it('touches only the changed node: one key per kind for a new peer, none for this node', () => {
    const idx = new PeerIndex('n0');
    idx.reset([node(0), node(1)]);
    const k = idx.update('n2', node(2))!;
    expect([...k.routes, ...k.neighbours, ...k.fdb]).toEqual(['10.100.2.0/24', '10.100.2.0', '0a:00:00:00:00:02']);
    const self = idx.update('n0', node(0, { ip: 99 }))!;
    expect(self.routes.size + self.neighbours.size + self.fdb.size).toBe(0);
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
