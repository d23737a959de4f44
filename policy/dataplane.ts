// The kernel side of policy, kept thin: the engine renders the whole table as data (render.ts);
// this sends the difference from what was last applied (element adds and deletes, rewritten
// chains), or the whole table when the last write failed or nothing has been written yet. It
// reads the drop counters back for /metrics. No policy logic here.
//
// With an element writer (setelem.ts, netlink), a difference goes in up to three atomic steps
// (render.ts's diffPlan): new and rewritten chains, the element batch, nft for what is gone. The
// first step is encoded into the element batch (one transaction, no nft) when it has only the
// shapes nlcommands.ts knows (NetworkPolicy's; admin tiers and logging go through nft first).
// nft 1.0.x reads every set's elements before any element command, ~1 s at the kube-burner shape,
// and every chain and set before any rule (20-30 ms): a pod add or a policy edit of the common
// shapes then never starts nft at all.
// Without one (tests that enter a namespace through a command prefix) it is one `nft -f`.
// nft text is loaded as the proxy loads it (common/nft/runner.ts): from a complete file (a pipe
// cut by a dying agent would commit a prefix: for the full replace, a deleted table), small ones
// through a long-lived `nft -i` when given one, and with a generation reader every write, element
// batches included, is checked to be the only commit, so the periodic check can skip listing.
import { NftRunner } from '../common/nft/runner.js';
import type { GenerationReader } from '../common/nft/generation.js';
import type { NftSession } from '../common/nft/session.js';
import { keyShape, type ElementWriter, type KeyShape } from './setelem.js';
import { EMPTY_TABLE, FAMILY, TABLE, cleanupText, diffPlan, diffText, fullText, podChain, type CounterData, type PolicyTable } from './render.js';
import { mayDeny } from './conntrack.js';
import { parseCommands, type Command } from './nlcommands.js';
import type { Runner } from './exec.js';

export interface ApplyResult {
  /** Something was written (false: the table already matched). */
  readonly changed: boolean;
  readonly full: boolean;
  /** Whether the change can deny a connection that was allowed (strict mode then reads conntrack). */
  readonly mayDeny: boolean;
  /**
   * When only these addresses' own dispatch changed (pods that just became policied), strict mode
   * need look at no other flow; undefined: any flow.
   */
  readonly only?: readonly string[];
}

export interface DeniedCount extends CounterData {
  /** First packets of denied flows (the counter's packets: retransmits never reach it). */
  readonly connections: number;
}

export interface DataplaneOptions {
  /** Writes set elements without nft (setelem.ts); only where its socket reaches nft's namespace. */
  readonly elements?: ElementWriter;
  /** `nft -i` for small transactions (common/nft/session.ts). */
  readonly session?: NftSession;
  /** The namespace's ruleset generation (nft's, the same the element writer commits to). */
  readonly generation?: GenerationReader;
}

/** A first step beyond this (a large policy edit) stays with nft rather than grow one datagram without bound. */
const COMMAND_LINES = 4000;

function commandsFor(text: string): Command[] | undefined {
  const lines = text.trimEnd().split('\n');
  return lines.length <= COMMAND_LINES ? parseCommands(TABLE, lines) : undefined;
}

export class PolicyDataplane {
  /** What the kernel holds, when the last write succeeded; undefined means "unknown: write it all". */
  private applied: PolicyTable | undefined;
  /** Bumped by invalidate(): an apply running meanwhile must not record its table as what the kernel holds. */
  private invalidations = 0;

  /** Set declarations -> element shapes, for the element writer (few distinct declarations). */
  private readonly shapes = new Map<string, KeyShape | undefined>();

  private readonly elements: ElementWriter | undefined;
  private readonly nftRunner: NftRunner;

  constructor(
    private readonly run: Runner,
    o: DataplaneOptions = {},
  ) {
    this.elements = o.elements;
    this.nftRunner = new NftRunner(run, { session: o.session, generation: o.generation });
  }

  /** The table last written, or the empty one. */
  get current(): PolicyTable {
    return this.applied ?? EMPTY_TABLE;
  }

  async apply(next: PolicyTable): Promise<ApplyResult> {
    const prev = this.applied;
    // Until the write succeeds, what the kernel holds is unknown: a failure anywhere (even between
    // steps) leaves the next apply a full one.
    this.applied = undefined;
    // The drift check may find the table gone while this apply runs (its invalidate() would be
    // overwritten below, and the repair lost until the next period): then the next apply is full.
    const epoch = this.invalidations;
    const done = (): void => void (this.applied = epoch === this.invalidations ? next : undefined);
    if (prev === undefined) {
      await this.nft(fullText(next));
      done();
      return { changed: true, full: true, mayDeny: true };
    }
    if (!this.elements) {
      const text = diffText(prev, next);
      if (text !== '') await this.nft(text);
      done();
      return { changed: text !== '', full: false, mayDeny: text !== '' && mayDeny(text) };
    }
    const plan = diffPlan(prev, next);
    // The first step joins the element batch when every line has a netlink encoding (nlcommands.ts).
    const commands = plan.before ? commandsFor(plan.before) : [];
    if (plan.before && !commands) await this.nft(plan.before);
    const elements = this.elements;
    if (plan.elements.length > 0 || commands?.length) await this.nftRunner.transaction(() => elements.write(TABLE, plan.elements, (set) => this.shape(next, set), commands));
    if (plan.after) await this.nft(plan.after);
    done();
    const changed = plan.before !== '' || plan.elements.length > 0 || plan.after !== '';
    const onlyDispatch = plan.mayDeny && !/^(flush|delete) /m.test(plan.before + plan.after) && plan.elements.every((c) => c.verb === 'add');
    return { changed, full: false, mayDeny: plan.mayDeny, ...(onlyDispatch ? { only: plan.dispatched } : {}) };
  }

  /**
   * Runs what a pod ADD's write runs (plan, parse, encode; nothing is sent) on one pod of `t`,
   * a few times: the first ADD after a start otherwise pays for compiling that code (~5 ms of a
   * ~4 ms ADD). Quietly does nothing when `t` has no policied pod with an address.
   */
  warm(t: PolicyTable, rounds = 5): void {
    const elements = this.elements;
    if (!elements?.encode) return;
    for (const [name, meta] of t.counters) {
      const chain = podChain(meta.pod, meta.direction);
      const data = t.chains.get(chain);
      const map = [4, 6].map((f) => `${meta.direction}${f}`).find((m) => [...(t.elements.get(m)?.values() ?? [])].includes(`jump ${chain}`));
      if (!data || !map) continue;
      const dispatch = [...t.elements.get(map)!].filter(([, v]) => v === `jump ${chain}`);
      // The pod's own part of the table, over a table that already has its maps (as at an ADD).
      const sets = new Map([[map, t.sets.get(map)!]]);
      const prev: PolicyTable = { ...EMPTY_TABLE, sets };
      const next: PolicyTable = { ...EMPTY_TABLE, sets, chains: new Map([[chain, data]]), counters: new Map([[name, meta]]), elements: new Map([[map, new Map(dispatch)]]) };
      try {
        for (let i = 0; i < rounds; i++) {
          const plan = diffPlan(prev, next);
          const commands = plan.before ? commandsFor(plan.before) : [];
          if (commands) elements.encode(TABLE, plan.elements, (set) => this.shape(next, set), commands);
        }
      } catch {
        // Only a warm-up: the real write reports what it cannot encode.
      }
      return;
    }
  }

  private shape(t: PolicyTable, set: string): KeyShape | undefined {
    const decl = t.sets.get(set);
    if (decl === undefined) return undefined;
    let s = this.shapes.get(decl);
    if (s === undefined && !this.shapes.has(decl)) this.shapes.set(decl, (s = keyShape(decl)));
    return s;
  }

  private nft(text: string): Promise<void> {
    return this.nftRunner.apply(text);
  }

  /** The next apply rewrites the whole table (drift repair). */
  invalidate(): void {
    this.applied = undefined;
    this.invalidations++;
  }

  /** Denied connections per pod and direction, read from the table's named counters. */
  async denied(): Promise<DeniedCount[]> {
    const t = this.applied;
    if (!t || t.counters.size === 0) return [];
    const out = JSON.parse(await this.run('nft', ['-j', 'list', 'counters', 'table', FAMILY, TABLE])) as { nftables?: { counter?: { name: string; packets: number } }[] };
    const result: DeniedCount[] = [];
    for (const item of out.nftables ?? []) {
      const c = item.counter;
      const meta = c && t.counters.get(c.name);
      if (meta) result.push({ ...meta, connections: c.packets });
    }
    return result;
  }

  /**
   * Whether the kernel has the table at all (the periodic check): it has chains. When the
   * generation shows only our own commits since the table was last seen, nothing is asked.
   */
  async present(): Promise<boolean> {
    if (this.applied && (await this.nftRunner.unchanged())) return true;
    const gen = await this.nftRunner.generation();
    const there = (await this.nftRunner.chains(`${FAMILY} ${TABLE}`)).length > 0;
    if (there && gen !== undefined && this.applied) this.nftRunner.verified(gen);
    return there;
  }

  async cleanup(): Promise<void> {
    await this.nftRunner.apply(cleanupText());
    this.applied = undefined;
  }

  close(): void {
    this.elements?.close();
    this.nftRunner.close();
  }
}
