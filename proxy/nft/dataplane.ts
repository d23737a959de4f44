// The nftables backend: per IP family a table, a mirror and the fragments each Service port
// contributed. Both families go into one transaction so a sync is atomic across them. A full
// sync is staged when the kernel's table is known (staging.ts), else one big transaction.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { Family, NodeContext, ServicePort } from '../model.js';
import { boundsOfPorts, type Bounds } from '../bounds.js';
import { SlotAllocator, type Dataplane, type FullSyncHooks, type ServiceChange } from '../dataplane.js';
import type { NftBackend } from './backend.js';
import { Mirror, Txn, type ElementSink } from './mirror.js';
import { pickPoolSize, Renderer, SLOT_SHIFT, TABLE, words } from './render.js';
import { chunkText, LoadPool, namesOf, prepareText, StageWriter, switchText, type TableNames } from './staging.js';
import { chunkMessages, codecOf, setsOf, type ElementChunk, type ElementCodec } from './elements.js';
import type { TableState } from './state.js';
import { findDrift } from './verify.js';
import type { TableShape } from '../../common/nft/generation.js';

export interface NftDataplaneOptions {
  /** false: every full sync is one `delete table` + everything transaction. */
  readonly staging?: boolean;
  /** Elements per staged transaction (tests use small ones). */
  readonly stageChunk?: number;
  /** nft processes loading at once (default STAGE_PROCESSES). */
  readonly stageProcesses?: number;
  /** After someone else's commit, the elements are read back at most this often (FULL_VERIFY_EVERY_MS). */
  readonly fullVerifyEveryMs?: number;
  readonly now?: () => number;
  readonly log?: Logger;
}

interface FamilyState {
  readonly prefix: string;
  readonly mirror: Mirror;
  readonly slots: SlotAllocator;
  /**
   * ServicePort id -> the port whose fragment was last written. The fragment itself is rendered
   * again when a partial sync diffs it (rendering is pure): kept, the fragments were a quarter of
   * the agent's heap (~2 KB per port at 10 endpoints), and the proxier holds the ports anyway.
   */
  readonly ports: Map<string, ServicePort>;
  /** Ports whose fragment an earlier renderer made (the node context changed in a partial sync). */
  readonly renderedBy: Map<string, Renderer>;
  /** Service key -> ids of its ports in this family. */
  readonly owned: Map<string, string[]>;
  /** Reused while the node context stays the same: it caches the shared chains' rule text. */
  renderer?: Renderer;
  /** Suffix of the set names in the kernel; each full sync moves to the next. */
  gen: number;
  /** Pick chains exist for endpoint indexes below these (Renderer.picks). */
  picks: { plain: number; pairs: number };
  /** The kernel holds exactly the mirror's chains and sets (the last write succeeded, no drift seen). */
  trusted: boolean;
  /** Element layouts by set declaration (codecOfSet). */
  readonly codecs: Map<string, ElementCodec | undefined>;
}

/** How a full sync of one family starts: from a known table, from none, or the old way. */
type Start = { readonly kind: 'known'; readonly names: TableNames } | { readonly kind: 'fresh' } | { readonly kind: 'replace' };

/**
 * How often, at most, a check lists the whole table to compare every element, when commits of
 * others moved the ruleset generation. Between those it compares the table's shape (chains, rule
 * counts, sets; netlink dumps without elements): other writers commit often on a real node
 * (iptables-nft, the CNI's masquerade table every 5 minutes), and each listing costs seconds of
 * nft at 10,000 Services. An hour is kube-proxy's full resync period in nftables mode.
 */
export const FULL_VERIFY_EVERY_MS = 60 * 60_000;

/** Services rendered between two turns of the event loop during a staged full sync. */
const YIELD_EVERY = 100;

const NO_NAMES: TableNames = { chains: new Map(), sets: new Map() };

export class NftDataplane implements Dataplane {
  readonly name = 'nftables';
  private readonly fams = new Map<Family, FamilyState>();

  /** Full syncs that fell back from staging to one transaction (for tests and the log). */
  fallbacks = 0;
  /** Periodic checks answered by the ruleset generation alone (tests). */
  skippedVerifies = 0;
  /** Periodic checks answered by the tables' shape after someone else's commit (tests). */
  shapeVerifies = 0;
  private readonly now: () => number;
  /** When the elements were last compared with the kernel's (a listing or a full sync). */
  private lastListed: number;

  constructor(
    private readonly backend: NftBackend,
    readonly families: readonly Family[],
    private readonly opts: NftDataplaneOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.lastListed = this.now();
    for (const f of families) {
      const prefix = `${words(f).table} ${TABLE}`;
      this.fams.set(f, { prefix, mirror: new Mirror(prefix), slots: new SlotAllocator(2 ** (32 - SLOT_SHIFT)), ports: new Map(), renderedBy: new Map(), owned: new Map(), gen: 0, picks: { plain: 0, pairs: 0 }, trusted: false, codecs: new Map() });
    }
  }

  async full(services: ReadonlyMap<string, readonly ServicePort[]>, ctx: NodeContext, hooks: FullSyncHooks = {}): Promise<void> {
    const asked = [...this.fams.values()].map(async (st) => [st, await this.startOf(st)] as const);
    const b = hooks.bounds ? hooks.bounds() : boundsOfPorts(services);
    const starts = new Map<FamilyState, Start>(await Promise.all(asked));
    const staged = [...starts.values()].every((s) => s.kind !== 'replace');
    const applying = hooks.whileApplying ?? ((): void => undefined);
    // Every write of this sync counts as one burst; when no family starts from a known table, they
    // replace skiff's tables whole, and what the kernel holds afterwards is known from them alone.
    await this.backend.hold?.([...starts.values()].every((s) => s.kind !== 'known'));
    try {
      if (staged) await this.staged(services, ctx, b, starts, applying);
      else await this.replace(services, ctx, b, applying);
    } catch (e) {
      for (const st of this.fams.values()) st.trusted = false;
      throw e;
    } finally {
      await this.backend.release?.();
    }
    for (const st of this.fams.values()) st.trusted = true;
    this.lastListed = this.now();
  }

  /** Known table: what the mirror says. Unknown (agent start, a failure): a table without chains is inert, else replaced whole. */
  private async startOf(st: FamilyState): Promise<Start> {
    if (this.opts.staging === false) return { kind: 'replace' };
    if (st.trusted) return { kind: 'known', names: namesOf(st.mirror) };
    // Over netlink where it can (no nft process forked from a big heap), else `nft list chains`.
    const shape = await this.backend.shape?.(st.prefix);
    const chains = shape ? shape.chains.size : (await this.backend.chains(st.prefix).catch(() => ['?'])).length;
    return chains === 0 ? { kind: 'fresh' } : { kind: 'replace' };
  }

  /** The old way, and the fallback: one transaction that deletes the table and writes everything. */
  private async replace(services: ReadonlyMap<string, readonly ServicePort[]>, ctx: NodeContext, bounds: Bounds, applying: () => void): Promise<void> {
    for (const [family, st] of this.fams) await this.fill(st, this.begin(st, family, ctx, bounds), services);
    const applied = this.backend.apply([...this.fams.values()].map((st) => st.mirror.fullText()).join(''));
    applying();
    await applied;
  }

  private async staged(services: ReadonlyMap<string, readonly ServicePort[]>, ctx: NodeContext, bounds: Bounds, starts: ReadonlyMap<FamilyState, Start>, applying: () => void): Promise<void> {
    const apply = (text: string): Promise<void> => this.backend.apply(text);
    const sts = [...this.fams.values()];
    const renderers = [...this.fams].map(([family, st]) => this.begin(st, family, ctx, bounds));
    const fallback = async (e: Error): Promise<void> => {
      this.fallbacks++;
      this.opts.log?.warn({ err: e.message }, 'staged full sync failed; replacing the table in one transaction');
      await this.backend.apply(sts.map((st) => st.mirror.fullText()).join(''));
    };
    const t0 = performance.now();
    const ms = (): number => Math.round(performance.now() - t0);
    // The new sets exist before any element is sent (small: through the session if there is
    // one); the render does not wait for that round trip, only the loads do.
    let unprepared: Error | undefined;
    const prepared = apply(sts.map((st) => prepareText(st.prefix, st.mirror, starts.get(st)!.kind === 'fresh')).join('')).catch((e: Error) => void (unprepared = e));
    const commit = this.backend.commit;
    const load = async ({ st, chunk }: { st: FamilyState; chunk: ElementChunk }): Promise<void> => {
      await prepared;
      if (unprepared) throw unprepared;
      const codec = (set: string): ElementCodec | undefined => codecOfSet(st, set);
      if (commit && setsOf(chunk).every((set) => codec(set) !== undefined)) await commit((seq) => chunkMessages(st.prefix, chunk, codec, seq));
      else await apply(chunkText(st.prefix, chunk));
    };
    const pool = new LoadPool(load, this.opts.stageProcesses);
    const writers: StageWriter[] = [];
    for (const [i, st] of sts.entries()) {
      const w = new StageWriter(st.prefix, st.mirror, (chunk) => pool.submit({ st, chunk }), this.opts.stageChunk);
      // Yielding lets nft processes start and their stdin drain while the rest renders.
      await this.fill(st, renderers[i]!, services, w.add, true);
      w.finish();
      writers.push(w);
    }
    const timing: Record<string, number> = { renderedMs: ms() };
    applying();
    await prepared;
    if (unprepared) {
      await pool.done().catch(() => undefined);
      return fallback(unprepared);
    }
    try {
      await pool.done();
      timing.loadedMs = ms();
      const sw = sts.map((st, i) => {
        const s = starts.get(st)!;
        return switchText(st.prefix, s.kind === 'known' ? s.names : NO_NAMES, st.mirror, writers[i]!.fixups());
      });
      await apply(sw.join(''));
      this.opts.log?.debug({ ...timing, switchedMs: ms(), transactions: pool.count + 2 }, 'staged full sync');
    } catch (e) {
      await fallback(e as Error);
    }
  }

  /** Starts a family's next generation: empty mirror and fragments, the fixed part loaded. */
  private begin(st: FamilyState, family: Family, ctx: NodeContext, bounds: Bounds): Renderer {
    st.mirror.clear();
    st.ports.clear();
    st.renderedBy.clear();
    st.owned.clear();
    st.gen++;
    const r = (st.renderer = new Renderer(family, ctx, st.gen));
    st.mirror.load(r.base(r.expectedCounts(bounds[family])));
    st.picks = { plain: 0, pairs: 0 };
    return r;
  }

  /** Renders every Service port into the mirror; `onElement` sees the elements as they are added. */
  private async fill(st: FamilyState, r: Renderer, services: ReadonlyMap<string, readonly ServicePort[]>, onElement?: ElementSink, yielding = false): Promise<void> {
    let n = 0;
    for (const [key, ports] of services) {
      if (yielding && ++n % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
      const ids: string[] = [];
      for (const sp of ports) {
        if (sp.family !== r.family) continue;
        st.mirror.load(r.servicePort(sp, st.slots.get(sp.id)), onElement);
        st.ports.set(sp.id, sp);
        ids.push(sp.id);
      }
      if (ids.length) st.owned.set(key, ids);
    }
    // The ports started empty (begin), so they hold exactly the ports rendered now.
    for (const id of st.slots.ids()) if (!st.ports.has(id)) st.slots.release(id);
    st.slots.commit();
    for (const more of this.morePicks(st, r)) st.mirror.load(more, onElement);
  }

  /** The pick chains the rendered tails need beyond those the table has, and the tails reserved with them (Renderer.reservedTails). */
  private morePicks(st: FamilyState, r: Renderer): TableState[] {
    const out: TableState[] = [];
    for (const kind of ['plain', 'pairs'] as const) {
      const need = r.longest[kind] === 0 ? 0 : pickPoolSize(r.longest[kind]);
      if (need <= st.picks[kind]) continue;
      out.push(r.picks(st.picks[kind], need, kind === 'pairs'));
      if (kind === 'plain') out.push(r.reservedTails(st.picks[kind], need));
      st.picks[kind] = need;
    }
    return out;
  }

  async partial(changes: readonly ServiceChange[], ctx: NodeContext): Promise<void> {
    /** Each family's nft text, built only when it is the way the change goes. */
    const texts: (() => string)[] = [];
    /** Each family's element changes while every one is only that (then a netlink batch). */
    let elements: { st: FamilyState; chunk: ElementChunk }[] | undefined = this.backend.commit ? [] : undefined;
    for (const [family, st] of this.fams) {
      const txn = new Txn(st.prefix);
      const r = this.renderer(st, family, ctx);
      for (const ch of changes) {
        const before = st.owned.get(ch.key) ?? [];
        const after = ch.ports.filter((p) => p.family === family);
        const afterIds = new Set(after.map((p) => p.id));
        for (const id of before) {
          if (afterIds.has(id)) continue;
          st.mirror.replace(this.written(st, r, id), undefined, txn);
          st.ports.delete(id);
          st.renderedBy.delete(id);
          st.slots.release(id);
        }
        for (const sp of after) {
          const frag = r.servicePort(sp, st.slots.get(sp.id));
          st.mirror.replace(this.written(st, r, sp.id), frag, txn);
          st.ports.set(sp.id, sp);
          st.renderedBy.delete(sp.id);
        }
        if (after.length) st.owned.set(ch.key, after.map((p) => p.id));
        else st.owned.delete(ch.key);
      }
      st.slots.commit();
      for (const more of this.morePicks(st, r)) st.mirror.replace(undefined, more, txn);
      if (st.mirror.overfull().length === 0) {
        texts.push(() => txn.text());
        const chunk = elements && txn.elementChanges();
        if (chunk && setsOf(chunk).every((set) => codecOfSet(st, set) !== undefined)) elements!.push({ st, chunk });
        else elements = undefined;
      } else {
        // Grown past the fixed sizes of the last full sync: rewrite the table with growing sets.
        st.mirror.unsize();
        const text = st.mirror.fullText();
        texts.push(() => text);
        elements = undefined;
      }
    }
    try {
      // Element changes alone (most updates) skip nft and its cache refill, which grows with the
      // table: one netlink batch for both families, atomic like the text.
      if (elements && this.backend.commit) {
        const parts = elements;
        if (parts.some((p) => setsOf(p.chunk).length > 0)) await this.backend.commit((seq) => parts.flatMap((p) => chunkMessages(p.st.prefix, p.chunk, (set) => codecOfSet(p.st, set), seq)));
      } else await this.backend.apply(texts.map((t) => t()).join(''));
    } catch (e) {
      for (const st of this.fams.values()) st.trusted = false;
      throw e;
    }
  }

  private renderer(st: FamilyState, family: Family, ctx: NodeContext): Renderer {
    const prev = st.renderer;
    if (prev && isDeepStrictEqual(prev.ctx, ctx)) return prev;
    // The fragments written so far must render again exactly as they were written.
    if (prev) for (const id of st.ports.keys()) if (!st.renderedBy.has(id)) st.renderedBy.set(id, prev);
    return (st.renderer = new Renderer(family, ctx, st.gen));
  }

  /** The fragment last written for a port (none: undefined), rendered again as it was then. */
  private written(st: FamilyState, current: Renderer, id: string): TableState | undefined {
    const sp = st.ports.get(id);
    if (!sp) return undefined;
    return (st.renderedBy.get(id) ?? current).servicePort(sp, st.slots.get(id));
  }

  async verify(): Promise<string[]> {
    const out: string[] = [];
    // Nothing committed in the namespace since the kernel last matched the mirror: no read-back.
    if (this.trusted() && (await this.backend.unchanged?.())) {
      this.skippedVerifies++;
      return out;
    }
    const generation = await this.backend.generation?.();
    // Someone else committed: while the elements were compared recently enough, skiff's tables
    // having exactly the chains, rule counts and sets written says the commit was not in them.
    if (generation !== undefined && this.trusted() && this.now() - this.lastListed < (this.opts.fullVerifyEveryMs ?? FULL_VERIFY_EVERY_MS) && (await this.sameShapes())) {
      this.shapeVerifies++;
      this.backend.verified?.(generation);
      return out;
    }
    for (const st of this.fams.values()) {
      const drift = findDrift(await this.backend.list(st.prefix), st.mirror);
      // Someone else changed the table: the repair must not trust the mirror's idea of it.
      if (drift.length) st.trusted = false;
      for (const d of drift) out.push(`${st.prefix}: ${d}`);
    }
    if (out.length === 0 && generation !== undefined) this.backend.verified?.(generation);
    if (out.length === 0) this.lastListed = this.now();
    return out;
  }

  private async sameShapes(): Promise<boolean> {
    if (!this.backend.shape) return false;
    for (const st of this.fams.values()) {
      const shape = await this.backend.shape(st.prefix);
      if (!shape || !sameShape(shape, st.mirror)) return false;
    }
    return true;
  }

  private trusted(): boolean {
    for (const st of this.fams.values()) if (!st.trusted) return false;
    return true;
  }

  async cleanup(): Promise<void> {
    for (const t of ['ip', 'ip6']) await this.backend.remove(`${t} ${TABLE}`);
    this.backend.close?.();
    for (const st of this.fams.values()) {
      st.mirror.clear();
      st.ports.clear();
      st.renderedBy.clear();
      st.owned.clear();
      st.slots.reset();
      st.trusted = false;
    }
  }
}

/** A set's element layout for netlink, from its declaration; undefined when nft must write it. */
function codecOfSet(st: FamilyState, set: string): ElementCodec | undefined {
  const s = st.mirror.sets.get(set);
  if (!s || s.dynamic) return undefined;
  let c = st.codecs.get(s.decl);
  if (c === undefined && !st.codecs.has(s.decl)) st.codecs.set(s.decl, (c = codecOf(s.decl)));
  return c;
}

/** The kernel's chains with their rule counts and its sets are exactly the mirror's. */
function sameShape(shape: TableShape, mirror: Mirror): boolean {
  if (shape.chains.size !== mirror.chains.size || shape.sets.size !== mirror.sets.size) return false;
  for (const [name, c] of mirror.chains) if (shape.chains.get(name) !== c.rules.length) return false;
  for (const name of mirror.sets.keys()) if (!shape.sets.has(name)) return false;
  return true;
}
