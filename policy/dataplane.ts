// The kernel side of policy, kept thin: the engine renders the whole table as data (render.ts);
// this sends the difference from what was last applied (element adds and deletes, rewritten
// chains) in one `nft -f` transaction, or the whole table when the last write failed or nothing
// has been written yet. It reads the drop counters back for /metrics. No policy logic here.
import { EMPTY_TABLE, FAMILY, TABLE, cleanupText, diffText, fullText, type CounterData, type PolicyTable } from './render.js';
import type { Runner } from './exec.js';

export interface ApplyResult {
  /** Something was written (false: the table already matched). */
  readonly changed: boolean;
  readonly full: boolean;
  /** The transaction written ('' when nothing changed). */
  readonly text: string;
}

export interface DeniedCount extends CounterData {
  readonly packets: number;
}

export class PolicyDataplane {
  /** What the kernel holds, when the last write succeeded; undefined means "unknown: write it all". */
  private applied: PolicyTable | undefined;

  constructor(private readonly run: Runner) {}

  /** The table last written, or the empty one. */
  get current(): PolicyTable {
    return this.applied ?? EMPTY_TABLE;
  }

  async apply(next: PolicyTable): Promise<ApplyResult> {
    const full = this.applied === undefined;
    const text = full ? fullText(next) : diffText(this.applied!, next);
    if (text === '') return { changed: false, full, text };
    try {
      await this.run('nft', ['-f', '-'], text);
    } catch (e) {
      // A transaction is all or nothing, but what is in the kernel may not be what we think.
      this.applied = undefined;
      throw e;
    }
    this.applied = next;
    return { changed: true, full, text };
  }

  /** The next apply rewrites the whole table (drift repair). */
  invalidate(): void {
    this.applied = undefined;
  }

  /** Denied packets per pod and direction, read from the table's named counters. */
  async denied(): Promise<DeniedCount[]> {
    const t = this.applied;
    if (!t || t.counters.size === 0) return [];
    const out = JSON.parse(await this.run('nft', ['-j', 'list', 'counters', 'table', FAMILY, TABLE])) as { nftables?: { counter?: { name: string; packets: number } }[] };
    const result: DeniedCount[] = [];
    for (const item of out.nftables ?? []) {
      const c = item.counter;
      const meta = c && t.counters.get(c.name);
      if (meta) result.push({ ...meta, packets: c.packets });
    }
    return result;
  }

  /**
   * Whether the kernel has the table (the periodic check): one of its chains is listed. Not `list
   * tables`: nft 1.0.6 fetches every set element of every table for it (~1 s of nft CPU every
   * period at 10,000 Services, for the proxy's elements), where `list chains` reads no elements.
   */
  async present(): Promise<boolean> {
    const out = await this.run('nft', ['-j', 'list', 'chains', FAMILY]);
    const chains = JSON.parse(out) as { nftables?: { chain?: { table: string } }[] };
    return (chains.nftables ?? []).some((i) => i.chain?.table === TABLE);
  }

  async cleanup(): Promise<void> {
    await this.run('nft', ['-f', '-'], cleanupText());
    this.applied = undefined;
  }
}
