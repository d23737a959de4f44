// The JavaScript half of the batched UDP addon (dns/native/udpbatch.c): one call in per batch of
// received datagrams, one call out per batch of replies. Node's dgram pays a JS callback, a 64 KiB
// receive buffer and an rinfo object per datagram, and a send wrapper per reply; here a batch of up
// to 64 queries costs two crossings, and a query the fast path answers allocates nothing: it is
// read from its receive slot and answered straight into the send buffer (both reused).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Config } from '../../common/config.js';
import { SkiffError } from '../../common/errors.js';
import { isPromise } from '../plugin.js';
import { MAX_CACHED_REPLY, type QueryHandler } from './handler.js';

/** An opaque socket owned by the addon. */
type Handle = object & { readonly __udpbatch: never };

export interface UdpBatchAddon {
  /** groupSize 0: a plain socket; n > 0: SO_REUSEPORT, datagrams spread at random over n sockets. */
  open(address: string, port: number, groupSize: number, bufferBytes: number): Handle;
  port(h: Handle): number;
  /** Datagram i of each batch arrives in data[i * SLOT ..]; meta says its length and source. */
  start(h: Handle, meta: Int32Array, data: Buffer, onBatch: (count: number) => void): void;
  send(h: Handle, data: Buffer, meta: Int32Array, count: number): number;
  close(h: Handle): void;
  /** Wraps a bound UDP socket handed over by an earlier agent (handoff.ts). */
  adopt(fd: number): Handle;
  fd(h: Handle): number;
  /** A duplicate of descriptor `fd` of process `pid` (pidfd_getfd). */
  takeFd(pid: number, fd: number): number;
  closeFd(fd: number): void;
  readonly META_WORDS: number;
  readonly SLOT: number;
}

export type UdpBackend = 'native' | 'dgram';

// Meta entry layout, shared with the C side: see the M_* constants there.
const M_OFF = 0;
const M_LEN = 1;
const M_FAM = 2;
const M_SCOPE = 4;
const M_ADDR = 5;
const M_TEXTLEN = 9;
const M_TEXT_BYTE = 40;
const BATCH = 64;
/** Replies waiting for one send call; a reply never exceeds 4096 bytes over UDP (handler.maxSize). */
const OUT_BYTES = 256 << 10;
const MAX_REPLY = 4096;
const BUFFER_BYTES = 4 << 20;

const here = dirname(fileURLToPath(import.meta.url));
let loaded: { addon?: UdpBatchAddon; error?: string } | undefined;

/** Where the build puts the addon, seen from the sources (dns/server) and from dist/dns/server. */
function candidates(): string[] {
  const fromEnv = process.env.SKIFF_UDPBATCH_ADDON;
  return [...(fromEnv ? [fromEnv] : []), join(here, '../../native/udpbatch.node'), join(here, '../../dist/native/udpbatch.node')];
}

/** The addon, or undefined with the reason (not built, or it failed to load); tried once per process. */
export function loadUdpBatch(): { addon?: UdpBatchAddon; error?: string } {
  if (loaded) return loaded;
  const path = candidates().find((p) => existsSync(p));
  if (!path) return (loaded = { error: 'udpbatch.node not built (scripts/build-native.sh)' });
  try {
    const addon = createRequire(import.meta.url)(path) as UdpBatchAddon;
    // An addon built from an older udpbatch.c takes other arguments; dgram beats a crash.
    loaded = typeof addon.SLOT === 'number' ? { addon } : { error: `${path}: built from an older udpbatch.c (npm run build)` };
  } catch (e) {
    loaded = { error: `${path}: ${(e as Error).message}` };
  }
  return loaded;
}

/** "auto" picks the addon when it loads; "native" insists on it. */
export function resolveUdpBackend(setting: 'auto' | UdpBackend): { backend: UdpBackend; reason?: string } {
  if (setting === 'dgram') return { backend: 'dgram' };
  const { addon, error } = loadUdpBatch();
  if (addon) return { backend: 'native' };
  if (setting === 'native') throw new Error(`dns.udpBackend is "native" but the addon cannot be used: ${error}`);
  return { backend: 'dgram', reason: error };
}

/** The UDP path for this process; "native" that cannot load is a startup error with a stable code. */
export function udpBackendOrFail(cfg: Config, log?: Logger): 'native' | 'dgram' {
  try {
    const r = resolveUdpBackend(cfg.dns.udpBackend);
    if (r.reason) log?.info({ reason: r.reason }, 'dns: native UDP not available, using node:dgram');
    return r.backend;
  } catch (e) {
    throw new SkiffError('ERR_DNS_UDP_BACKEND', (e as Error).message, { cause: e });
  }
}

export class NativeUdpSocket {
  private readonly words: number;
  private readonly inMeta: Int32Array;
  private readonly inBytes: Buffer;
  /** The receive slots, filled by the addon and read during onBatch. */
  private readonly inData: Buffer;
  private readonly outMeta: Int32Array;
  private readonly outData = Buffer.allocUnsafeSlow(OUT_BYTES);
  private outCount = 0;
  private outUsed = 0;
  private flushQueued = false;
  private closed = false;
  /** The last source seen, so a burst from one client builds its address string once. */
  private lastSrc = '';
  private readonly lastKey = new Int32Array(6);

  private constructor(
    private readonly addon: UdpBatchAddon,
    private readonly h: Handle,
    private readonly handler: QueryHandler,
    private readonly log?: Logger,
  ) {
    this.words = addon.META_WORDS;
    this.inMeta = new Int32Array(BATCH * this.words);
    this.inBytes = Buffer.from(this.inMeta.buffer);
    this.inData = Buffer.allocUnsafeSlow(BATCH * addon.SLOT);
    this.outMeta = new Int32Array(BATCH * this.words);
    this.lastKey[0] = -1;
  }

  /** Binds a new socket, or (`inherited`) serves on one an earlier agent left open. */
  static open(addon: UdpBatchAddon, address: string, port: number, groupSize: number, handler: QueryHandler, log?: Logger, inherited?: number): NativeUdpSocket {
    const h = inherited === undefined ? addon.open(address, port, groupSize, BUFFER_BYTES) : addon.adopt(inherited);
    const s = new NativeUdpSocket(addon, h, handler, log);
    try {
      addon.start(h, s.inMeta, s.inData, s.onBatch);
    } catch (e) {
      addon.close(h);
      throw e;
    }
    return s;
  }

  get port(): number {
    return this.addon.port(this.h);
  }

  get fd(): number {
    return this.addon.fd(this.h);
  }

  private readonly onBatch = (count: number): void => {
    const m = this.inMeta;
    const w = this.words;
    const data = this.inData;
    const handler = this.handler;
    for (let i = 0, b = 0; i < count; i++, b += w) {
      const off = m[b + M_OFF]!;
      const len = m[b + M_LEN]!;
      const src = this.source(b);
      if (this.closed) return;
      if (this.outCount === BATCH || this.outUsed + MAX_CACHED_REPLY > OUT_BYTES) this.flush();
      let n: number;
      try {
        n = handler.answerCached(data, off, len, src, 'udp', this.outData, this.outUsed);
      } catch (e) {
        this.log?.error({ err: e }, 'dns: handler failed');
        continue;
      }
      if (n >= 0) {
        this.record(n, m, b);
        continue;
      }
      // A copy: the slot is reused by the next batch, and an answer that waits on an upstream
      // (or is remembered by the fast path) still refers to its query.
      const msg = Buffer.copyBytesFrom(data, off, len);
      let r: Buffer | undefined | Promise<Buffer | undefined>;
      try {
        r = handler.handle(msg, src, 'udp');
      } catch (e) {
        this.log?.error({ err: e }, 'dns: handler failed');
        continue;
      }
      if (r === undefined) continue;
      if (!isPromise(r)) {
        this.push(r, m, b);
        continue;
      }
      // Waits on an upstream: keep the destination (family, port, scope, address) for later.
      const dest = m.slice(b, b + M_TEXTLEN);
      r.then(
        (out) => {
          if (!out) return;
          this.push(out, dest, 0);
          this.queueFlush();
        },
        (e: unknown) => this.log?.error({ err: e }, 'dns: handler failed'),
      );
    }
    this.flush();
  };

  private source(b: number): string {
    const m = this.inMeta;
    const k = this.lastKey;
    if (m[b + M_FAM] === k[0] && m[b + M_SCOPE] === k[1] && m[b + M_ADDR] === k[2] && m[b + M_ADDR + 1] === k[3] && m[b + M_ADDR + 2] === k[4] && m[b + M_ADDR + 3] === k[5]) {
      return this.lastSrc;
    }
    k[0] = m[b + M_FAM]!;
    k[1] = m[b + M_SCOPE]!;
    for (let j = 0; j < 4; j++) k[2 + j] = m[b + M_ADDR + j]!;
    const start = b * 4 + M_TEXT_BYTE;
    this.lastSrc = this.inBytes.toString('latin1', start, start + m[b + M_TEXTLEN]!);
    return this.lastSrc;
  }

  /** Appends a reply to the outgoing batch; `dest[b + 2 .. b + 8]` is the client's family, port, scope, address. */
  private push(out: Buffer, dest: Int32Array, b: number): void {
    if (this.closed || out.length > MAX_REPLY) return;
    if (this.outCount === BATCH || this.outUsed + out.length > OUT_BYTES) this.flush();
    out.copy(this.outData, this.outUsed);
    this.record(out.length, dest, b);
  }

  /** Adds the `len` bytes already written at outUsed to the outgoing batch, for the client in `dest` at b. */
  private record(len: number, dest: Int32Array, b: number): void {
    const o = this.outCount * this.words;
    const om = this.outMeta;
    om[o + M_OFF] = this.outUsed;
    om[o + M_LEN] = len;
    for (let j = M_FAM; j < M_TEXTLEN; j++) om[o + j] = dest[b + j]!;
    this.outUsed += len;
    this.outCount++;
  }

  private flush(): void {
    if (this.outCount === 0) return;
    const n = this.outCount;
    this.outCount = 0;
    this.outUsed = 0;
    if (this.closed) return;
    // A reply that cannot go (full send buffer) is lost like one dropped on the wire: the client retries.
    this.addon.send(this.h, this.outData, this.outMeta, n);
  }

  /** Answers that waited on an upstream go out together after the current I/O phase. */
  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  /** Closes the socket at once: the port is free when this returns. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.outCount = 0;
    this.addon.close(this.h);
  }
}
