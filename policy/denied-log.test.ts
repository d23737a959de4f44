// The denied-connection log without a kernel: the NFLOG bind request read back, packet messages
// as the kernel sends them (built here from nfnetlink_log.h's layout), and the log line naming both
// pods from the watch cache. The kernel's side is in test/kernel.test.ts ("policy.logDenied").
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { nla, nlattrs, nlmsg, nlmsgs } from '../common/netlink/attrs.js';
import { nfmsg, type OpenSocket } from '../common/nft/batch.js';
import { convert } from '../common/watch/convert.js';
import { MemoryCache } from '../common/watch/store.js';
import { bindRequest, logDeniedConnections, parsePacket } from './denied-log.js';

const PACKET = 4 << 8;

/** An NFULNL_MSG_PACKET body: nfgenmsg, then the prefix and the packet's first bytes. */
function packet(prefix: string | undefined, payload: Buffer): Buffer {
  const msg = nfmsg(PACKET, 0, 0, payload[0]! >> 4 === 6 ? 10 : 2, 2719, nla(1, Buffer.from([0x08, 0x00, 2, 0])), ...(prefix === undefined ? [] : [nla(10, Buffer.from(`${prefix}\0`))]), nla(9, payload));
  return [...nlmsgs(msg)][0]!.data;
}

function ipv4(proto: number, src: string, dst: string, l4: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + l4.length, 2);
  h[8] = 64;
  h[9] = proto;
  Buffer.from(src.split('.').map(Number)).copy(h, 12);
  Buffer.from(dst.split('.').map(Number)).copy(h, 16);
  return Buffer.concat([h, l4]);
}

function ipv6(proto: number, src: string, dst: string, l4: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(l4.length, 4);
  h[6] = proto;
  h[7] = 64;
  Buffer.from(src, 'hex').copy(h, 8);
  Buffer.from(dst, 'hex').copy(h, 24);
  return Buffer.concat([h, l4]);
}

const ports = (s: number, d: number): Buffer => Buffer.from([s >> 8, s & 0xff, d >> 8, d & 0xff, 0, 0, 0, 0]);

describe('denied-connection log', () => {
  it('binds the group with its number in res_id, copying headers only, delivering each packet at once', () => {
    const [m] = [...nlmsgs(bindRequest(2719, 9))];
    expect(m).toMatchObject({ type: (4 << 8) | 1, flags: 0x5, seq: 9 });
    expect([...m!.data.subarray(0, 4)]).toEqual([0, 0, 2719 >> 8, 2719 & 0xff]);
    const attrs = new Map([...nlattrs(m!.data, 4)].map((a) => [a.type, [...a.payload]]));
    expect(attrs.get(1)).toEqual([1]);
    expect(attrs.get(2)).toEqual([0, 0, 0, 80, 2, 0]);
    expect(attrs.get(5)).toEqual([0, 0, 0, 1]);
  });

  it('reads direction, addresses, protocol and ports; ICMP without ports; others\' prefixes and short packets are not ours', () => {
    expect(parsePacket(PACKET, packet('skiff-policy deny in: ', ipv4(6, '10.244.1.12', '10.244.1.11', ports(40000, 81))))).toEqual({ direction: 'ingress', src: '10.244.1.12', dst: '10.244.1.11', protocol: 'TCP', srcPort: 40000, dstPort: 81 });
    expect(parsePacket(PACKET, packet('skiff-policy deny out: ', ipv6(17, 'fd000000000000000000000000000012', 'fd000000000000000000000000000011', ports(5353, 53))))).toEqual({ direction: 'egress', src: 'fd00::12', dst: 'fd00::11', protocol: 'UDP', srcPort: 5353, dstPort: 53 });
    expect(parsePacket(PACKET, packet('skiff-policy deny in: ', ipv4(1, '10.0.0.1', '10.0.0.2', Buffer.from([8, 0, 0, 0]))))).toEqual({ direction: 'ingress', src: '10.0.0.1', dst: '10.0.0.2', protocol: 'ICMP' });
    expect(parsePacket(PACKET, packet('someone else: ', ipv4(6, '10.0.0.1', '10.0.0.2', ports(1, 2))))).toBeUndefined();
    expect(parsePacket(PACKET, packet(undefined, ipv4(6, '10.0.0.1', '10.0.0.2', ports(1, 2))))).toBeUndefined();
    expect(parsePacket(PACKET, packet('skiff-policy deny in: ', Buffer.from([0x45, 0, 0])))).toBeUndefined();
    // A TCP header cut before the ports: addresses, no ports.
    expect(parsePacket(PACKET, packet('skiff-policy deny in: ', ipv4(6, '10.0.0.1', '10.0.0.2', Buffer.from([1]))))).toEqual({ direction: 'ingress', src: '10.0.0.1', dst: '10.0.0.2', protocol: 'TCP' });
    expect(parsePacket(PACKET + 1, packet('skiff-policy deny in: ', ipv4(6, '10.0.0.1', '10.0.0.2', ports(1, 2))))).toBeUndefined();
  });

  /** A socket that acks the bind (errno 0, or the one given) and then delivers what `deliver` is handed. */
  function fakeSocket(errno = 0): { open: OpenSocket; deliver(body: Buffer): void; closed: () => boolean } {
    const s = new EventEmitter() as EventEmitter & { send: unknown; close: unknown; unref: unknown };
    let closed = false;
    s.send = (buf: Buffer, _o: unknown, cb: (e?: Error) => void) => {
      const [m] = [...nlmsgs(buf)];
      const ack = Buffer.alloc(4 + 16);
      ack.writeInt32LE(-errno, 0);
      setImmediate(() => s.emit('message', nlmsg(2, 0, m!.seq, ack)));
      cb();
    };
    s.close = () => void (closed = true);
    s.unref = () => undefined;
    return {
      open: (() => s) as unknown as OpenSocket,
      deliver: (body) => s.emit('message', nlmsg(PACKET, 0, 0, body)),
      closed: () => closed,
    };
  }

  it('logs one line naming the pods at both ends from the cache; an address no pod has stays bare', async () => {
    const cache = new MemoryCache();
    for (const [ns, name, ip] of [['x', 'a', '10.244.1.11'], ['x', 'b', '10.244.1.12']] as const) {
      const c = convert('policypods', { metadata: { namespace: ns, name }, spec: { nodeName: 'n1' }, status: { podIP: ip, podIPs: [{ ip }] } });
      cache.upsert('policypods', c.key, c.value as never);
    }
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    const sock = fakeSocket();
    const reader = await logDeniedConnections(cache, log, sock.open);
    sock.deliver(packet('skiff-policy deny in: ', ipv4(6, '10.244.1.12', '10.244.1.11', ports(40000, 81))));
    sock.deliver(packet('skiff-policy deny out: ', ipv4(17, '10.244.1.11', '192.0.2.7', ports(40001, 53))));
    expect(lines.map(({ direction, srcPod, dstPod, src, dst, protocol, dstPort, msg }) => ({ direction, srcPod, dstPod, src, dst, protocol, dstPort, msg }))).toEqual([
      { direction: 'ingress', srcPod: 'x/b', dstPod: 'x/a', src: '10.244.1.12', dst: '10.244.1.11', protocol: 'TCP', dstPort: 81, msg: 'policy denied a connection' },
      { direction: 'egress', srcPod: 'x/a', dstPod: undefined, src: '10.244.1.11', dst: '192.0.2.7', protocol: 'UDP', dstPort: 53, msg: 'policy denied a connection' },
    ]);
    reader.close();
    expect(sock.closed()).toBe(true);
  });

  it('a refused bind (the group taken in this namespace) rejects with the errno and closes the socket', async () => {
    const sock = fakeSocket(16);
    await expect(logDeniedConnections(new MemoryCache(), pino({ level: 'silent' }), sock.open)).rejects.toMatchObject({ code: 'ERR_POLICY_DENIED_LOG', errno: 16 });
    expect(sock.closed()).toBe(true);
  });
});
