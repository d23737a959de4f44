// Where nft transactions go: the real `nft -f -` (through a Runner) or a fake that records the
// text for unit tests. Reading the table back (`nft -j list table`) only serves the periodic check.
import { NftRunner, type NftRun, type NftRunnerOptions } from '../../common/nft/runner.js';
import type { ShapeReader, TableShape } from '../../common/nft/generation.js';
import type { BatchBuilder, NfTablesBatches } from '../../common/nft/batch.js';

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
  /**
   * True when nothing but skiff's own writes (each checked to be the only commit) changed the
   * ruleset since it last matched what was written; a check may then skip reading the table.
   * False when unknown (no generation to read, a failed or overlapping write, someone else's commit).
   */
  unchanged?(): Promise<boolean>;
  /** Records that the kernel matched what was written at `generation` (read before the listing). */
  verified?(generation: number): void;
  /** The current generation, if the backend can read it. */
  generation?(): Promise<number | undefined>;
  /** The table's chains, rule counts and sets without its elements (generation.ts), if it can be read cheaply. */
  shape?(prefix: string): Promise<TableShape | undefined>;
  /**
   * One transaction of nf_tables messages written over netlink (common/nft/batch.ts), counted
   * like the text ones; only where the backend has a socket in the table's namespace.
   */
  commit?(build: BatchBuilder): Promise<void>;
  /** Counts the writes until release() as one burst (a full sync); see common/nft/runner.ts. */
  hold?(replacing: boolean): Promise<void>;
  release?(): Promise<void>;
}

export interface ExecNftOptions extends NftRunnerOptions {
  /** Reads a table's structure for the periodic check (common/nft/generation.ts; this process's namespace only). */
  readonly shape?: ShapeReader | undefined;
  /** A netlink socket in the table's namespace: staged and element-only writes (nft/elements.ts). */
  readonly batches?: NfTablesBatches | undefined;
}

/** The proxy's backend: common/nft/runner.ts's transactions, and reading its tables back. */
export class ExecNft extends NftRunner implements NftBackend {
  readonly shape?: ShapeReader;
  readonly commit?: (build: BatchBuilder) => Promise<void>;
  private readonly batches: NfTablesBatches | undefined;
  constructor(run: NftRun, o: ExecNftOptions = {}) {
    super(run, o);
    const { shape, batches } = o;
    this.batches = batches;
    if (shape) this.shape = shape;
    if (batches) this.commit = (build) => this.transaction(() => batches.commit(build));
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
  override close(): void {
    super.close();
    this.batches?.close();
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
