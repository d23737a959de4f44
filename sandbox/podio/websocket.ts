// The server side of RFC 6455, as much as the Kubernetes streaming subprotocols use: the upgrade
// handshake with subprotocol selection, binary and text messages (fragmented or not, masked by the
// client as the RFC requires), ping/pong and the closing handshake.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_MESSAGE = 16 * 1024 * 1024;

export interface WebSocketEvents {
  message: [Buffer];
  close: [];
}

/** The subprotocol the server picks: the first of `supported` the client offers. */
export function pickProtocol(req: IncomingMessage, supported: readonly string[]): string | undefined {
  const offered = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return supported.find((p) => offered.includes(p));
}

export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return String(req.headers.upgrade ?? '').toLowerCase() === 'websocket' && typeof req.headers['sec-websocket-key'] === 'string';
}

/** Writes a plain HTTP error on a socket that asked for an upgrade, then closes it. */
export function refuseUpgrade(socket: Socket, code: number, reason: string, body: unknown): void {
  const text = JSON.stringify(body);
  socket.end(`HTTP/1.1 ${code} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
}

export class WebSocketConnection extends EventEmitter<WebSocketEvents> {
  private buf: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private closed = false;

  /** Completes the handshake on `socket` with `protocol` and starts reading frames. */
  constructor(
    req: IncomingMessage,
    private readonly socket: Socket,
    head: Buffer,
    readonly protocol: string,
  ) {
    super();
    const accept = createHash('sha1').update(`${String(req.headers['sec-websocket-key'])}${GUID}`).digest('base64');
    socket.setNoDelay(true);
    socket.write(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${accept}`, `Sec-WebSocket-Protocol: ${protocol}`, '', ''].join('\r\n'));
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => this.finish());
    socket.on('error', () => this.finish());
    if (head.length) this.onData(head);
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  send(data: Buffer): void {
    this.frame(0x2, data);
  }

  /** Starts the closing handshake; the socket ends once the client answers (or after 2 s). */
  close(code = 1000): void {
    if (this.closed) return;
    const b = Buffer.alloc(2);
    b.writeUInt16BE(code);
    this.frame(0x8, b);
    this.closed = true;
    setTimeout(() => this.socket.destroy(), 2000).unref();
    this.socket.end();
    this.emit('close');
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }

  private frame(opcode: number, data: Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    const n = data.length;
    const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
    if (n >= 126 && n < 65536) {
      head[0] = 0x80 | opcode;
      head[1] = 126;
      head.writeUInt16BE(n, 2);
    } else if (n >= 65536) {
      head[0] = 0x80 | opcode;
      head[1] = 127;
      head.writeBigUInt64BE(BigInt(n), 2);
    }
    this.socket.write(Buffer.concat([head, data]));
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.buf.length < 2) return;
      const fin = (this.buf[0]! & 0x80) !== 0;
      const opcode = this.buf[0]! & 0x0f;
      const masked = (this.buf[1]! & 0x80) !== 0;
      let len = this.buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        const big = this.buf.readBigUInt64BE(2);
        if (big > BigInt(MAX_MESSAGE)) return this.protocolError(1009);
        len = Number(big);
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (this.buf.length < off + len) return;
      const payload = Buffer.from(this.buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= this.buf[maskOff + (i % 4)]!;
      this.buf = this.buf.subarray(off + len);
      if (!masked) return this.protocolError(1002); // clients must mask
      this.onFrame(fin, opcode, payload);
      if (this.closed) return;
    }
  }

  private onFrame(fin: boolean, opcode: number, payload: Buffer): void {
    switch (opcode) {
      case 0x0: // continuation
      case 0x1:
      case 0x2:
        this.fragments.push(payload);
        if (this.fragments.reduce((n, f) => n + f.length, 0) > MAX_MESSAGE) return this.protocolError(1009);
        if (fin) {
          const msg = Buffer.concat(this.fragments);
          this.fragments = [];
          this.emit('message', msg);
        }
        return;
      case 0x8:
        this.close(payload.length >= 2 ? payload.readUInt16BE(0) : 1000);
        return;
      case 0x9:
        this.frame(0xa, payload);
        return;
      case 0xa:
        return;
      default:
        this.protocolError(1002);
    }
  }

  private protocolError(code: number): void {
    this.close(code);
  }
}
