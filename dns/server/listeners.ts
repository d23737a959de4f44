// UDP and TCP sockets around a QueryHandler. TCP follows RFC 7766: two-byte length framing,
// pipelined queries answered as they complete, idle connections closed.
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from 'pino';
import { isPromise } from '../plugin.js';
import type { QueryHandler } from './handler.js';
import { NativeUdpSocket, loadUdpBatch, type UdpBackend } from './native-udp.js';

export interface Bound {
  readonly address: string;
  readonly port: number;
}

export interface ListenOptions {
  /** false: share the port (node:cluster workers). */
  readonly exclusive?: boolean;
  /** UDP through Node's dgram or the batched addon (native-udp.ts); dgram unless told. */
  readonly udp?: UdpBackend;
  /** With the addon: how many threads bind this address (SO_REUSEPORT group), 0 for one. */
  readonly reusePortGroup?: number;
  /** false: UDP only (another thread of a pool serves TCP on the port). */
  readonly tcp?: boolean;
  /** Sockets an earlier agent left open (handoff.ts): serve on them instead of binding. */
  readonly inherited?: { readonly udp?: number; readonly tcp?: number };
}

const TCP_IDLE_MS = 10_000;
const TCP_MAX_CONNECTIONS = 1000;
const TCP_MAX_PENDING = 64;

/**
 * Replies always go to the literal address a query came from; the default lookup would still
 * route each send through dns.lookup and a nextTick.
 */
const literalLookup = ((address: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void => {
  cb(null, address, address.includes(':') ? 6 : 4);
}) as unknown as dgram.SocketOptions['lookup'];

export class DnsListener {
  private udp?: dgram.Socket;
  private native?: NativeUdpSocket;
  private tcp?: net.Server;
  private readonly conns = new Set<net.Socket>();
  /** UDP replies waiting for the end of the current read batch (see queue()). */
  private readonly outBufs: Buffer[] = [];
  private readonly outPorts: number[] = [];
  private readonly outAddrs: string[] = [];
  private outSock?: dgram.Socket;
  private flushing = false;

  constructor(
    private readonly handler: QueryHandler,
    private readonly log?: Logger,
  ) {}

  /** Binds UDP then TCP on the same port (port 0 picks one free for both). */
  async listen(address: string, port: number, opts: ListenOptions = {}): Promise<Bound> {
    for (let attempt = 0; ; attempt++) {
      const udp = opts.udp === 'native' ? this.bindNative(address, port, opts.reusePortGroup ?? 0, opts.inherited?.udp) : await this.bindDgram(address, port, opts.exclusive ?? true);
      const bound = udp.port;
      if (opts.tcp === false) return { address, port: bound };
      const tcp = net.createServer({ noDelay: true }, (s) => this.onConnection(s));
      tcp.maxConnections = TCP_MAX_CONNECTIONS;
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          const done = (): void => {
            tcp.off('error', reject);
            resolve();
          };
          if (opts.inherited?.tcp !== undefined) tcp.listen({ fd: opts.inherited.tcp }, done);
          else tcp.listen({ host: address, port: bound, exclusive: opts.exclusive ?? true }, done);
        });
      } catch (e) {
        await udp.close();
        // An ephemeral UDP port can be taken on TCP; try another one.
        if (port === 0 && attempt < 10) continue;
        throw e;
      }
      this.tcp = tcp;
      return { address, port: bound };
    }
  }

  private bindNative(address: string, port: number, group: number, inherited?: number): { port: number; close: () => Promise<void> } {
    const { addon, error } = loadUdpBatch();
    if (!addon) throw new Error(`dns: native UDP unavailable: ${error}`);
    const s = NativeUdpSocket.open(addon, address, port, group, this.handler, this.log, inherited);
    this.native = s;
    return {
      port: s.port,
      close: async () => {
        s.close();
        this.native = undefined;
      },
    };
  }

  private async bindDgram(address: string, port: number, exclusive: boolean): Promise<{ port: number; close: () => Promise<void> }> {
    const udp = dgram.createSocket({ type: address.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, lookup: literalLookup });
    udp.on('message', (msg, rinfo) => this.onDatagram(udp, msg, rinfo));
    udp.on('error', (e) => this.log?.warn({ err: e }, 'dns: udp socket error'));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ address, port, exclusive }, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    this.udp = udp;
    return {
      port: udp.address().port,
      close: () => {
        this.udp = undefined;
        return new Promise<void>((r) => udp.close(() => r()));
      },
    };
  }

  private onDatagram(sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    // Belt and braces: whatever a packet does, it must not become an uncaught exception.
    let r: Buffer | undefined | Promise<Buffer | undefined>;
    try {
      r = this.handler.handle(msg, rinfo.address, 'udp');
    } catch (e) {
      this.log?.error({ err: e }, 'dns: handler failed');
      return;
    }
    if (r === undefined) return;
    // No send callback: a lost reply is the client's retry, and a callback costs on every packet.
    if (!isPromise(r)) return this.queue(sock, r, rinfo);
    r.then(
      (out) => out && sendQuietly(sock, out, rinfo.port, rinfo.address),
      (e: unknown) => this.log?.error({ err: e }, 'dns: handler failed'),
    );
  }

  /**
   * Replies answered synchronously wait until libuv has drained the socket (it reads up to 32
   * datagrams per wake-up, each its own callback) and then go out back to back. A reply sent into
   * a client that is asleep in recvmsg pays, inside our sendmsg, for waking it (24% of a worker's
   * time under dnsperf, profiled); a burst wakes a busy client once and finds it awake for the rest.
   * setImmediate runs right after this poll phase, so the wait is the rest of one batch.
   */
  private queue(sock: dgram.Socket, out: Buffer, rinfo: dgram.RemoteInfo): void {
    this.outBufs.push(out);
    this.outPorts.push(rinfo.port);
    this.outAddrs.push(rinfo.address);
    this.outSock = sock;
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushing = false;
    const sock = this.outSock!;
    const n = this.outBufs.length;
    for (let i = 0; i < n; i++) sendQuietly(sock, this.outBufs[i]!, this.outPorts[i]!, this.outAddrs[i]!);
    this.outBufs.length = 0;
    this.outPorts.length = 0;
    this.outAddrs.length = 0;
  };

  private onConnection(s: net.Socket): void {
    this.conns.add(s);
    s.setTimeout(TCP_IDLE_MS, () => s.destroy());
    s.on('close', () => this.conns.delete(s));
    s.on('error', () => s.destroy());
    let buf: Buffer = Buffer.alloc(0);
    let pending = 0;
    const src = s.remoteAddress ?? '';
    const write = (out: Buffer | undefined): void => {
      pending--;
      if (!out || s.destroyed) return;
      const len = Buffer.allocUnsafe(2);
      len.writeUInt16BE(out.length);
      s.write(Buffer.concat([len, out]));
      if (pending === 0) s.resume();
    };
    s.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        pending++;
        try {
          const r = this.handler.handle(msg, src, 'tcp');
          if (isPromise(r)) r.then(write, () => write(undefined));
          else write(r);
        } catch (e) {
          this.log?.error({ err: e }, 'dns: handler failed');
          write(undefined);
        }
      }
      // Back-pressure: a client that pipelines faster than we answer waits.
      if (pending >= TCP_MAX_PENDING) s.pause();
    });
  }

  /** The descriptors serving now, to leave open for the next agent (native UDP only: dgram has no fd). */
  fds(): { udp?: number; tcp?: number } {
    const tcp = (this.tcp as unknown as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
    return { udp: this.native?.fd, tcp: typeof tcp === 'number' && tcp >= 0 ? tcp : undefined };
  }

  /** Which UDP path this listener took (tests and the startup log). */
  get udpBackend(): UdpBackend | undefined {
    return this.native ? 'native' : this.udp ? 'dgram' : undefined;
  }

  async close(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    this.native?.close();
    this.native = undefined;
    if (udp) await new Promise<void>((r) => udp.close(() => r()));
    for (const c of this.conns) c.destroy();
    if (tcp) await new Promise<void>((r) => tcp.close(() => r()));
  }
}

/** An answer that resolves after the socket closed (shutdown, reload) is dropped, not thrown. */
function sendQuietly(sock: dgram.Socket, out: Buffer, port: number, address: string): void {
  try {
    sock.send(out, port, address);
  } catch {
    /* socket closed while the answer was being computed: the client retries */
  }
}
