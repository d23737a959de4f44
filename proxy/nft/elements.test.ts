import { describe, expect, it } from 'vitest';
import { nlattrs, nlmsgs } from '../../common/netlink/attrs.js';
import { coalesce } from '../../common/nft/batch.js';
import { chunkMessages, codecOf } from './elements.js';

/** The elements of NEWSETELEM messages: key and value payloads as hex, or the verdict. */
function decode(msgs: Buffer[]): { set: string; elements: string[] }[] {
  const out: { set: string; elements: string[] }[] = [];
  for (const m of nlmsgs(Buffer.concat(msgs))) {
    if ((m.type & 0xff) !== 12) continue;
    let set = '';
    const elements: string[] = [];
    for (const a of nlattrs(m.data, 4)) {
      if (a.type === 2) set = a.payload.toString('latin1', 0, a.payload.length - 1);
      if (a.type !== 3) continue;
      for (const el of nlattrs(a.payload)) {
        const parts: string[] = [];
        for (const f of nlattrs(el.payload)) {
          const inner = [...nlattrs(f.payload)][0]!;
          if (inner.type === 1) parts.push(inner.payload.toString('hex'));
          else {
            const v = [...nlattrs(inner.payload)];
            parts.push(`verdict ${v[0]!.payload.readInt32BE(0)}${v[1] ? ` ${v[1].payload.toString('latin1', 0, v[1].payload.length - 1)}` : ''}`);
          }
        }
        elements.push(parts.join(' : '));
      }
    }
    out.push({ set, elements });
  }
  return out;
}

const encode = (decl: string, items: string[], targets: string[] = []): Buffer[] => {
  let seq = 0;
  return chunkMessages('ip skiff', { targets, items: new Map([['s', items]]) }, () => codecOf(decl), () => ++seq);
};

describe('codecOf', () => {
  it('reads the declarations render.ts writes', () => {
    expect(codecOf('type mark : ipv4_addr ;')).toEqual({ key: ['u32'], data: ['ipv4_addr'] });
    expect(codecOf('type ipv6_addr . inet_proto . inet_service : verdict ;')).toEqual({ key: ['ipv6_addr', 'inet_proto', 'inet_service'], data: 'verdict' });
    expect(codecOf('typeof numgen random mod 2 : verdict ;')).toEqual({ key: ['u32'], data: 'verdict' });
    expect(codecOf('type ipv4_addr . ipv4_addr ;')).toEqual({ key: ['ipv4_addr', 'ipv4_addr'], data: undefined });
  });

  it('leaves intervals, timeouts and unknown types to nft', () => {
    expect(codecOf('type ipv4_addr ; flags interval ; auto-merge ;')).toBeUndefined();
    expect(codecOf('type ipv4_addr : mark ; flags dynamic,timeout ; timeout 60s ;')).toBeUndefined();
    expect(codecOf('type ether_addr ;')).toBeUndefined();
  });
});

describe('chunkMessages', () => {
  // The bytes `nft --debug=netlink` shows for the same elements (kernel 6.18, nft 1.0.6).
  it('encodes as nft does: marks in host order, a lone port at 2 bytes, concatenations padded', () => {
    expect(decode(encode('type mark : ipv4_addr ;', ['98305', '10.1.2.3']))[0]!.elements).toEqual(['01800100 : 0a010203']);
    expect(decode(encode('type mark : inet_service ;', ['98304', '8080']))[0]!.elements).toEqual(['00800100 : 1f90']);
    expect(decode(encode('type mark : ipv4_addr . inet_service ;', ['98306', '10.1.2.3 . 8080']))[0]!.elements).toEqual(['02800100 : 0a0102031f900000']);
    expect(decode(encode('type inet_proto . inet_service : mark ;', ['tcp . 30080', '98304']))[0]!.elements).toEqual(['0600000075800000 : 00800100']);
    expect(decode(encode('type ipv4_addr . ipv4_addr ;', ['10.1.2.3 . 10.1.2.3', '']))[0]!.elements).toEqual(['0a0102030a010203']);
    expect(decode(encode('type ipv6_addr ;', ['fd00::1', '']))[0]!.elements).toEqual(['fd000000000000000000000000000001']);
  });

  it('writes a key held once into each field of a `twice` set, the same bytes as the key written out', () => {
    let seq = 0;
    const twice = (items: string[], deletes: string[] = []): Buffer[] =>
      chunkMessages('ip6 skiff', { targets: [], deletes: new Map([['h', deletes]]), items: new Map([['h', items]]), twice: new Set(['h']) }, () => codecOf('type ipv6_addr . ipv6_addr ;'), () => ++seq);
    const written = (items: string[]): Buffer[] => chunkMessages('ip6 skiff', { targets: [], items: new Map([['h', items]]) }, () => codecOf('type ipv6_addr . ipv6_addr ;'), () => ++seq);
    expect(decode(twice(['fd00::5', '']))).toEqual(decode(written(['fd00::5 . fd00::5', ''])));
    expect(decode(twice(['fd00::5', '']))[0]!.elements).toEqual(['fd000000000000000000000000000005'.repeat(2)]);
    const v4 = chunkMessages('ip skiff', { targets: [], items: new Map([['h', ['10.1.2.3', '']]]), twice: new Set(['h']) }, () => codecOf('type ipv4_addr . ipv4_addr ;'), () => ++seq);
    expect(decode(v4)[0]!.elements).toEqual(['0a0102030a010203']);
    // A deletion carries its key the same way (DELSETELEM, type 14).
    const del = twice([], ['fd00::5']).find((m) => (m.readUInt16LE(4) & 0xff) === 14)!;
    expect(del.includes(Buffer.from('fd000000000000000000000000000005'.repeat(2), 'hex'))).toBe(true);
    expect(() => chunkMessages('ip skiff', { targets: [], items: new Map([['h', ['10.1.2.3 . 10.1.2.3', '']]]), twice: new Set(['h']) }, () => codecOf('type ipv4_addr . ipv4_addr ;'), () => ++seq)).toThrow(/cannot encode/);
  });

  it('takes a mark key as a number, with the bytes of its decimal text, and only for a lone mark', () => {
    let seq = 0;
    const asNumber = chunkMessages('ip skiff', { targets: [], items: new Map([['s', [98305, '10.1.2.3', 0xffffffff, '10.1.2.4']]]) }, () => codecOf('type mark : ipv4_addr ;'), () => ++seq);
    expect(decode(asNumber)).toEqual(decode(encode('type mark : ipv4_addr ;', ['98305', '10.1.2.3', '4294967295', '10.1.2.4'])));
    expect(() => chunkMessages('ip skiff', { targets: [], items: new Map([['s', [1, '10.1.2.3']]]) }, () => codecOf('type ipv4_addr : mark ;'), () => ++seq)).toThrow(/cannot encode element 1/);
    expect(() => chunkMessages('ip skiff', { targets: [], items: new Map([['s', [2 ** 32, '10.1.2.3']]]) }, () => codecOf('type mark : ipv4_addr ;'), () => ++seq)).toThrow(/cannot encode element 4294967296/);
  });

  it('encodes verdicts with their chain, and creates the chains they jump to first', () => {
    const msgs = encode('type ipv4_addr . inet_proto . inet_service : verdict ;', ['10.96.0.1 . tcp . 80', 'goto c', '10.96.0.2 . udp . 53', 'drop'], ['c']);
    expect(msgs[0]!.readUInt16LE(4)).toBe((10 << 8) | 3);
    expect(decode(msgs)[0]!.elements).toEqual(['0a60000106000000' + '00500000 : verdict -4 c', '0a60000211000000' + '00350000 : verdict 0']);
  });

  it('puts at most 500 elements in a message', () => {
    const items = Array.from({ length: 1201 }, (_, i) => [String(i), `10.0.${i >> 8}.${i & 255}`]).flat();
    expect(decode(encode('type mark : ipv4_addr ;', items)).map((m) => m.elements.length)).toEqual([500, 500, 201]);
  });

  it('hands the messages out side by side in few buffers, so the batch copies them once; each one intact', () => {
    const items: string[] = [];
    // Enough to outgrow the first buffer a few times: earlier messages keep the buffer they were written in.
    for (let i = 0; i < 20_000; i++) items.push(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255} . tcp . 80`, 'jump svc-x');
    const msgs = encode('type ipv4_addr . inet_proto . inet_service : verdict ;', items, ['svc-x']);
    expect(msgs.length).toBeGreaterThan(40);
    const pieces = coalesce(msgs);
    expect(pieces.length).toBeLessThanOrEqual(8);
    expect(Buffer.concat(pieces).equals(Buffer.concat(msgs.map((m) => Buffer.from(m))))).toBe(true);
    const all = decode(msgs).flatMap((m) => m.elements);
    expect(all).toHaveLength(20_000);
    expect(all[19_999]).toBe('0a004e1f0600000000500000 : verdict -3 svc-x');
    // Each message's header length covers exactly its view.
    for (const m of msgs) expect(m.readUInt32LE(0)).toBe(m.length);
  });

  it('reads forms beside plain decimals the same way (the general path behind the fast one)', () => {
    expect(decode(encode('type mark : inet_service ;', ['0x18000', ' 8080 ']))[0]!.elements).toEqual(['00800100 : 1f90']);
    expect(decode(encode('type mark : ipv4_addr ;', ['98305', '010.1.2.03']))[0]!.elements).toEqual(['01800100 : 0a010203']);
    expect(decode(encode('type mark : ipv4_addr ;', ['4294967295', '255.255.255.255']))[0]!.elements).toEqual(['ffffffff : ffffffff']);
  });

  it('refuses a concatenation with too few or too many fields', () => {
    expect(() => encode('type mark : ipv4_addr . inet_service ;', ['1', '10.1.2.3'])).toThrow(/cannot encode element 10\.1\.2\.3/);
    expect(() => encode('type mark : ipv4_addr . inet_service ;', ['1', '10.1.2.3 . 80 . 81'])).toThrow(/cannot encode element/);
    expect(() => encode('type mark : ipv4_addr ;', ['4294967296', '10.1.2.3'])).toThrow(/cannot encode element 4294967296/);
    expect(() => encode('type mark : ipv4_addr ;', ['1', '10.1.2'])).toThrow(/cannot encode element 10\.1\.2/);
    expect(() => encode('type mark : ipv4_addr ;', ['1', '10..1.2'])).toThrow(/cannot encode/);
  });

  it('refuses what it cannot encode, before anything is sent', () => {
    expect(() => encode('type mark : ipv4_addr ;', ['1', '10.0.0.256'])).toThrow(/cannot encode element 10\.0\.0\.256/);
    expect(() => encode('type ipv4_addr . inet_proto . inet_service : verdict ;', ['10.0.0.1 . tcp . 80', 'goto'])).toThrow(/cannot encode map value goto/);
    expect(() => encode('type mark : inet_service ;', ['1', '70000'])).toThrow(/cannot encode/);
    let seq = 0;
    expect(() => chunkMessages('ip skiff', { targets: [], items: new Map([['s', ['1', '2']]]) }, () => undefined, () => ++seq)).toThrow(/set s: element encoding unknown/);
  });
});
