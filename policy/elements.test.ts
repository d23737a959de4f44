// The netlink encoding of set elements, byte for byte as `nft --debug=netlink` shows nft's own
// (the kernel test loads them and compares the table with a full load).
import { describe, expect, it } from 'vitest';
import { elementMessages, encodeKeys, keyShape } from './elements.js';

const hex = (ks: { key: Buffer; end: boolean }[]): string[] => ks.map((k) => `${k.key.toString('hex')}${k.end ? ' end' : ''}`);

describe('set elements over netlink', () => {
  it('reads the shape of every set render.ts declares, and refuses others', () => {
    expect(keyShape('type ipv4_addr ;')).toEqual({ family: 4, concat: false, interval: false, verdict: false });
    expect(keyShape('type ipv6_addr ; flags interval ;')).toEqual({ family: 6, concat: false, interval: true, verdict: false });
    expect(keyShape('type ipv4_addr : verdict ;')).toEqual({ family: 4, concat: false, interval: false, verdict: true });
    expect(keyShape('type ipv6_addr . inet_proto . inet_service ;')).toEqual({ family: 6, concat: true, interval: false, verdict: false });
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
    // nlmsghdr: type NFT_MSG_DELSETELEM (14) of subsystem 10, then NFT_MSG_NEWSETELEM (12) with NLM_F_CREATE.
    expect(msgs[0]!.readUInt16LE(4)).toBe((10 << 8) | 14);
    expect(msgs[1]!.readUInt16LE(4)).toBe((10 << 8) | 12);
    expect(msgs[1]!.readUInt16LE(6)).toBe(0x401);
    expect([msgs[0]!.readUInt32LE(8), msgs[1]!.readUInt32LE(8)]).toEqual([100, 101]);
    expect(msgs[0]!.readUInt32LE(0)).toBe(msgs[0]!.length);
    expect(msgs[1]!.includes(Buffer.from('in.x.a\0'))).toBe(true);
    expect(msgs[1]!.includes(Buffer.from([0xff, 0xff, 0xff, 0xfd]))).toBe(true);
    expect(() => elementMessages('t', [{ verb: 'add', set: 'unknown', key: '1.2.3.4', value: '' }], () => undefined, () => 1)).toThrow(/unknown/);
  });
});
