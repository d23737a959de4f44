// nft transactions the way every skiff component loads them (proxy/, policy/): small ones through
// a long-lived `nft -i` (session.ts) when the caller has one, larger ones from a complete file
// (never a pipe a dying agent could cut short), and with a generation reader (generation.ts) each
// burst of writes is checked to be the only commit, so a periodic check may skip reading back.
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GenerationReader } from './generation.js';
import type { NftLauncher } from './launcher.js';
import type { NftSession } from './session.js';

export type NftRun = (cmd: string, args: readonly string[], input?: string) => Promise<string>;

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

/**
 * Larger transactions (full syncs, big bursts) go through one `nft -f` run instead: nft parses
 * an interactive line ~6 times slower per element (8,000 endpoint elements: ~175 ms against
 * ~30 ms), which outweighs a process's fixed ~10-20 ms beyond a few hundred elements.
 */
const SESSION_LIMIT = 16 * 1024;

export interface NftRunnerOptions {
  /** Small transactions skip nft's per-process cost (session.ts). */
  readonly session?: NftSession | undefined;
  /**
   * Each write checks that it was the only commit, so an idle node's periodic check need not read
   * the table back (generation.ts; only where nft runs in this process's namespace).
   */
  readonly generation?: GenerationReader | undefined;
  /** Where transaction files are written; the system's temporary directory by default. */
  readonly txnDir?: string;
  /** Big transactions are not forked from the agent's heap (launcher.ts; this process's namespace too). */
  readonly launcher?: NftLauncher | undefined;
}

interface Burst {
  start?: number;
  writes: number;
  failed: boolean;
  replacing: boolean;
}

export class NftRunner {
  /** The generation at which the kernel held exactly what skiff wrote; undefined: unknown. */
  private matched: number | undefined;
  private applying = 0;
  private burst: Burst = { writes: 0, failed: false, replacing: false };
  /** A full sync holds its burst open between writes (hold/release). */
  private held = false;
  private seq = 0;

  private readonly session: NftSession | undefined;
  private readonly gen: GenerationReader | undefined;
  private readonly txnDir: string;
  private readonly launcher: NftLauncher | undefined;

  constructor(
    protected readonly run: NftRun,
    o: NftRunnerOptions = {},
  ) {
    this.session = o.session;
    this.gen = o.generation;
    this.txnDir = o.txnDir ?? tmpdir();
    this.launcher = o.launcher;
    removeOrphanedTransactions(this.txnDir);
  }

  async apply(text: string): Promise<void> {
    if (!text) return;
    await this.transaction(() => (this.session && text.length <= SESSION_LIMIT ? this.session.run(text.trimEnd().split('\n').join('; ')) : this.applyFile(text)));
  }

  /**
   * One transaction committed by `commit` (an `nft` run, or a netlink batch written by other
   * means), counted in the burst like the text ones.
   */
  async transaction(commit: () => Promise<unknown>): Promise<void> {
    // Writes that overlap (a staged full sync loads in parallel) form one burst; each write is one
    // transaction (an `nft -f` run, or one `nft -i` line), so a burst of n writes moves the
    // generation by exactly n from the one skiff last verified unless someone else committed
    // meanwhile. No read before the write: nft must start within this call (the staged sync's
    // loads overlap its render, which holds the event loop).
    if (this.applying++ === 0 && !this.held) this.burst = { start: this.matched, writes: 0, failed: false, replacing: false };
    const burst = this.burst;
    try {
      await commit();
    } catch (e) {
      burst.failed = true;
      throw e;
    } finally {
      burst.writes++;
      if (--this.applying === 0 && !this.held) await this.settle(burst);
    }
  }

  /**
   * A full sync's writes form one burst until release(), also where the render leaves gaps between
   * them. `replacing`: they define skiff's tables whole (agent start, after a failure or drift), so
   * the burst counts from the generation read now instead of from the last verified one, and an
   * idle node's first check after a start need not read the table back either.
   */
  async hold(replacing: boolean): Promise<void> {
    if (!this.gen || this.held || this.applying > 0) return;
    const start = replacing ? await this.gen() : this.matched;
    if (this.applying > 0) return;
    this.held = true;
    this.burst = { start, writes: 0, failed: false, replacing };
  }

  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    if (this.applying === 0) await this.settle(this.burst);
  }

  /**
   * Not through a pipe: nft commits whatever arrived before EOF, so an agent killed while writing
   * (SIGKILL during a full sync) would leave a line-aligned prefix committed, which for the
   * one-transaction replace is a deleted table and half of the new one. A file is complete before
   * nft starts, and nft then applies all of it or nothing. Written synchronously so nft is spawned
   * within this call, as the staged full sync expects (its loads overlap the render).
   */
  private async applyFile(text: string): Promise<void> {
    const file = join(this.txnDir, `${TXN_PREFIX}${process.pid}-${this.seq++}.nft`);
    writeFileSync(file, text, { mode: 0o600 });
    try {
      // The launcher's line protocol cannot carry whitespace (a TMPDIR with a space): spawn then.
      if (this.launcher && !/\s/.test(file)) await this.launcher.run(file);
      else await this.run('nft', ['-f', file]);
    } finally {
      // unlink, not rm: rm goes through its recursive machinery (lstat first, then unlink).
      await Promise.all([file, `${file}.out`].map((f) => unlink(f).catch(() => undefined)));
    }
  }

  private async settle(b: Burst): Promise<void> {
    if (!this.gen) return;
    const after = await this.gen();
    const ours = !b.failed && b.start !== undefined && (b.replacing ? b.writes > 0 : this.matched === b.start) && after === b.start + b.writes && this.applying === 0 && !this.held;
    this.matched = ours ? after : undefined;
  }
  /**
   * Names of the table's chains ("family table"; [] when it has none or does not exist).
   * `list chains <family>` reads no set elements: milliseconds where `list table` (or, with nft
   * 1.0.6, even `list tables`) reads every element and takes seconds at 10,000 Services.
   */
  async chains(prefix: string): Promise<string[]> {
    const [family, table] = prefix.split(' ') as [string, string];
    const out = JSON.parse(await this.run('nft', ['-j', 'list', 'chains', family])) as { nftables?: { chain?: { table: string; name: string } }[] };
    return (out.nftables ?? []).flatMap((i) => (i.chain && i.chain.table === table ? [i.chain.name] : []));
  }
  async generation(): Promise<number | undefined> {
    return this.gen?.();
  }
  async unchanged(): Promise<boolean> {
    if (!this.gen || this.matched === undefined) return false;
    return (await this.gen()) === this.matched;
  }
  verified(generation: number): void {
    this.matched = generation;
  }
  close(): void {
    this.session?.close();
    this.launcher?.close();
  }
}
