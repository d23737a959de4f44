// Encoded answers for repeated queries, so the hot path skips decode, the plugin chain and encode.
// Only replies that are the same for every client qualify: positive single-record kubernetes
// answers, and forwarded answers with at most one address record (nothing for loadbalance to
// shuffle), never stale or autopath answers. A hit copies the bytes and patches in the query's id
// and question (same length: only the case can differ, and compressed answer names point into the
// question, so they follow the client's case too) and, for forwarded answers, TTLs counted down by
// age. Forwarded entries leave at 90% of their TTL so the cache plugin's prefetch still sees the
// tail. A change to a Service drops the entries built from it (and those that may depend on any
// part of the zone, such as reverse answers); the others stay: in a cluster whose endpoints move
// every few seconds, emptying it on every change sent every client's next query down the slow
// path (decode, plugin chain, encode, a new entry), a burst of garbage and latency each time.
//
// A lookup allocates nothing: the key is a 32-bit FNV-1a hash of the query bytes after the header
// (name case-folded) and the RD/CD bits, computed in the same pass that checks the query is plain,
// and a hit is confirmed by comparing those bytes with the entry's copy. Entries sit in a fixed
// array of buckets chained through `next`. The earlier string key (latin1 decode, concatenation,
// string hash, Map probe) and entries of differing shapes (object spread) showed in `perf` as
// string hashing, Map probes and megamorphic property-load misses on every hit.

export interface FastInit {
  readonly bytes: Buffer;
  /** Precomputed metric series keys: request duration, and requests by [udp v4, udp v6, tcp v4, tcp v6]. */
  readonly durationKey: string;
  readonly requestKeys: readonly string[];
  /** Forwarded answers: TTL field offsets and their values at store time, patched down by age. */
  readonly ttlAt?: readonly number[];
  readonly ttls?: readonly number[];
  readonly stored?: number;
  /** Served from here until this time (ms); afterwards the cache plugin (prefetch, stale) takes over. */
  readonly until?: number;
  readonly hitKey?: string;
  readonly responseKey?: string;
  /** EDNS buffer size of the queries that share this entry (the OPT is part of the key). */
  readonly udpSize: number;
  /** What the answer depends on: a Service ("namespace/name"), ZONE_WIDE, or nothing in the zone (undefined). */
  readonly tag?: string;
}

/** The tag of an answer that may depend on any part of the zone: dropped on every change. */
export const ZONE_WIDE = '*';

/** One cached answer. A class with every field always set keeps the hot path's property loads monomorphic. */
export class FastEntry {
  readonly bytes: Buffer;
  readonly durationKey: string;
  readonly requestKeys: readonly string[];
  readonly ttlAt: readonly number[];
  readonly ttls: readonly number[];
  readonly stored: number;
  readonly until: number;
  readonly hitKey: string | undefined;
  readonly responseKey: string | undefined;
  readonly udpSize: number;
  readonly tag: string | undefined;
  /** Its bucket's hash, to unlink it when its tag is invalidated. */
  hash = 0;
  /** Bytes of question after the header (name, type, class): the same for every query of the key. */
  readonly questionLen: number;
  /** Hits not yet folded into the metrics, as [udp v4, udp v6, tcp v4, tcp v6]. */
  readonly counts: number[] = [0, 0, 0, 0];
  /** The query from offset 12 on, name lower-cased; with the RD/CD bits, what a hit must equal. */
  readonly key: Buffer;
  readonly nameLen: number;
  readonly flags: number;
  next: FastEntry | undefined = undefined;

  constructor(query: Buffer, init: FastInit) {
    this.bytes = init.bytes;
    this.durationKey = init.durationKey;
    this.requestKeys = init.requestKeys;
    this.ttlAt = init.ttlAt ?? [];
    this.ttls = init.ttls ?? [];
    this.stored = init.stored ?? 0;
    this.until = init.until ?? Infinity;
    this.hitKey = init.hitKey;
    this.responseKey = init.responseKey;
    this.udpSize = init.udpSize;
    this.tag = init.tag;
    this.flags = keyFlags(query);
    this.nameLen = questionNameLen(query);
    this.questionLen = this.nameLen + 4;
    this.key = Buffer.from(query.subarray(12));
    for (let i = 0; i < this.nameLen; i++) this.key[i] = lower(this.key[i]!);
  }

  matches(query: Buffer): boolean {
    return this.matchesAt(query, 0, query.length);
  }

  /** matches() for the query at `query[o .. o + n)`. */
  matchesAt(query: Uint8Array, o: number, n: number): boolean {
    const key = this.key;
    const kn = key.length;
    if (n - 12 !== kn || keyFlags(query, o) !== this.flags) return false;
    const q = o + 12;
    // Label lengths are at most 63, below 'A', so folding the whole name region leaves them alone.
    for (let i = 0; i < this.nameLen; i++) if (lower(query[q + i]!) !== key[i]) return false;
    for (let i = this.nameLen; i < kn; i++) if (query[q + i] !== key[i]) return false;
    return true;
  }
}

export const MAX_ENTRIES = 50_000;
const BUCKET_MASK = (1 << 15) - 1;
const MAX_QUERY = 300;
const OPT_FIXED = 11; // root name, type, class, ttl, rdlen
/** RD and CD: the header flags that are part of the key (they change the answer). */
const KEY_FLAGS = 0x0110;
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function newBuckets(): (FastEntry | undefined)[] {
  return new Array<FastEntry | undefined>(BUCKET_MASK + 1).fill(undefined);
}

function keyFlags(query: Uint8Array, o = 0): number {
  return ((query[o + 2]! << 8) | query[o + 3]!) & KEY_FLAGS;
}

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

export class FastPath {
  /** Buckets by the low bits of the hash, each a chain through `next`: an array index, not a Map probe. */
  private buckets: (FastEntry | undefined)[] = newBuckets();
  private size = 0;
  /** The bucket evict() empties next. */
  private sweep = 0;
  private generation = -1;
  /** Entries by tag (see FastInit.tag), for invalidate(). */
  private tagged = new Map<string, Set<FastEntry>>();

  constructor(
    private readonly currentGeneration: () => number,
    /** Moves an entry's hit counts into the metrics; called before an entry is dropped. */
    private readonly fold: (e: FastEntry) => void,
    readonly now: () => number = Date.now,
  ) {}

  foldAll(): void {
    for (let e of this.buckets) for (; e !== undefined; e = e.next) this.fold(e);
  }

  private drop(): void {
    if (this.size === 0) return;
    this.foldAll();
    this.buckets = newBuckets();
    this.tagged = new Map();
    this.size = 0;
  }

  /**
   * Frees room: the entries of the next non-empty bucket, a clock over the buckets. Dropping
   * everything when full, as before, meant that clients asking for more names than it holds (all
   * 50,000 Services' names, `npm run bench -- dns --names 50000`) found it empty again and again:
   * 70,000 answers a second against 120,000 at 10,000 names. Now they lose about one entry per new one.
   */
  private evict(): void {
    for (let i = 0; i <= BUCKET_MASK; i++) {
      const b = this.sweep;
      this.sweep = (b + 1) & BUCKET_MASK;
      let e = this.buckets[b];
      if (e === undefined) continue;
      while (e !== undefined) {
        const next: FastEntry | undefined = e.next;
        this.unlink(e.hash, e);
        e = next;
      }
      return;
    }
  }

  /** Drops the entries built from these Services ("namespace/name") and every ZONE_WIDE one. */
  invalidate(services: Iterable<string>): void {
    if (this.size === 0) return;
    for (const s of services) this.dropTag(s);
    this.dropTag(ZONE_WIDE);
  }

  private dropTag(tag: string): void {
    const set = this.tagged.get(tag);
    if (!set) return;
    for (const e of set) this.unlink(e.hash, e);
  }

  /**
   * The lookup hash of a plain query: one question, nothing else but an option-less OPT (options
   * such as cookies differ per query and would only pollute); -1 when the query does not qualify.
   * Only the name is case-folded: type, class and OPT bytes count as they are.
   */
  hash(buf: Buffer): number {
    return this.hashAt(buf, 0, buf.length);
  }

  /** hash() of the query at `buf[o .. o + len)` (a slot of a receive batch: no view is made of it). */
  hashAt(buf: Uint8Array, o: number, len: number): number {
    if (len < 17 || len > MAX_QUERY) return -1;
    const n = o + len;
    const flags = (buf[o + 2]! << 8) | buf[o + 3]!;
    if ((flags & 0xf800) !== 0 || buf[o + 4] !== 0 || buf[o + 5] !== 1 || buf[o + 6] !== 0 || buf[o + 7] !== 0 || buf[o + 8] !== 0 || buf[o + 9] !== 0 || buf[o + 10] !== 0) return -1;
    const ar = buf[o + 11]!;
    if (ar > 1) return -1;
    if (ar === 1 && (buf[n - OPT_FIXED] !== 0 || buf[n - OPT_FIXED + 1] !== 0 || buf[n - OPT_FIXED + 2] !== 41 || buf[n - 2] !== 0 || buf[n - 1] !== 0)) return -1;
    let h = Math.imul(FNV_OFFSET ^ (flags & KEY_FLAGS), FNV_PRIME);
    let p = o + 12;
    for (;;) {
      if (p >= n) return -1;
      const l = buf[p]!;
      h = Math.imul(h ^ l, FNV_PRIME);
      if (l === 0) break;
      if (l > 63) return -1;
      const end = p + 1 + l;
      if (end > n) return -1;
      for (let i = p + 1; i < end; i++) {
        const c = buf[i]!;
        if (c >= 0x80) return -1;
        h = Math.imul(h ^ lower(c), FNV_PRIME);
      }
      p = end;
    }
    if (p + 5 > n) return -1;
    for (let i = p + 1; i < n; i++) h = Math.imul(h ^ buf[i]!, FNV_PRIME);
    return h >>> 0;
  }

  /** The entry for a query whose hash() is `h`, if one is fresh. */
  get(query: Buffer, h: number): FastEntry | undefined {
    return this.getAt(query, 0, query.length, h);
  }

  /** get() for the query at `query[o .. o + n)`. */
  getAt(query: Uint8Array, o: number, n: number, h: number): FastEntry | undefined {
    const g = this.currentGeneration();
    if (g !== this.generation) {
      this.drop();
      this.generation = g;
      return undefined;
    }
    let e = this.buckets[h & BUCKET_MASK];
    while (e !== undefined && !e.matchesAt(query, o, n)) e = e.next;
    if (e !== undefined && e.until !== Infinity && this.now() >= e.until) {
      this.unlink(h, e);
      return undefined;
    }
    return e;
  }

  set(query: Buffer, h: number, init: FastInit): void {
    if (this.generation !== this.currentGeneration()) return;
    if (this.size >= MAX_ENTRIES) this.evict();
    for (let old = this.buckets[h & BUCKET_MASK]; old !== undefined; old = old.next) {
      if (old.matches(query)) {
        this.unlink(h, old);
        break;
      }
    }
    const e = new FastEntry(query, init);
    e.hash = h;
    if (e.tag !== undefined) {
      let set = this.tagged.get(e.tag);
      if (!set) this.tagged.set(e.tag, (set = new Set()));
      set.add(e);
    }
    e.next = this.buckets[h & BUCKET_MASK];
    this.buckets[h & BUCKET_MASK] = e;
    this.size++;
  }

  private unlink(h: number, e: FastEntry): void {
    this.fold(e);
    this.size--;
    if (e.tag !== undefined) {
      const set = this.tagged.get(e.tag);
      set?.delete(e);
      if (set?.size === 0) this.tagged.delete(e.tag);
    }
    const head = this.buckets[h & BUCKET_MASK];
    if (head === e) {
      this.buckets[h & BUCKET_MASK] = e.next;
      return;
    }
    for (let p = head; p !== undefined; p = p.next) {
      if (p.next === e) {
        p.next = e.next;
        return;
      }
    }
  }

  clear(): void {
    this.drop();
  }

  /** The cached reply rewritten for this query. */
  patch(e: FastEntry, query: Buffer): Buffer {
    const out = Buffer.allocUnsafe(e.bytes.length);
    this.patchInto(e, query, 0, out, 0);
    return out;
  }

  /**
   * Writes the cached reply for the query at `query[o ..]` into `out` at `at` (room for
   * e.bytes.length is the caller's) and returns its length: the batched UDP path answers
   * straight into its send buffer, with no Buffer per reply.
   */
  patchInto(e: FastEntry, query: Uint8Array, o: number, out: Buffer, at: number): number {
    const n = e.bytes.length;
    out.set(e.bytes, at);
    out[at] = query[o]!;
    out[at + 1] = query[o + 1]!;
    const end = 12 + e.questionLen;
    for (let i = 12; i < end; i++) out[at + i] = query[o + i]!;
    const ttlAt = e.ttlAt;
    if (ttlAt.length > 0) {
      const age = Math.floor((this.now() - e.stored) / 1000);
      for (let i = 0; i < ttlAt.length; i++) out.writeUInt32BE(Math.max(0, e.ttls[i]! - age), at + ttlAt[i]!);
    }
    return n;
  }
}

/** Length of the question's name on the wire (uncompressed, as every query's is). */
export function questionNameLen(buf: Buffer): number {
  let p = 12;
  while (p < buf.length && buf[p] !== 0) p += buf[p]! + 1;
  return p + 1 - 12;
}
