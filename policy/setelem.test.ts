// The netlink encoding of set elements, byte for byte as `nft --debug=netlink` shows nft's own
// (the kernel test loads them and compares the table with a full load), and the writer's batch
// protocol against a fake socket (policy/test/setelem.test.ts runs it on a real kernel).
import { EventEmitter } from 'node:events';
import type { RawNetlinkSocket } from 'netlink';
import { describe, expect, it } from 'vitest';
import { nlmsg, nlmsgs } from '../common/netlink/attrs.js';
import { bigintToBytes, ipToBigint } from '../common/ipaddr.js';
import { timedChanges } from './fqdn.js';
import { parseCidr } from './ipnet.js';
import { addressShape, elementMessages, encodeKeys, keyShape, netlinkElements } from './setelem.js';
import { parseCommands } from './nlcommands.js';

const hex = (ks: { key: Buffer; end: boolean; keyEnd?: Buffer }[]): string[] => ks.map((k) => `${k.key.toString('hex')}${k.keyEnd ? ` - ${k.keyEnd.toString('hex')}` : ''}${k.end ? ' end' : ''}`);

describe('set elements over netlink', () => {
  it('reads the shape of every set render.ts declares, and refuses others', () => {
    expect(keyShape('type ipv4_addr ;')).toEqual({ family: 4, concat: false, interval: false, verdict: false });
    expect(keyShape('type ipv6_addr ; flags interval ;')).toEqual({ family: 6, concat: false, interval: true, verdict: false });
    expect(keyShape('type ipv4_addr : verdict ;')).toEqual({ family: 4, concat: false, interval: false, verdict: true });
    expect(keyShape('type ipv6_addr . inet_proto . inet_service ;')).toEqual({ family: 6, concat: true, interval: false, verdict: false });
    expect(keyShape('type inet_proto . inet_service ; flags interval ;')).toEqual({ ports: true });
    // Domain sets are filled by the DNS server, never here.
    expect(keyShape('type ipv4_addr ; flags timeout ;')).toBeUndefined();
  });

  it('encodes addresses, concatenations (fields padded to 4 bytes) and CIDRs as start and end', () => {
    expect(hex(encodeKeys(keyShape('type ipv4_addr ;')!, '10.244.1.12'))).toEqual(['0af4010c']);
    expect(hex(encodeKeys(keyShape('type ipv6_addr ;')!, 'fd00::3'))).toEqual(['fd000000000000000000000000000003']);
    expect(hex(encodeKeys(keyShape('type ipv4_addr . inet_proto . inet_service ;')!, '10.0.0.1 . udp . 53'))).toEqual(['0a000001' + '11000000' + '00350000']);
    const iv = keyShape('type ipv4_addr ; flags interval ;')!;
    expect(hex(encodeKeys(iv, '10.0.0.128/26'))).toEqual(['0a000080', '0a0000c0 end']);
    expect(hex(encodeKeys(iv, '10.0.0.7'))).toEqual(['0a000007', '0a000008 end']);
    // A range up to the last address has no end element.
    expect(hex(encodeKeys(iv, '128.0.0.0/1'))).toEqual(['80000000']);
    expect(() => encodeKeys(keyShape('type ipv4_addr . inet_proto . inet_service ;')!, '10.0.0.1 . icmp . 1')).toThrow(/cannot encode/);
  });

  it('encodes IPv4 keys without bigints exactly as the general path does, and refuses what it refuses', () => {
    const iv = keyShape('type ipv4_addr ; flags interval ;')!;
    const plain = keyShape('type ipv4_addr ;')!;
    const ref = (key: string): string[] => {
      const c = parseCidr(key.includes('/') ? key : `${key}/32`)!;
      const next = c.hi + 1n;
      return next >> 32n ? [bigintToBytes(c.lo, 4).toString('hex')] : [bigintToBytes(c.lo, 4).toString('hex'), `${bigintToBytes(next, 4).toString('hex')} end`];
    };
    let x = 12345;
    const rnd = (n: number): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), x % n);
    for (let i = 0; i < 500; i++) {
      const ip = [rnd(256), rnd(256), rnd(256), rnd(256)].join('.');
      const key = i % 3 === 0 ? ip : `${ip}/${rnd(33)}`;
      expect(hex(encodeKeys(iv, key))).toEqual(ref(key));
      if (i % 3 === 0) expect(hex(encodeKeys(plain, ip))).toEqual([bigintToBytes(ipToBigint(ip), 4).toString('hex')]);
    }
    expect(hex(encodeKeys(iv, '0.0.0.0/0'))).toEqual(['00000000']);
    expect(hex(encodeKeys(iv, '255.255.255.255'))).toEqual(['ffffffff']);
    for (const bad of ['10.0.0.256', '010.0.0.1', '10.0.0.1/33', 'fd00::1', '10.0.0']) expect(() => encodeKeys(iv, bad)).toThrow(/cannot encode/);
    for (const bad of ['10.0.0.256', '010.0.0.1', 'fd00::1']) expect(() => encodeKeys(plain, bad)).toThrow(/cannot encode/);
  });

  it('encodes the ports of a rule as one element with an inclusive KEY_END, as nft does for a concatenation with intervals', () => {
    // nft --debug=netlink: element 00000006 00005000  - 00000006 00005000 (words as the host prints them)
    const ports = keyShape('type inet_proto . inet_service ; flags interval ;')!;
    expect(hex(encodeKeys(ports, 'tcp . 80'))).toEqual(['0600000000500000 - 0600000000500000']);
    expect(hex(encodeKeys(ports, 'tcp . 1000-2000'))).toEqual(['0600000003e80000 - 0600000007d00000']);
    expect(hex(encodeKeys(ports, 'udp . 0-65535'))).toEqual(['1100000000000000 - 11000000ffff0000']);
    for (const bad of ['icmp . 1', 'tcp . 70000', 'tcp . 20-10', 'tcp', 'tcp . ']) expect(() => encodeKeys(ports, bad)).toThrow(/cannot encode/);
    const [msg] = elementMessages('skiff-policy', [{ verb: 'add', set: 's.x.p.in0.ports', key: 'sctp . 9000', value: '' }], () => ports, () => 1);
    // NFTA_SET_ELEM_KEY_END (10), nested NFTA_DATA_VALUE: the same 8 bytes as the key.
    const end = Buffer.concat([Buffer.from([16, 0, 10, 0x80, 12, 0, 1, 0]), Buffer.from('8400000023280000', 'hex')]);
    expect(msg!.includes(end)).toBe(true);
  });

  it('groups consecutive changes of one set and verb into one message, with a jump verdict for map additions', () => {
    let seq = 100;
    const shapes = (s: string) => keyShape(s === 'ingress4' ? 'type ipv4_addr : verdict ;' : 'type ipv4_addr ;');
    const msgs = elementMessages(
      'skiff-policy',
      [
        { verb: 'delete', set: 's.x.p.in0.pods4', key: '10.0.0.1', value: '' },
        { verb: 'delete', set: 's.x.p.in0.pods4', key: '10.0.0.2', value: '' },
        { verb: 'add', set: 'ingress4', key: '10.0.0.3', value: 'jump in.x.a' },
      ],
      shapes,
      () => seq++,
    );
    expect(msgs).toHaveLength(2);
    // nlmsghdr: type NFT_MSG_DELSETELEM (14) of subsystem 10, then NFT_MSG_NEWSETELEM (12) with
    // NLM_F_CREATE; both ask for an ack (NLM_F_ACK), as nft's do.
    expect(msgs[0]!.readUInt16LE(4)).toBe((10 << 8) | 14);
    expect(msgs[0]!.readUInt16LE(6)).toBe(0x5);
    expect(msgs[1]!.readUInt16LE(4)).toBe((10 << 8) | 12);
    expect(msgs[1]!.readUInt16LE(6)).toBe(0x405);
    expect([msgs[0]!.readUInt32LE(8), msgs[1]!.readUInt32LE(8)]).toEqual([100, 101]);
    expect(msgs[0]!.readUInt32LE(0)).toBe(msgs[0]!.length);
    expect(msgs[1]!.includes(Buffer.from('in.x.a\0'))).toBe(true);
    expect(msgs[1]!.includes(Buffer.from([0xff, 0xff, 0xff, 0xfd]))).toBe(true);
    expect(() => elementMessages('t', [{ verb: 'add', set: 'unknown', key: '1.2.3.4', value: '' }], () => undefined, () => 1)).toThrow(/unknown/);
  });

  it('encodes FQDN addresses as the kernel keys them, and refuses the other family', () => {
    const key = (f: 4 | 6, ip: string): string => encodeKeys(addressShape(f), ip)[0]!.key.toString('hex');
    expect(key(4, '192.0.2.1')).toBe('c0000201');
    expect(key(6, '2001:db8::1')).toBe('20010db8000000000000000000000001');
    expect(key(6, '::')).toBe('0'.repeat(32));
    expect(key(6, 'fe80::1:2')).toBe('fe800000000000000000000000010002');
    expect(key(6, '::ffff:192.0.2.1')).toBe('00000000000000000000ffffc0000201');
    expect(key(6, '2001:db8:1:2:3:4:5:6')).toBe('20010db8000100020003000400050006');
    expect(() => key(4, '2001:db8::1')).toThrow(/cannot encode/);
    expect(() => key(6, '192.0.2.1')).toThrow(/cannot encode/);
  });

  it('writes timed elements as one NEWSETELEM per set, with the timeout in milliseconds', () => {
    const { changes, shapes } = timedChanges([{ set: 'a', ip: '192.0.2.1', timeoutS: 30 }, { set: 'b', ip: '2001:db8::1', timeoutS: 5 }, { set: 'a', ip: '192.0.2.2', timeoutS: 30 }]);
    let seq = 101;
    const msgs = elementMessages('skiff-policy', changes, shapes, () => seq++);
    expect(msgs.map((m) => m.readUInt32LE(8))).toEqual([101, 102]);
    expect(msgs.map((m) => m.readUInt16LE(4))).toEqual([0x0a0c, 0x0a0c]);
    // NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, never EXCL: an existing element takes the new timeout.
    expect(msgs[0]!.readUInt16LE(6)).toBe(0x405);
    expect(msgs[0]!.includes(Buffer.from('skiff-policy\0'))).toBe(true);
    expect(msgs[0]!.includes(Buffer.from([0xc0, 0, 2, 2]))).toBe(true);
    const ms = Buffer.alloc(8);
    ms.writeBigUInt64BE(5000n);
    expect(msgs[1]!.includes(ms)).toBe(true);
  });
});

/** A socket that answers each batch as `reply` says: per message, an errno (0: ack) or nothing. */
function fakeSocket(reply: (m: { type: number; seq: number; flags: number }) => number | undefined) {
  const sent: Buffer[] = [];
  const s = Object.assign(new EventEmitter(), {
    closed: false,
    send(buf: Buffer, _o: unknown, cb: (e?: Error) => void) {
      sent.push(buf);
      const answers: Buffer[] = [];
      for (const m of nlmsgs(buf)) {
        const errno = reply(m);
        if (errno === undefined) continue;
        const body = Buffer.alloc(20);
        body.writeInt32LE(-errno, 0);
        answers.push(nlmsg(2, 0, m.seq, body));
      }
      cb();
      if (answers.length > 0) setImmediate(() => s.emit('message', Buffer.concat(answers)));
    },
    close() {
      s.closed = true;
    },
    unref() {},
  });
  return { s, sent, open: () => s as unknown as RawNetlinkSocket };
}

describe('element writer', () => {
  const v4 = () => keyShape('type ipv4_addr ;');
  const change = (set: string) => ({ verb: 'add' as const, set, key: '10.0.0.1', value: '' });
  // As the kernel: element messages (type 0x0a0c) that ask (NLM_F_ACK) are acked; errors answer always.
  const acks = (m: { type: number; flags: number }) => (m.type === 0x0a0c && m.flags & 4 ? 0 : undefined);

  it('sends begin, the messages, end in one datagram and resolves on the last ack', async () => {
    const f = fakeSocket(acks);
    const w = netlinkElements(f.open);
    await w.write('t', [change('a'), change('b')], v4);
    expect(f.sent).toHaveLength(1);
    expect([...nlmsgs(f.sent[0]!)].map((m) => m.type)).toEqual([0x10, 0x0a0c, 0x0a0c, 0x11]);
    // Only the last message asks for an ack: one answer per batch.
    expect([...nlmsgs(f.sent[0]!)].map((m) => m.flags & 4)).toEqual([0, 0, 4, 0]);
  });

  it("rejects at once with the kernel's errno: on an element message, on BEGIN or END; the socket stays", async () => {
    const f = fakeSocket((m) => (m.type === 0x0a0c ? (m.seq % 2 ? 2 : m.flags & 4 ? 0 : undefined) : undefined));
    const w = netlinkElements(f.open);
    const seen = await w.write('t', [change('a'), change('b')], v4).catch((e: Error & { code?: string; errno?: number }) => e);
    expect(seen).toMatchObject({ code: 'ERR_POLICY_ELEMENTS', errno: 2 });
    expect((seen as Error).message).toMatch(/refused a batch: errno 2 \(ENOENT\) at message [12] of 2/);
    const g = fakeSocket((m) => (m.type === 0x10 ? 1 : acks(m)));
    await expect(netlinkElements(g.open, { timeoutMs: 60_000 }).write('t', [change('a')], v4)).rejects.toThrow(/errno 1 \(EPERM\) at its begin/);
    const h = fakeSocket((m) => (m.type === 0x11 ? 22 : undefined));
    await expect(netlinkElements(h.open, { timeoutMs: 60_000 }).write('t', [change('a')], v4)).rejects.toThrow(/EINVAL\) at its end/);
    expect([f.s.closed, g.s.closed, h.s.closed]).toEqual([false, false, false]);
  });

  it('names a set the same batch creates by its batch-local id, any other set by name', async () => {
    const f = fakeSocket(acks);
    const commands = parseCommands('t', ['add set inet t fresh { type ipv4_addr ; }'])!;
    await netlinkElements(f.open).write('t', [change('fresh'), change('old')], v4, commands);
    const [, newset, fresh, old] = [...nlmsgs(f.sent[0]!)];
    expect(newset!.type).toBe(0x0a09);
    // NFTA_SET_ELEM_LIST_SET_ID (4) = the NEWSET's NFTA_SET_ID (1), and no name.
    expect(fresh!.data.includes(Buffer.from('0800040000000001', 'hex'))).toBe(true);
    expect(fresh!.data.includes(Buffer.from('fresh\0'))).toBe(false);
    expect(old!.data.includes(Buffer.from('old\0'))).toBe(true);
  });

  it('refuses what it cannot encode before sending anything', async () => {
    const f = fakeSocket(acks);
    await expect(netlinkElements(f.open).write('t', [change('unknown')], () => undefined)).rejects.toThrow(/unknown/);
    expect(f.sent).toHaveLength(0);
  });

  it('closes a socket the kernel does not answer on, and opens a new one for the next write', async () => {
    const silent = fakeSocket(() => undefined);
    const good = fakeSocket(acks);
    let n = 0;
    const w = netlinkElements(() => (n++ === 0 ? silent.open() : good.open()), { timeoutMs: 50 });
    await expect(w.write('t', [change('a')], v4)).rejects.toThrow(/no answer within 50 ms/);
    expect(silent.s.closed).toBe(true);
    await w.write('t', [change('a')], v4);
    expect(good.sent).toHaveLength(1);
  });
});
