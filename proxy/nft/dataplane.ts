// The nftables backend: per IP family a table, a mirror and the fragments each Service port
// contributed. Both families go into one `nft -f -` run so a sync is atomic across them.
import { isDeepStrictEqual } from 'node:util';
import type { Family, NodeContext, ServicePort } from '../model.js';
import { SlotAllocator, type Dataplane, type ServiceChange } from '../dataplane.js';
import type { NftBackend } from './backend.js';
import { Mirror, Txn } from './mirror.js';
import { Renderer, SLOT_SHIFT, TABLE, words } from './render.js';
import type { TableState } from './state.js';
import { findDrift } from './verify.js';

interface FamilyState {
  readonly prefix: string;
  readonly mirror: Mirror;
  readonly slots: SlotAllocator;
  /** ServicePort id -> fragment last written. */
  readonly fragments: Map<string, TableState>;
  /** Service key -> ids of its ports in this family. */
  readonly owned: Map<string, string[]>;
  /** Reused while the node context stays the same: it caches the shared chains' rule text. */
  renderer?: Renderer;
}

export class NftDataplane implements Dataplane {
  readonly name = 'nftables';
  private readonly fams = new Map<Family, FamilyState>();

  constructor(
    private readonly backend: NftBackend,
    readonly families: readonly Family[],
  ) {
    for (const f of families) {
      const prefix = `${words(f).table} ${TABLE}`;
      this.fams.set(f, { prefix, mirror: new Mirror(prefix), slots: new SlotAllocator(2 ** (32 - SLOT_SHIFT)), fragments: new Map(), owned: new Map() });
    }
  }

  async full(services: ReadonlyMap<string, readonly ServicePort[]>, ctx: NodeContext): Promise<void> {
    const texts: string[] = [];
    for (const [family, st] of this.fams) {
      const seen = new Set<string>();
      st.mirror.clear();
      st.fragments.clear();
      st.owned.clear();
      const r = this.renderer(st, family, ctx);
      st.mirror.load(r.base());
      for (const [key, ports] of services) {
        const ids: string[] = [];
        for (const sp of ports) {
          if (sp.family !== family) continue;
          const frag = r.servicePort(sp, st.slots.get(sp.id));
          st.fragments.set(sp.id, frag);
          st.mirror.load(frag);
          ids.push(sp.id);
          seen.add(sp.id);
        }
        if (ids.length) st.owned.set(key, ids);
      }
      for (const id of st.slots.ids()) if (!seen.has(id)) st.slots.release(id);
      st.slots.commit();
      texts.push(st.mirror.fullText());
    }
    await this.backend.apply(texts.join(''));
  }

  async partial(changes: readonly ServiceChange[], ctx: NodeContext): Promise<void> {
    const texts: string[] = [];
    for (const [family, st] of this.fams) {
      const txn = new Txn(st.prefix);
      const r = this.renderer(st, family, ctx);
      for (const ch of changes) {
        const before = st.owned.get(ch.key) ?? [];
        const after = ch.ports.filter((p) => p.family === family);
        const afterIds = new Set(after.map((p) => p.id));
        for (const id of before) {
          if (afterIds.has(id)) continue;
          st.mirror.replace(st.fragments.get(id), undefined, txn);
          st.fragments.delete(id);
          st.slots.release(id);
        }
        for (const sp of after) {
          const frag = r.servicePort(sp, st.slots.get(sp.id));
          st.mirror.replace(st.fragments.get(sp.id), frag, txn);
          st.fragments.set(sp.id, frag);
        }
        if (after.length) st.owned.set(ch.key, after.map((p) => p.id));
        else st.owned.delete(ch.key);
      }
      st.slots.commit();
      texts.push(txn.text());
    }
    await this.backend.apply(texts.join(''));
  }

  private renderer(st: FamilyState, family: Family, ctx: NodeContext): Renderer {
    if (!st.renderer || !isDeepStrictEqual(st.renderer.ctx, ctx)) st.renderer = new Renderer(family, ctx);
    return st.renderer;
  }

  async verify(): Promise<string[]> {
    const out: string[] = [];
    for (const st of this.fams.values()) {
      for (const d of findDrift(await this.backend.list(st.prefix), st.mirror)) out.push(`${st.prefix}: ${d}`);
    }
    return out;
  }

  async cleanup(): Promise<void> {
    for (const t of ['ip', 'ip6']) await this.backend.remove(`${t} ${TABLE}`);
    this.backend.close?.();
    for (const st of this.fams.values()) {
      st.mirror.clear();
      st.fragments.clear();
      st.owned.clear();
      st.slots.reset();
    }
  }
}

