// The desired VXLAN entries and node addresses kept up to date one Node at a time. At 5000 nodes
// recomputing every peer on each Node event cost more than the kernel work for the one peer that
// changed; here an event touches only that node's entries and reports the keys it touched, which
// the mirror then diffs against what it programmed (kube-proxy's change tracker, per entry).
// Two nodes claiming the same key (a copied MAC, an overlapping podCIDR) is a misconfiguration
// whose outcome desiredPeers defines by store order; the index does not try to reproduce that and
// asks for a full recompute instead.
import { isIP } from 'node:net';
import type { NodeInfo } from '../../common/types.js';
import type { DirectRouting } from './direct.js';
import { desiredPeers, nodeIPv4, nodePeerEntries, type NodePeerEntries, type PeerKeys, type PeerState } from './peers.js';

type Kind = 'routes' | 'neighbours' | 'fdb';
const KINDS: readonly Kind[] = ['routes', 'neighbours', 'fdb'];

export class PeerIndex {
  private byNode = new Map<string, NodePeerEntries>();
  private claims: Record<Kind, Map<string, number>> = { routes: new Map(), neighbours: new Map(), fdb: new Map() };
  private want: { routes: Map<string, string>; neighbours: Map<string, string>; fdb: Map<string, string> } = { routes: new Map(), neighbours: new Map(), fdb: new Map() };
  /** Set by reset(): this node's underlay changes only through a full recompute. */
  private direct: DirectRouting | undefined;

  constructor(private readonly self: string) {}

  /** The desired state; the same object across updates (read it, do not keep a copy of it). */
  get desired(): PeerState {
    return this.want;
  }

  /** Peer nodes this node has a route to, over VXLAN or direct. */
  get peers(): number {
    let n = 0;
    for (const e of this.byNode.values()) if (e.routes.length > 0) n++;
    return n;
  }

  /** Full recompute from every node; `direct` is this node's underlay when direct routing is on. */
  reset(nodes: Iterable<NodeInfo>, direct?: DirectRouting): void {
    const list = [...nodes];
    this.direct = direct;
    const d = desiredPeers(this.self, list, direct);
    this.want = { routes: new Map(d.routes), neighbours: new Map(d.neighbours), fdb: new Map(d.fdb) };
    this.byNode = new Map();
    this.claims = { routes: new Map(), neighbours: new Map(), fdb: new Map() };
    for (const n of list) {
      const e = nodePeerEntries(this.self, n, direct);
      this.byNode.set(n.name, e);
      for (const k of KINDS) for (const [key] of e[k]) this.claims[k].set(key, (this.claims[k].get(key) ?? 0) + 1);
    }
  }

  /**
   * One node added, changed (node) or deleted (undefined). Returns the keys whose desired value
   * may have changed, or undefined when a key is shared with another node: then call reset().
   */
  update(name: string, node: NodeInfo | undefined): PeerKeys | undefined {
    const before = this.byNode.get(name);
    const after = node ? nodePeerEntries(this.self, node, this.direct) : undefined;
    const keys = { routes: new Set<string>(), neighbours: new Set<string>(), fdb: new Set<string>() };
    let shared = false;
    for (const k of KINDS) {
      for (const [key] of before?.[k] ?? []) {
        keys[k].add(key);
        const c = this.claims[k].get(key) ?? 0;
        if (c > 1) shared = true;
        if (c <= 1) {
          this.claims[k].delete(key);
          this.want[k].delete(key);
        } else this.claims[k].set(key, c - 1);
      }
      for (const [key, value] of after?.[k] ?? []) {
        keys[k].add(key);
        const c = (this.claims[k].get(key) ?? 0) + 1;
        if (c > 1) shared = true;
        this.claims[k].set(key, c);
        this.want[k].set(key, value);
      }
    }
    if (after) this.byNode.set(name, after);
    else this.byNode.delete(name);
    return shared ? undefined : keys;
  }
}

/** The addresses masquerade must leave alone, counted per node so one node's change is a delta. */
export class NodeIPIndex {
  private byNode = new Map<string, readonly string[]>();
  private counts = new Map<string, number>();

  static addressesOf(n: NodeInfo): string[] {
    const ips = [nodeIPv4(n), ...n.addresses.filter((a) => a.type === 'InternalIP').map((a) => a.address)];
    return [...new Set(ips.filter((x): x is string => !!x && isIP(x) !== 0))];
  }

  all(): string[] {
    return [...this.counts.keys()];
  }

  reset(nodes: Iterable<NodeInfo>): void {
    this.byNode = new Map();
    this.counts = new Map();
    for (const n of nodes) this.update(n.name, n);
  }

  /** Addresses that appeared in or left the set because of this node. */
  update(name: string, node: NodeInfo | undefined): { added: string[]; removed: string[] } {
    const before = this.byNode.get(name) ?? [];
    const after = node ? NodeIPIndex.addressesOf(node) : [];
    const added: string[] = [];
    const removed: string[] = [];
    for (const ip of before) {
      const c = this.counts.get(ip)! - 1;
      if (c === 0) this.counts.delete(ip);
      else this.counts.set(ip, c);
    }
    for (const ip of after) this.counts.set(ip, (this.counts.get(ip) ?? 0) + 1);
    for (const ip of before) if (!this.counts.has(ip)) removed.push(ip);
    for (const ip of after) if (this.counts.get(ip) === 1 && !before.includes(ip)) added.push(ip);
    if (node) this.byNode.set(name, after);
    else this.byNode.delete(name);
    return { added, removed };
  }
}
