// Where nft transactions go: the real `nft -f -` (through a Runner) or a fake that records the
// text for unit tests. Reading the table back (`nft -j list table`) only serves the periodic check.
import type { Runner } from '../exec.js';

export interface NftBackend {
  apply(text: string): Promise<void>;
  /** The table as `nft -j` JSON, or undefined when it does not exist. */
  list(prefix: string): Promise<unknown>;
  /** Deletes the table if present. */
  remove(prefix: string): Promise<void>;
}

export class ExecNft implements NftBackend {
  constructor(private readonly run: Runner) {}
  async apply(text: string): Promise<void> {
    if (text) await this.run('nft', ['-f', '-'], text);
  }
  async list(prefix: string): Promise<unknown> {
    try {
      return JSON.parse(await this.run('nft', ['-j', 'list', 'table', ...prefix.split(' ')]));
    } catch (e) {
      if (/No such file or directory/.test(String((e as Error).message))) return undefined;
      throw e;
    }
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
  listed = new Map<string, unknown>();

  async apply(text: string): Promise<void> {
    if (this.fail) {
      const e = this.fail;
      this.fail = undefined;
      throw e;
    }
    if (text) this.transactions.push(text);
  }
  async list(prefix: string): Promise<unknown> {
    return this.listed.get(prefix);
  }
  async remove(prefix: string): Promise<void> {
    this.removed.push(prefix);
  }
  get last(): string | undefined {
    return this.transactions.at(-1);
  }
}
