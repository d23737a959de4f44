// Where nft transactions go: the real `nft -f -` (through a Runner) or a fake that records the
// text for unit tests. Reading the table back (`nft -j list table`) only serves the periodic check.
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Runner } from '../exec.js';
import type { NftSession } from './session.js';

const TXN_PREFIX = 'skiff-nft-';

/** Transaction files of agents that died before removing them (SIGKILL between write and rm). */
function removeOrphanedTransactions(dir: string): void {
  try {
    for (const f of readdirSync(dir)) {
      const pid = Number(f.slice(TXN_PREFIX.length).split('-')[0]);
      if (!f.startsWith(TXN_PREFIX) || !(pid > 0) || pid === process.pid) continue;
      try {
        process.kill(pid, 0);
      } catch {
        rmSync(join(dir, f), { force: true });
      }
    }
  } catch {
    /* best effort */
  }
}

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
  private seq = 0;
  /** With a session, small transactions skip nft's per-process cost (see session.ts). */
  constructor(
    private readonly run: Runner,
    private readonly session?: NftSession,
    private readonly txnDir = tmpdir(),
  ) {
    removeOrphanedTransactions(txnDir);
  }
  async apply(text: string): Promise<void> {
    if (!text) return;
    if (this.session && text.length <= SESSION_LIMIT) return this.session.run(text.trimEnd().split('\n').join('; '));
    // Not through a pipe: nft commits whatever arrived before EOF, so an agent killed while
    // writing (SIGKILL during a full sync) would leave a line-aligned prefix committed, which for
    // the one-transaction replace is a deleted table and half of the new one. A file is complete
    // before nft starts, and nft then applies all of it or nothing. Written synchronously so nft
    // is spawned within this call, as the staged full sync expects (its loads overlap the render).
    const file = join(this.txnDir, `${TXN_PREFIX}${process.pid}-${this.seq++}.nft`);
    writeFileSync(file, text, { mode: 0o600 });
    try {
      await this.run('nft', ['-f', file]);
    } finally {
      await rm(file, { force: true });
    }
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
