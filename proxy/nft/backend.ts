// Where nft transactions go: the real `nft -f -` (through a Runner) or a fake that records the
// text for unit tests. Reading the table back (`nft -j list table`) only serves the periodic check.
import type { Runner } from '../exec.js';
import type { NftSession } from './session.js';

export interface NftBackend {
  apply(text: string): Promise<void>;
  /** The table as `nft -j` JSON, or undefined when it does not exist. */
  list(prefix: string): Promise<unknown>;
  /** Names of the table's chains ([] when it has none or does not exist); cheap, unlike list. */
  chains(prefix: string): Promise<string[]>;
  /** Deletes the table if present. */
  remove(prefix: string): Promise<void>;
  /** Releases a long-lived nft process, if any. */
  close?(): void;
}

/**
 * Larger transactions (full syncs, big bursts) go through one `nft -f -` run instead: nft parses
 * an interactive line ~6 times slower per element (8,000 endpoint elements: ~175 ms against
 * ~30 ms), which outweighs a process's fixed ~10-20 ms beyond a few hundred elements.
 */
const SESSION_LIMIT = 16 * 1024;

export class ExecNft implements NftBackend {
  /** With a session, small transactions skip nft's per-process cost (see session.ts). */
  constructor(
    private readonly run: Runner,
    private readonly session?: NftSession,
  ) {}
  async apply(text: string): Promise<void> {
    if (!text) return;
    if (this.session && text.length <= SESSION_LIMIT) return this.session.run(text.trimEnd().split('\n').join('; '));
    await this.run('nft', ['-f', '-'], text);
  }
  close(): void {
    this.session?.close();
  }
  async list(prefix: string): Promise<unknown> {
    try {
      return JSON.parse(await this.run('nft', ['-j', 'list', 'table', ...prefix.split(' ')]));
    } catch (e) {
      if (/No such file or directory/.test(String((e as Error).message))) return undefined;
      throw e;
    }
  }
  async chains(prefix: string): Promise<string[]> {
    // `list chains <family>` reads no set elements: milliseconds where `list table` takes seconds.
    const [family, table] = prefix.split(' ') as [string, string];
    const out = JSON.parse(await this.run('nft', ['-j', 'list', 'chains', family])) as { nftables?: { chain?: { table: string; name: string } }[] };
    return (out.nftables ?? []).flatMap((i) => (i.chain && i.chain.table === table ? [i.chain.name] : []));
  }
  async remove(prefix: string): Promise<void> {
    // "add" first so the delete cannot fail on a missing table.
    await this.run('nft', ['-f', '-'], `add table ${prefix}\ndelete table ${prefix}\n`);
  }
}

/** Records every transaction; `fail` makes the next apply throw, `listed` is what list returns. */
export class FakeNft implements NftBackend {
  readonly transactions: string[] = [];
  readonly removed: string[] = [];
  fail: Error | undefined;
  /** Makes the first apply whose text matches throw (once). */
  failOn: RegExp | undefined;
  listed = new Map<string, unknown>();
  /** What chains() returns per table prefix (default: no table). */
  listedChains = new Map<string, string[]>();

  async apply(text: string): Promise<void> {
    if (this.fail) {
      const e = this.fail;
      this.fail = undefined;
      throw e;
    }
    if (this.failOn?.test(text)) {
      this.failOn = undefined;
      throw new Error('injected failure');
    }
    if (text) this.transactions.push(text);
  }
  async list(prefix: string): Promise<unknown> {
    return this.listed.get(prefix);
  }
  async chains(prefix: string): Promise<string[]> {
    return this.listedChains.get(prefix) ?? [];
  }
  async remove(prefix: string): Promise<void> {
    this.removed.push(prefix);
  }
  get last(): string | undefined {
    return this.transactions.at(-1);
  }
}
