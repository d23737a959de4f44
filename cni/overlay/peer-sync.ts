// Everything the overlay derives from the Node list (VXLAN peer entries, masquerade's node-address
// sets), synced two ways. full(): recompute from every Node and diff against the mirror (or the
// kernel after invalidate()); used at start, for this node's own changes, after a failure and by
// the periodic resync. changed(): only the Nodes named in a watch batch, through the per-node
// indexes, so one Node event costs that peer's entries and not a walk of all of them.
import type { NodeInfo } from '../../common/types.js';
import { run } from '../plugin/exec.js';
import type { DirectRouting } from './direct.js';
import { masqElementOps, masqRuleset, type MasqInput } from './masq.js';
import { NodeIPIndex, PeerIndex } from './peer-index.js';
import type { PeerKeys } from './peers.js';
import { PeerMirror } from './vxlan.js';

export type MasqSettings = Omit<MasqInput, 'nodeIPs'>;

export class PeerSync {
  private readonly index: PeerIndex;
  private readonly ips = new NodeIPIndex();
  private readonly mirror = new PeerMirror();
  /** The table text last written whole; undefined once elements changed in place or on failure. */
  private lastMasq: string | undefined;
  /** The masq table is in the state the indexes describe, so element deltas apply to it. */
  private masqInPlace = false;
  private indexed = false;
  /** This node's underlay while direct routing is on; read by every full recompute. */
  private direct: DirectRouting | undefined;

  constructor(
    self: string,
    private readonly masq: MasqSettings,
    private readonly nft: (text: string) => Promise<unknown> = (text) => run(['nft', '-f', '-'], text),
  ) {
    this.index = new PeerIndex(self);
  }

  get peers(): number {
    return this.index.peers;
  }

  /** Forget what the kernel holds: the next full() reads it back and rewrites the masq table. */
  invalidate(): void {
    this.mirror.invalidate();
    this.lastMasq = undefined;
    this.masqInPlace = false;
  }

  /** Direct routing on (this node's underlay) or off; applies from the next full(). */
  setDirect(direct: DirectRouting | undefined): void {
    this.direct = direct;
  }

  /** Returns how many VXLAN entries changed. */
  async full(nodes: Iterable<NodeInfo>): Promise<number> {
    const list = [...nodes];
    this.indexed = false;
    this.index.reset(list, this.direct);
    this.ips.reset(list);
    this.indexed = true;
    const changed = await this.mirror.sync(this.index.desired);
    const text = masqRuleset({ ...this.masq, nodeIPs: this.ips.all() });
    if (text !== this.lastMasq) {
      this.lastMasq = undefined;
      this.masqInPlace = false;
      await this.nft(text);
      this.lastMasq = text;
    }
    this.masqInPlace = true;
    return changed;
  }

  /**
   * Applies the named Nodes' current state (undefined from `get` = deleted). Falls back to full()
   * when the indexes are not built yet or a key is shared between nodes.
   */
  async changed(names: Iterable<string>, get: (name: string) => NodeInfo | undefined, all: () => Iterable<NodeInfo>): Promise<number> {
    if (!this.indexed || !this.masqInPlace) return this.full(all());
    const keys = { routes: new Set<string>(), neighbours: new Set<string>(), fdb: new Set<string>() };
    const added: string[] = [];
    const removed: string[] = [];
    for (const name of names) {
      const n = get(name);
      const k = this.index.update(name, n);
      if (!k) return this.full(all());
      merge(keys, k);
      const d = this.ips.update(name, n);
      added.push(...d.added);
      removed.push(...d.removed);
    }
    // The index now runs ahead of the kernel: if anything below fails, only full() is exact.
    this.indexed = false;
    // Entries first: the new peer's route is what its pods are waiting for.
    const changed = await this.mirror.syncKeys(this.index.desired, keys);
    const ops = masqElementOps(added, removed);
    if (ops) {
      this.lastMasq = undefined;
      this.masqInPlace = false;
      await this.nft(ops);
      this.masqInPlace = true;
    }
    this.indexed = true;
    return changed;
  }
}

function merge(into: { routes: Set<string>; neighbours: Set<string>; fdb: Set<string> }, k: PeerKeys): void {
  for (const x of k.routes) into.routes.add(x);
  for (const x of k.neighbours) into.neighbours.add(x);
  for (const x of k.fdb) into.fdb.add(x);
}
