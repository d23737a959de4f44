// Encoded answers for repeated queries, so the hot path skips decode, the plugin chain and encode.
// Only replies that are the same for every client qualify: positive single-record kubernetes
// answers, and forwarded answers with at most one address record (nothing for loadbalance to
// shuffle), never stale or autopath answers. A hit copies the bytes and patches in the query's id
// and question (same length: only the case can differ, and compressed answer names point into the
// question, so they follow the client's case too) and, for forwarded answers, TTLs counted down by
// age. Forwarded entries leave at 90% of their TTL so the cache plugin's prefetch still sees the
// tail. Any change to the zone index empties it.

export interface FastEntry {
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
  /** Bytes of question after the header (name, type, class): the same for every query of the key. */
  readonly questionLen: number;
  /** EDNS buffer size of the queries that share this entry (the OPT is part of the key). */
  readonly udpSize: number;
  /** Hits not yet folded into the metrics, as [udp v4, udp v6, tcp v4, tcp v6]. */
  readonly counts: number[];
}

const MAX_ENTRIES = 50_000;
const OPT_FIXED = 11; // root name, type, class, ttl, rdlen

export class FastPath {
  private entries = new Map<string, FastEntry>();
  private generation = -1;

  constructor(
    private readonly currentGeneration: () => number,
    /** Moves an entry's hit counts into the metrics; called before an entry is dropped. */
    private readonly fold: (e: FastEntry) => void,
    readonly now: () => number = Date.now,
  ) {}

  foldAll(): void {
    for (const e of this.entries.values()) this.fold(e);
  }

  private drop(): void {
    this.foldAll();
    this.entries = new Map();
  }

  /**
   * The cache key of a plain query: one question, nothing else but an option-less OPT (options such
   * as cookies differ per query and would only pollute). Undefined when the query does not qualify.
   */
  key(buf: Buffer): string | undefined {
    const n = buf.length;
    if (n < 17 || n > 300) return undefined;
    const flags = buf.readUInt16BE(2);
    if ((flags & 0xf800) !== 0 || buf.readUInt16BE(4) !== 1 || buf.readUInt16BE(6) !== 0 || buf.readUInt16BE(8) !== 0) return undefined;
    const ar = buf.readUInt16BE(10);
    if (ar > 1) return undefined;
    if (ar === 1 && (buf[n - OPT_FIXED] !== 0 || buf.readUInt16BE(n - OPT_FIXED + 1) !== 41 || buf.readUInt16BE(n - 2) !== 0)) return undefined;
    // Only the name is case-folded: type, class and OPT bytes must stay as they are.
    let p = 12;
    while (p < n && buf[p] !== 0) {
      if (buf[p]! > 63) return undefined;
      p += buf[p]! + 1;
    }
    if (p + 5 > n) return undefined;
    const name = buf.toString('latin1', 12, p);
    let upper = false;
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      if (c >= 0x80) return undefined;
      if (c >= 0x41 && c <= 0x5a) upper = true;
    }
    return (upper ? name.toLowerCase() : name) + buf.toString('latin1', p) + String.fromCharCode(flags & 0x0110);
  }

  get(key: string): FastEntry | undefined {
    const g = this.currentGeneration();
    if (g !== this.generation) {
      this.drop();
      this.generation = g;
      return undefined;
    }
    const e = this.entries.get(key);
    if (e?.until !== undefined && this.now() >= e.until) {
      this.fold(e);
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  set(key: string, e: FastEntry): void {
    if (this.generation !== this.currentGeneration()) return;
    if (this.entries.size >= MAX_ENTRIES) this.drop();
    const old = this.entries.get(key);
    if (old) this.fold(old);
    this.entries.set(key, e);
  }

  clear(): void {
    this.drop();
  }

  /** The cached reply rewritten for this query. */
  patch(e: FastEntry, query: Buffer): Buffer {
    const out = Buffer.allocUnsafe(e.bytes.length);
    e.bytes.copy(out);
    out[0] = query[0]!;
    out[1] = query[1]!;
    query.copy(out, 12, 12, 12 + e.questionLen);
    if (e.ttlAt) {
      const age = Math.floor((this.now() - e.stored!) / 1000);
      for (let i = 0; i < e.ttlAt.length; i++) out.writeUInt32BE(Math.max(0, e.ttls![i]! - age), e.ttlAt[i]!);
    }
    return out;
  }
}

/** Length of the question's name on the wire (uncompressed, as every query's is). */
export function questionNameLen(buf: Buffer): number {
  let p = 12;
  while (p < buf.length && buf[p] !== 0) p += buf[p]! + 1;
  return p + 1 - 12;
}
