// The streaming side of logs and exec without a kernel: WebSocket framing against a raw TCP
// client, the exec route's refusals (over a real fake API server) and the log tail rule.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../../sandbox/apiserver/index.js';
import { execUpgrade, exitStatus, PROTOCOLS } from '../../sandbox/podio/exec.js';
import { tailLines } from '../../sandbox/podio/logs.js';
import { pickProtocol, WebSocketConnection } from '../../sandbox/podio/websocket.js';

const closers: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of closers) await c();
});

/** A client frame: FIN as given, masked as RFC 6455 requires of clients (unless `mask` is false). */
function frame(opcode: number, payload: Buffer, fin = true, mask = true): Buffer {
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  if (mask) for (let i = 0; i < body.length; i++) body[i]! ^= key[i % 4]!;
  const len = body.length < 126 ? Buffer.from([body.length | (mask ? 0x80 : 0)]) : Buffer.from([126 | (mask ? 0x80 : 0), body.length >> 8, body.length & 0xff]);
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode]), len, mask ? key : Buffer.alloc(0), body]);
}

/** Server frames as [opcode, payload], parsed from everything the socket received. */
function parseFrames(buf: Buffer): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  let off = 0;
  while (off + 2 <= buf.length) {
    let len = buf[off + 1]! & 0x7f;
    let start = off + 2;
    if (len === 126) {
      len = buf.readUInt16BE(off + 2);
      start = off + 4;
    }
    if (start + len > buf.length) break;
    out.push([buf[off]! & 0x0f, buf.subarray(start, start + len)]);
    off = start + len;
  }
  return out;
}

async function rawUpgrade(port: number, path: string, headers: Record<string, string>): Promise<{ socket: Socket; head: string; rest: () => Buffer; closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  let data = Buffer.alloc(0);
  socket.on('data', (d) => (data = Buffer.concat([data, d])));
  const closed = new Promise<void>((r) => socket.on('close', () => r()));
  await new Promise((r) => socket.once('connect', r));
  socket.write([`GET ${path} HTTP/1.1`, 'Host: x', 'Connection: Upgrade', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n'));
  for (let i = 0; i < 100 && !data.includes('\r\n\r\n'); i++) await new Promise((r) => setTimeout(r, 10));
  const end = data.indexOf('\r\n\r\n') + 4;
  return { socket, head: data.subarray(0, end).toString(), rest: () => data.subarray(end), closed };
}

const wsHeaders = (key: string, protocols = 'v5.channel.k8s.io, v4.channel.k8s.io') => ({ Upgrade: 'websocket', 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Protocol': protocols });

describe('WebSocket framing', () => {
  async function echoServer(): Promise<number> {
    const srv: Server = createServer();
    srv.on('upgrade', (req, socket: Socket, head) => {
      const ws = new WebSocketConnection(req, socket, head, pickProtocol(req, PROTOCOLS) ?? '');
      ws.on('message', (m) => ws.send(m));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    closers.push(() => {
      srv.closeAllConnections();
      return new Promise((r) => srv.close(r));
    });
    return (srv.address() as AddressInfo).port;
  }

  it('completes the handshake with v5, reassembles fragments, unmasks, answers pings', async () => {
    const port = await echoServer();
    const key = randomBytes(16).toString('base64');
    const c = await rawUpgrade(port, '/', wsHeaders(key));
    expect(c.head).toMatch(/^HTTP\/1\.1 101 /);
    expect(c.head).toContain(`Sec-WebSocket-Accept: ${createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')}\r\n`);
    expect(c.head).toContain('Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n');
    const big = Buffer.alloc(300, 7);
    c.socket.write(Buffer.concat([frame(0x2, Buffer.from([1, 104, 105]), false), frame(0x0, Buffer.from('!')), frame(0x9, Buffer.from('p')), frame(0x2, big)]));
    for (let i = 0; i < 100 && parseFrames(c.rest()).length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    const got = parseFrames(c.rest());
    expect(got[0]).toEqual([0x2, Buffer.from([1, 104, 105, 33])]);
    expect(got[1]).toEqual([0xa, Buffer.from('p')]);
    expect(got[2]).toEqual([0x2, big]);
    c.socket.write(frame(0x8, Buffer.from([0x03, 0xe8])));
    await c.closed;
  });

  it('closes with 1002 on an unmasked client frame', async () => {
    const port = await echoServer();
    const c = await rawUpgrade(port, '/', wsHeaders(randomBytes(16).toString('base64')));
    c.socket.write(frame(0x2, Buffer.from('x'), true, false));
    await c.closed;
    expect(parseFrames(c.rest())).toEqual([[0x8, Buffer.from([0x03, 0xea])]]);
  });
});

describe('pods/exec refusals', () => {
  it('answers a Status before upgrading: SPDY 400, no such pod 404, a pod not running yet 400', async () => {
    const api = await startFakeApiServer({ port: 0 });
    closers.push(() => api.close());
    api.upgrade(execUpgrade(api.store, () => undefined));
    api.store.create('pods', { metadata: { name: 'p', namespace: 'default' }, spec: { containers: [{ name: 'c' }] } });
    const path = (pod: string) => `/api/v1/namespaces/default/pods/${pod}/exec?command=true&stdout=true`;
    const spdy = await rawUpgrade(api.port, path('p'), { Upgrade: 'SPDY/3.1' });
    expect(spdy.head).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(spdy.rest().toString())).toMatchObject({ kind: 'Status', code: 400, message: expect.stringContaining('WebSocket') });
    const missing = await rawUpgrade(api.port, path('nope'), wsHeaders(randomBytes(16).toString('base64')));
    expect(missing.head).toMatch(/^HTTP\/1\.1 404 /);
    const waiting = await rawUpgrade(api.port, path('p'), wsHeaders(randomBytes(16).toString('base64')));
    expect(JSON.parse(waiting.rest().toString())).toMatchObject({ code: 400, message: 'container "c" in pod "p" is waiting to start: PodScheduled' });
    const proto = await rawUpgrade(api.port, path('p'), wsHeaders(randomBytes(16).toString('base64'), 'channel.k8s.io'));
    expect(JSON.parse(proto.rest().toString()).message).toMatch(/none of the offered subprotocols/);
  });

  it('reports the exit code on the error channel as the kubelet does', () => {
    expect(exitStatus(0, ['true'])).toEqual({ metadata: {}, status: 'Success' });
    expect(exitStatus(3, ['sh', '-c', 'exit 3'])).toEqual({
      metadata: {},
      status: 'Failure',
      message: 'command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '3' }] },
    });
  });
});

describe('log tail', () => {
  it('keeps the last N lines, a trailing newline not counting as a line', () => {
    const t = (s: string, n: number) => tailLines(Buffer.from(s), n).toString();
    expect(t('a\nb\nc\n', 2)).toBe('b\nc\n');
    expect(t('a\nb\nc', 2)).toBe('b\nc');
    expect(t('a\nb\n', 5)).toBe('a\nb\n');
    expect(t('a\nb\n', 0)).toBe('');
    expect(t('a\nb\n', -1)).toBe('a\nb\n');
  });
});
