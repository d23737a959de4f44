// The staged full sync. One nft process parses ~130,000 elements in ~1 s of CPU, so a full sync
// that is one `nft -f` cannot get below that. Instead the element sets of a new generation
// (`service-ips-g7`, ...) are created beside the live ones, where no rule references them yet,
// and filled in chunks while the JS is still rendering (netlink batches in the agent, which skip
// nft's parsing altogether; nft processes where there is no socket); a small transaction then
// points the chains at them and deletes the previous generation. The packet path sees the old
// table or the new one, never a mix. Anything failing on the way falls back to the one big
// `delete table` + everything transaction (dataplane.ts).
import type { ElementChunk } from './elements.js';
import type { Mirror } from './mirror.js';
import { declOf, twiceKey } from './state.js';

/** Elements per staged transaction: big enough that nft's per-process cost stays small. */
export const STAGE_CHUNK = 16_000;
/**
 * Chunks in flight at once, beside the JS that renders. For nft processes on 2 shared cores 3 did
 * better than 2 (median ~1.35 s against ~1.9 s, 6 runs each, load 4-5): the loads then keep up
 * with the renderer, which is what the full sync waits for. Netlink batches are serialised by the
 * kernel anyway.
 */
export const STAGE_PROCESSES = 3;
/** nft parses a few hundred elements per command slightly faster than thousands (measured). */
const ELEMENTS_PER_COMMAND = 500;

/** What the kernel table holds before the switch: chain names (true for base chains) and sets. */
export interface TableNames {
  readonly chains: ReadonlyMap<string, boolean>;
  readonly sets: ReadonlyMap<string, 'set' | 'map'>;
}

export function namesOf(m: Mirror): TableNames {
  return {
    chains: new Map([...m.chains].map(([n, c]) => [n, c.hook !== undefined])),
    sets: new Map([...m.sets].map(([n, s]) => [n, s.kind])),
  };
}

/**
 * Runs transactions with at most `limit` at once. A transaction starts inside submit() when a
 * slot is free (nft is spawned, or the batch sent, synchronously, so it runs while the JS keeps
 * rendering); after
 * the first failure the rest are skipped and `done()` rejects with that failure.
 */
export class LoadPool<T> {
  private running = 0;
  private readonly waiting: T[] = [];
  private readonly jobs: Promise<void>[] = [];
  private error: Error | undefined;
  private idle: (() => void) | undefined;
  /** Transactions submitted. */
  count = 0;

  constructor(
    private readonly apply: (item: T) => Promise<void>,
    private readonly limit = STAGE_PROCESSES,
  ) {}

  submit(item: T): void {
    this.count++;
    if (this.running < this.limit) this.start(item);
    else this.waiting.push(item);
  }

  async done(): Promise<void> {
    while (this.running > 0 || this.waiting.length > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    await Promise.all(this.jobs);
    if (this.error) throw this.error;
  }

  private start(item: T): void {
    this.running++;
    const job = (this.error ? Promise.resolve() : this.apply(item))
      .catch((e: Error) => void (this.error ??= e))
      .finally(() => {
        this.running--;
        const next = this.waiting.shift();
        if (next !== undefined) this.start(next);
        else if (this.running === 0) this.idle?.();
      });
    this.jobs.push(job);
  }
}

/** The first chunk is smaller: the nft processes start while the JS has barely begun. */
const FIRST_CHUNK = 4_000;

/**
 * Cuts the elements of one family, as the mirror first sees them, into chunks of about
 * STAGE_CHUNK elements, each one transaction (over netlink, or `chunkText` for nft). A chunk
 * first creates (idempotent and inert) the chains its verdict elements jump to, so verdict maps
 * stream like the others. An element a later owner overrode is rewritten at the switch.
 */
export class StageWriter {
  /** Per set, keys and values alternating: the text is built once per chunk, not per element. */
  private items = new Map<string, (string | number)[]>();
  private count = 0;
  private limit: number;
  /** Chains the pending verdict elements jump to. */
  private targets = new Set<string>();
  /** Per set: a verdict map or not; asked once per set, not per element. */
  private readonly verdicts = new Map<string, boolean>();
  private readonly overridden = new Map<string, Set<string>>();
  /** Sets whose keys the chunks carry once (SetState.twice); asked once per set. */
  private twice = new Set<string>();
  /** The set of the previous element and its pending array (consecutive elements share a set). */
  private lastSet: string | undefined;
  private lastItems: (string | number)[] | undefined;
  private lastVerdict = false;

  constructor(
    private readonly prefix: string,
    private readonly mirror: Mirror,
    private readonly submit: (chunk: ElementChunk) => void,
    private readonly chunk = STAGE_CHUNK,
  ) {
    this.limit = Math.min(chunk, FIRST_CHUNK);
  }

  /** The mirror's ElementSink. */
  readonly add = (set: string, key: string | number, value: string, replaced: boolean): void => {
    if (replaced) {
      let s = this.overridden.get(set);
      if (!s) this.overridden.set(set, (s = new Set()));
      s.add(String(key));
      return;
    }
    const a = set === this.lastSet && this.lastItems ? this.lastItems : this.pending(set);
    a.push(key, value);
    if (this.lastVerdict) {
      // "goto lb-cluster-n3", "jump x", or a verdict without a chain ("drop").
      const space = value.indexOf(' ');
      if (space > 0) this.targets.add(value.slice(space + 1));
    }
    if (++this.count >= this.limit) this.flush();
  };

  /** Sends what is left. */
  finish(): void {
    this.flush();
  }

  /** Elements overridden after they were staged: deleted and added again in the switch. */
  fixups(): string[] {
    const out: string[] = [];
    for (const [set, keys] of this.overridden) {
      const m = this.mirror.elementsOf(set)!;
      const twice = this.mirror.isTwice(set);
      for (const key of keys) {
        const k = twice ? twiceKey(key) : key;
        out.push(`delete element ${this.prefix} ${set} { ${k} }`);
        const v = m.get(k)!;
        out.push(`add element ${this.prefix} ${set} { ${v === '' ? k : `${k} : ${v}`} }`);
      }
    }
    return out;
  }

  private pending(set: string): (string | number)[] {
    let a = this.items.get(set);
    if (!a) {
      this.items.set(set, (a = []));
      if (this.mirror.isTwice(set)) this.twice.add(set);
    }
    let v = this.verdicts.get(set);
    if (v === undefined) this.verdicts.set(set, (v = isVerdictMap(this.mirror, set)));
    this.lastSet = set;
    this.lastItems = a;
    this.lastVerdict = v;
    return a;
  }

  private flush(): void {
    if (this.count === 0) return;
    const chunk: ElementChunk = { targets: this.targets, items: this.items, twice: this.twice };
    this.items = new Map();
    this.twice = new Set();
    this.targets = new Set();
    this.lastSet = undefined;
    this.lastItems = undefined;
    this.count = 0;
    this.limit = this.chunk;
    this.submit(chunk);
  }
}

/** A chunk as nft text: its pieces are joined once, so no per-element string is built. */
export function chunkText(prefix: string, chunk: ElementChunk): string {
  const parts: (string | number)[] = [];
  for (const c of chunk.targets) parts.push(`add chain ${prefix} ${c}\n`);
  for (const [set, a] of chunk.items) {
    const open = `add element ${prefix} ${set} { `;
    const twice = chunk.twice?.has(set) === true;
    for (let i = 0; i < a.length; i += 2) {
      const n = (i >> 1) % ELEMENTS_PER_COMMAND;
      parts.push(n === 0 ? (i === 0 ? open : ` }\n${open}`) : ', ', a[i]!);
      if (twice) parts.push(' . ', a[i]!);
      if (a[i + 1] !== '') parts.push(' : ', a[i + 1]!);
    }
    parts.push(' }\n');
  }
  return parts.join('');
}

function isVerdictMap(m: Mirror, set: string): boolean {
  const s = m.sets.get(set);
  return s !== undefined && s.kind === 'map' && s.decl.includes(': verdict');
}

/**
 * Creates the new generation's (non-dynamic) sets with the fixed part's few elements; the mirror
 * holds only that part yet. `fresh`: the table holds no chains, so nothing is live; it is
 * recreated empty, which also drops whatever a crashed attempt left.
 */
export function prepareText(prefix: string, mirror: Mirror, fresh: boolean): string {
  const out = fresh ? [`add table ${prefix}`, `delete table ${prefix}`, `add table ${prefix} { comment "skiff service proxy" ; }`] : [`add table ${prefix}`];
  for (const [name, s] of mirror.sets) if (!s.dynamic) out.push(`add ${s.kind} ${prefix} ${name} { ${declOf(s)} }`);
  for (const set of mirror.elementSets()) {
    // Verdict elements go with the chunks, which first create the chains they jump to.
    if (isVerdictMap(mirror, set)) continue;
    const items = [...mirror.entriesOf(set)];
    if (items.length) out.push(`add element ${prefix} ${set} { ${items.map(([k, v]) => (v === '' ? k : `${k} : ${v}`)).join(', ')} }`);
  }
  return out.join('\n') + '\n';
}

/**
 * The switch: every existing chain is flushed (dropping all references to the old sets), the
 * old sets and unwanted chains deleted, missing base chains and the dynamic sets created, and
 * every chain's rules written against the new generation. One small atomic transaction.
 */
export function switchText(prefix: string, existing: TableNames, mirror: Mirror, fixups: readonly string[]): string {
  const out: string[] = [];
  for (const c of existing.chains.keys()) out.push(`flush chain ${prefix} ${c}`);
  // Sets go before chains: deleting a verdict map releases the chains its elements jump to.
  for (const [name, kind] of existing.sets) if (!mirror.sets.has(name)) out.push(`delete ${kind} ${prefix} ${name}`);
  for (const c of existing.chains.keys()) if (!mirror.chains.has(c)) out.push(`delete chain ${prefix} ${c}`);
  for (const [name, c] of mirror.chains) if (c.hook && !existing.chains.has(name)) out.push(`add chain ${prefix} ${name} { ${c.hook} }`);
  // Chains only rules jump to; the staged chunks created those verdict elements jump to (idempotent).
  for (const [name, c] of mirror.chains) if (!c.hook && !existing.chains.has(name)) out.push(`add chain ${prefix} ${name}`);
  for (const [name, s] of mirror.sets) if (s.dynamic) out.push(`add ${s.kind} ${prefix} ${name} { ${declOf(s)} }`);
  for (const [name, c] of mirror.chains) for (const r of c.rules) out.push(`add rule ${prefix} ${name} ${r}`);
  out.push(...fixups);
  return out.join('\n') + '\n';
}
