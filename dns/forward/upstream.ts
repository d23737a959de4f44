// One upstream server: a few connected UDP sockets multiplexed by query id, TCP for truncated
// answers, and health state. Connected sockets matter: a closed port answers with ICMP, which a
// connected socket reports at once as ECONNREFUSED, so a dead upstream fails in microseconds.
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { SkiffError } from '../../common/errors.js';

export class UpstreamError extends SkiffError {
  constructor(code: 'ERR_DNS_UPSTREAM_TIMEOUT' | 'ERR_DNS_UPSTREAM_REFUSED' | 'ERR_DNS_UPSTREAM_IO', message: string) {
    super(code, message);
    this.name = 'UpstreamError';
  }
}

export function parseUpstream(s: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\d+))?$/.exec(s);
  if (m) return { host: m[1]!, port: m[2] ? Number(m[2]) : 53 };
  return { host: s, port: 53 }; // a bare IPv6 address
}

interface Pending {
  resolve(b: Buffer): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

class UdpChannel {
  private readonly sock: dgram.Socket;
  private readonly pending = new Map<number, Pending>();
  private ready: Promise<void>;
  closed = false;

  constructor(host: string, port: number) {
    this.sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    this.sock.on('message', (msg) => {
      if (msg.length < 2) return;
      const p = this.pending.get(msg.readUInt16BE(0));
      if (!p) return; // late or spoofed
      this.pending.delete(msg.readUInt16BE(0));
      clearTimeout(p.timer);
      p.resolve(msg);
    });
    this.sock.on('error', (e) => {
      // ECONNREFUSED from ICMP: every query in flight on this socket went to a closed port.
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        clearTimeout(p.timer);
        p.reject(new UpstreamError('ERR_DNS_UPSTREAM_REFUSED', `${host}:${port}: ${e.message}`));
      }
    });
    this.ready = new Promise((resolve) => this.sock.connect(port, host, () => resolve()));
    this.ready.catch(() => undefined);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  async query(msg: Buffer, timeoutMs: number): Promise<Buffer> {
    await this.ready;
    let id = randomInt(0, 65536);
    for (let i = 0; this.pending.has(id) && i < 100; i++) id = randomInt(0, 65536);
    if (this.pending.has(id)) throw new UpstreamError('ERR_DNS_UPSTREAM_IO', 'no free query id');
    const out = Buffer.from(msg);
    out.writeUInt16BE(id, 0);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new UpstreamError('ERR_DNS_UPSTREAM_TIMEOUT', `timeout after ${timeoutMs}ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.sock.send(out, (e) => {
        if (!e) return;
        const p = this.pending.get(id);
        if (!p) return;
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new UpstreamError(e.message.includes('ECONNREFUSED') ? 'ERR_DNS_UPSTREAM_REFUSED' : 'ERR_DNS_UPSTREAM_IO', e.message));
      });
    });
  }

  close(): void {
    this.closed = true;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new UpstreamError('ERR_DNS_UPSTREAM_IO', 'closed'));
    }
    this.pending.clear();
    try {
      this.sock.close();
    } catch {
      /* already closed */
    }
  }
}

export function tcpQuery(host: string, port: number, msg: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let buf: Buffer = Buffer.alloc(0);
    const fail = (e: Error): void => {
      s.destroy();
      reject(e);
    };
    s.setTimeout(timeoutMs, () => fail(new UpstreamError('ERR_DNS_UPSTREAM_TIMEOUT', `tcp timeout after ${timeoutMs}ms`)));
    s.on('error', (e) => fail(new UpstreamError('ERR_DNS_UPSTREAM_IO', e.message)));
    s.on('connect', () => {
      const len = Buffer.allocUnsafe(2);
      len.writeUInt16BE(msg.length);
      s.write(Buffer.concat([len, msg]));
    });
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        s.end();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
    s.on('end', () => reject(new UpstreamError('ERR_DNS_UPSTREAM_IO', 'tcp connection closed early')));
  });
}

const CHANNELS = 4;

export class Upstream {
  readonly host: string;
  readonly port: number;
  /** coredns "to" label. */
  readonly label: string;
  private channels: UdpChannel[] = [];
  private next = 0;
  fails = 0;
  down = false;
  /** Set when a loop probe sent to it came back to us: never used again. */
  looping = false;

  constructor(spec: string) {
    const { host, port } = parseUpstream(spec);
    this.host = host;
    this.port = port;
    this.label = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  get usable(): boolean {
    return !this.looping;
  }

  get inFlight(): number {
    return this.channels.reduce((n, c) => n + c.inFlight, 0);
  }

  private channel(): UdpChannel {
    if (this.channels.length < CHANNELS) {
      const c = new UdpChannel(this.host, this.port);
      this.channels.push(c);
      return c;
    }
    this.next = (this.next + 1) % this.channels.length;
    return this.channels[this.next]!;
  }

  udp(msg: Buffer, timeoutMs: number): Promise<Buffer> {
    return this.channel().query(msg, timeoutMs);
  }

  tcp(msg: Buffer, timeoutMs: number): Promise<Buffer> {
    return tcpQuery(this.host, this.port, msg, timeoutMs);
  }

  close(): void {
    for (const c of this.channels) c.close();
    this.channels = [];
  }
}
