// The iptables fallback: one iptables-restore --noflush per family and sync (atomic per table).
// A full sync reads what SKIFF-* chains exist, rewrites all of them, deletes the others and makes
// sure the jumps from the built-in chains exist; a partial sync rewrites only the chains that
// differ from what it last wrote (restoreDiff), without reading anything back. The legacy or nft
// flavour of the tools is the one the host uses (mode.ts), detected at the first sync unless
// configured.
import type { Dataplane, FullSyncHooks, ServiceChange } from '../dataplane.js';
import type { Runner } from '../exec.js';
import type { Family, NodeContext, ServicePort } from '../model.js';
import type { GenerationReader } from '../../common/nft/generation.js';
import { FULL_VERIFY_EVERY_MS } from '../nft/dataplane.js';
import { detectMode, IPTABLES_MODES, toolsOf, type IptablesMode, type IptablesTools } from './mode.js';
import { JUMPS, renderIptables, restoreDiff, restoreText, type RestoreTables } from './render.js';

/** SKIFF-* chains and their rule counts per table, from iptables-save output. */
export function parseSave(text: string): { nat: Map<string, number>; filter: Map<string, number> } {
  const out = { nat: new Map<string, number>(), filter: new Map<string, number>() };
  let table: 'nat' | 'filter' | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) table = line === '*nat' ? 'nat' : line === '*filter' ? 'filter' : undefined;
    if (!table) continue;
    let m = /^:(SKIFF-\S+)/.exec(line);
    if (m) out[table].set(m[1]!, out[table].get(m[1]!) ?? 0);
    m = /^-A (SKIFF-\S+) /.exec(line);
    if (m) out[table].set(m[1]!, (out[table].get(m[1]!) ?? 0) + 1);
  }
  return out;
}

export class IptablesDataplane implements Dataplane {
  readonly name = 'iptables';
  private services = new Map<string, readonly ServicePort[]>();
  private written = new Map<Family, RestoreTables>();
  private mode: Promise<IptablesMode> | undefined;
  /**
   * With iptables-nft: the ruleset generation when the kernel last held exactly what was written
   * (after our own commits, or before a clean check), so a check finds "nothing changed" in one
   * netlink round trip instead of an iptables-save of the whole ruleset. Undefined: list.
   */
  private knownGen: number | undefined;
  private lastListed = -Infinity;
  /** Commits of our own in the write under way (each restore, each inserted jump). */
  private commits = 0;
  private readonly generation: GenerationReader | undefined;
  private readonly now: () => number;

  constructor(
    private readonly run: Runner,
    readonly families: readonly Family[],
    mode: IptablesMode | 'auto' = 'auto',
    o: { generation?: GenerationReader; now?: () => number } = {},
  ) {
    if (mode !== 'auto') this.mode = Promise.resolve(mode);
    this.generation = o.generation;
    this.now = o.now ?? Date.now;
  }

  /** The generation now, where it tells anything (iptables-nft and a reader), else undefined. */
  private async nftGeneration(): Promise<number | undefined> {
    if (!this.generation || (await this.modeInUse()) !== 'nft') return undefined;
    return this.generation();
  }

  /** The mode in use: configured, or detected once (a failed detection is retried next time). */
  modeInUse(): Promise<IptablesMode> {
    this.mode ??= detectMode(this.run, this.families).catch((e: Error) => {
      this.mode = undefined;
      throw e;
    });
    return this.mode;
  }

  private async tools(f: Family): Promise<IptablesTools> {
    return toolsOf(await this.modeInUse(), f);
  }

  async full(services: ReadonlyMap<string, readonly ServicePort[]>, ctx: NodeContext, hooks: FullSyncHooks = {}): Promise<void> {
    this.services = new Map(services);
    // Drift repair and retries land here: trust nothing that was written before.
    this.written.clear();
    hooks.whileApplying?.();
    await this.write(ctx);
    // It read the tables and replaced skiff's chains: as good as a listing.
    if (this.knownGen !== undefined) this.lastListed = this.now();
  }

  async partial(changes: readonly ServiceChange[], ctx: NodeContext): Promise<void> {
    for (const c of changes) {
      if (c.ports.length) this.services.set(c.key, c.ports);
      else this.services.delete(c.key);
    }
    await this.write(ctx);
  }

  private async write(ctx: NodeContext): Promise<void> {
    const before = await this.nftGeneration();
    this.knownGen = undefined;
    this.commits = 0;
    await this.writeFamilies(ctx);
    const after = before === undefined ? undefined : await this.nftGeneration();
    // Only our commits in between: the kernel holds what was written. Anything else: the next check lists.
    if (before !== undefined && after === before + this.commits) this.knownGen = after;
  }

  private async writeFamilies(ctx: NodeContext): Promise<void> {
    for (const f of this.families) {
      const t = await this.tools(f);
      const tables = renderIptables(f, [...this.services.values()].flat(), ctx);
      const prev = this.written.get(f);
      if (prev) {
        // Forgotten first: if the restore fails, the next sync is a full one.
        this.written.delete(f);
        const text = restoreDiff(prev, tables);
        if (text) {
          await this.run(t.restore, ['-w', '--noflush'], text);
          this.commits++;
        }
        this.written.set(f, tables);
        continue;
      }
      const existing = parseSave(await this.run(t.save, []));
      const stale = {
        nat: [...existing.nat.keys()].filter((c) => !tables.nat.has(c)),
        filter: [...existing.filter.keys()].filter((c) => !tables.filter.has(c)),
      };
      this.written.delete(f);
      // -w: legacy iptables takes the xtables lock, which kubelet and others hold at times.
      await this.run(t.restore, ['-w', '--noflush'], restoreText(tables, stale));
      this.commits++;
      this.written.set(f, tables);
      for (const j of JUMPS) {
        const args = ['-t', j.table, '-C', j.chain, ...j.rule.split(' ')];
        try {
          await this.run(t.cmd, ['-w', ...args]);
        } catch {
          await this.run(t.cmd, ['-w', '-t', j.table, '-I', j.chain, ...j.rule.split(' ')]);
          this.commits++;
        }
      }
    }
  }

  /**
   * What differs from what was written. With iptables-nft, nothing is read while the generation
   * shows only our own commits since the kernel was last seen to hold it, except once an hour
   * (FULL_VERIFY_EVERY_MS, as the nftables backend). With legacy iptables there is no generation:
   * every check reads the tables (iptables-save), a cost that grows with the Services.
   */
  async verify(): Promise<string[]> {
    const now = this.now();
    if (this.knownGen !== undefined && now - this.lastListed < FULL_VERIFY_EVERY_MS && (await this.nftGeneration()) === this.knownGen) return [];
    const before = await this.nftGeneration();
    const out = await this.listAndCompare();
    if (out.length === 0 && before !== undefined) {
      this.knownGen = before;
      this.lastListed = now;
    } else this.knownGen = undefined;
    return out;
  }

  private async listAndCompare(): Promise<string[]> {
    const out: string[] = [];
    for (const f of this.families) {
      const want = this.written.get(f);
      if (!want) continue;
      const t = await this.tools(f);
      const got = parseSave(await this.run(t.save, []));
      for (const table of ['nat', 'filter'] as const) {
        for (const [name, rules] of want[table]) {
          const n = got[table].get(name);
          if (n !== rules.length) out.push(`${t.cmd} ${table} ${name}: ${n ?? 'missing'} rules, want ${rules.length}`);
        }
        for (const name of got[table].keys()) if (!want[table].has(name)) out.push(`${t.cmd} ${table}: unexpected chain ${name}`);
      }
      for (const j of JUMPS) {
        try {
          await this.run(t.cmd, ['-w', '-t', j.table, '-C', j.chain, ...j.rule.split(' ')]);
        } catch {
          out.push(`${t.cmd} ${j.table} ${j.chain}: jump "${j.rule}" missing`);
        }
      }
    }
    return out;
  }

  /** Removes skiff's chains and jumps from both modes and both families, whichever it used. */
  async cleanup(): Promise<void> {
    for (const mode of IPTABLES_MODES) for (const f of [4, 6] as const) await this.cleanupOne(toolsOf(mode, f));
    this.written.clear();
    this.services.clear();
  }

  private async cleanupOne(t: IptablesTools): Promise<void> {
    let existing: ReturnType<typeof parseSave>;
    try {
      existing = parseSave(await this.run(t.save, []));
    } catch {
      return; // no such tool or no tables: nothing of ours can be there
    }
    for (const j of JUMPS) {
      for (let i = 0; i < 10; i++) {
        try {
          await this.run(t.cmd, ['-w', '-t', j.table, '-D', j.chain, ...j.rule.split(' ')]);
        } catch {
          break;
        }
      }
    }
    if (existing.nat.size + existing.filter.size > 0) {
      const none = { nat: new Map<string, string[]>(), filter: new Map<string, string[]>() };
      await this.run(t.restore, ['-w', '--noflush'], restoreText(none, { nat: [...existing.nat.keys()], filter: [...existing.filter.keys()] }));
    }
  }
}
