// ctnetlink encoding and parsing without a kernel: dump entries as the kernel sends them (built here
// from the attribute layout), the delete request read back attribute by attribute, and the fallback
// to conntrack(8) when the dump is refused. The kernel's side is in test/ctnetlink.test.ts.
import { describe, expect, it } from 'vitest';
import { be32, nest, nla, nlattrs, nlmsgs } from '../common/netlink/attrs.js';
import { nfmsg } from '../common/nft/batch.js';
import { withFallback, type ConntrackTable, type Flow } from './conntrack.js';
import { deleteRequest, dumpRequest, parseEntry } from './ctnetlink.js';

const CT_NEW = (1 << 8) | 0;
const be16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const v4 = (ip: string) => Buffer.from(ip.split('.').map(Number));
const v6 = (hex: string) => Buffer.from(hex, 'hex');

function tuple(src: Buffer, dst: Buffer, proto: number, sport: number, dport: number): Buffer[] {
  const six = src.length === 16;
  return [nest(1, nla(six ? 3 : 1, src), nla(six ? 4 : 2, dst)), nest(2, nla(1, Buffer.from([proto])), nla(2, be16(sport)), nla(3, be16(dport)))];
}

/** An entry as the kernel dumps it: nfgenmsg, tuples, status, TCP state, id, zone. */
function entry(o: { src: Buffer; dst: Buffer; proto: number; sport: number; dport: number; replySrc?: Buffer; replySport?: number; tcpState?: number; id?: number; zone?: number }): Buffer {
  const msg = nfmsg(CT_NEW, 2, 7, o.src.length === 16 ? 10 : 2, 0,
    nest(1, ...tuple(o.src, o.dst, o.proto, o.sport, o.dport)),
    nest(2, ...tuple(o.replySrc ?? o.dst, o.src, o.proto, o.replySport ?? o.dport, o.sport)),
    nla(3, be32(0x18e)),
    ...(o.tcpState !== undefined ? [nest(4, nest(1, nla(1, Buffer.from([o.tcpState])), nla(2, Buffer.from([7]))))] : []),
    nla(12, be32(o.id ?? 1234)),
    ...(o.zone !== undefined ? [nla(18, be16(o.zone))] : []));
  const m = [...nlmsgs(msg)][0]!;
  return m.data;
}

describe('ctnetlink', () => {
  it('asks for every family in one dump', () => {
    const [m] = [...nlmsgs(dumpRequest(42))];
    expect(m).toMatchObject({ type: (1 << 8) | 1, flags: 0x301, seq: 42 });
    expect([...m!.data]).toEqual([0, 0, 0, 0]);
  });

  it('reads IPv4 and IPv6 entries after DNAT, with id and zone; skips TCP that is over, ICMP and garbage', () => {
    // A client reached a Service address; the reply comes from the endpoint pod.
    const dnat = parseEntry(CT_NEW, entry({ src: v4('10.244.8.9'), dst: v4('10.96.0.20'), proto: 6, sport: 40001, dport: 8080, replySrc: v4('10.244.7.3'), replySport: 80, tcpState: 3, id: 99, zone: 5 }));
    expect(dnat).toEqual({ protocol: 'TCP', family: 4, orig: { src: '10.244.8.9', dst: '10.96.0.20', sport: 40001, dport: 8080 }, reply: { src: '10.244.7.3', dst: '10.244.8.9', sport: 80, dport: 40001 }, id: 99, zone: 5 });
    const six = parseEntry(CT_NEW, entry({ src: v6('fd000000000000000000000000000002'), dst: v6('fd000000000000000000000000000003'), proto: 17, sport: 5353, dport: 53 }));
    expect(six).toMatchObject({ protocol: 'UDP', family: 6, orig: { src: 'fd00::2', dst: 'fd00::3' }, reply: { src: 'fd00::3', sport: 53 } });
    expect(six!.zone).toBeUndefined();
    expect(parseEntry(CT_NEW, entry({ src: v4('10.0.0.1'), dst: v4('10.0.0.2'), proto: 132, sport: 1, dport: 2 }))?.protocol).toBe('SCTP');
    for (const state of [7, 8]) expect(parseEntry(CT_NEW, entry({ src: v4('10.0.0.1'), dst: v4('10.0.0.2'), proto: 6, sport: 1, dport: 2, tcpState: state }))).toBeUndefined();
    expect(parseEntry(CT_NEW, entry({ src: v4('10.0.0.1'), dst: v4('10.0.0.2'), proto: 1, sport: 1, dport: 2 }))).toBeUndefined();
    expect(parseEntry(3, Buffer.alloc(4))).toBeUndefined();
    expect(parseEntry(CT_NEW, Buffer.from([2, 0, 0, 0, 200, 0, 1, 0]))).toBeUndefined();
    // A tuple without ports (truncated) is unreadable, not a flow on port 0.
    const short = nfmsg(CT_NEW, 2, 1, 2, 0, nest(1, nest(1, nla(1, v4('10.0.0.1')), nla(2, v4('10.0.0.2'))), nest(2, nla(1, Buffer.from([6])))), nest(2, ...tuple(v4('10.0.0.2'), v4('10.0.0.1'), 6, 2, 1)));
    expect(parseEntry(CT_NEW, [...nlmsgs(short)][0]!.data)).toBeUndefined();
  });

  it('deletes by original tuple, zone and id, in the flow family', () => {
    const f: Flow = { protocol: 'TCP', family: 6, orig: { src: 'fd00::4', dst: 'fd00::3', sport: 40003, dport: 81 }, reply: { src: 'fd00::3', dst: 'fd00::4', sport: 81, dport: 40003 }, id: 0xdeadbeef, zone: 5 };
    const [m] = [...nlmsgs(deleteRequest(f, 9))];
    expect(m).toMatchObject({ type: (1 << 8) | 2, flags: 0x5, seq: 9 });
    expect(m!.data[0]).toBe(10);
    const top = [...nlattrs(m!.data, 4)];
    expect(top.map((a) => a.type)).toEqual([1, 18, 12]);
    const [ip, proto] = [...nlattrs(top[0]!.payload)];
    expect([...nlattrs(ip!.payload)].map((a) => [a.type, a.payload.toString('hex')])).toEqual([[3, 'fd000000000000000000000000000004'], [4, 'fd000000000000000000000000000003']]);
    expect([...nlattrs(proto!.payload)].map((a) => [a.type, a.payload.toString('hex')])).toEqual([[1, '06'], [2, '9c43'], [3, '0051']]);
    expect(top[1]!.payload.readUInt16BE(0)).toBe(5);
    expect(top[2]!.payload.readUInt32BE(0)).toBe(0xdeadbeef);
    // A flow parsed from conntrack(8) text carries neither: zone 0, any id.
    const plain = [...nlattrs([...nlmsgs(deleteRequest({ ...f, family: 4, protocol: 'UDP', orig: { src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 }, id: undefined, zone: undefined }, 1))][0]!.data, 4)];
    expect(plain.map((a) => a.type)).toEqual([1]);
    expect(() => deleteRequest({ ...f, family: 4 }, 1)).toThrow(/not IPv4/);
  });

  it('falls back to conntrack(8): for good when the dump is refused, for one cut after a timeout', async () => {
    const flow: Flow = { protocol: 'TCP', family: 4, orig: { src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 }, reply: { src: '10.0.0.2', dst: '10.0.0.1', sport: 2, dport: 1 } };
    const calls: string[] = [];
    const table = (name: string, fail?: () => Error): ConntrackTable => ({
      async list() {
        calls.push(`${name} list`);
        const e = fail?.();
        if (e) throw e;
        return [flow];
      },
      async delete(flows) {
        calls.push(`${name} delete ${flows.length}`);
        return flows.length;
      },
    });
    let failure: Error | undefined = new Error('no answer within 2000 ms');
    const told: boolean[] = [];
    const ct = withFallback(table('nl', () => failure!), table('exec'), (_e, forGood) => told.push(forGood));
    const cut = async () => ct.delete(await ct.list());
    await cut();
    failure = Object.assign(new Error('refused: EOPNOTSUPP'), { code: 'ERR_POLICY_CONNTRACK' });
    await cut();
    failure = undefined;
    await cut();
    expect(calls).toEqual(['nl list', 'exec list', 'exec delete 1', 'nl list', 'exec list', 'exec delete 1', 'exec list', 'exec delete 1']);
    expect(told).toEqual([false, true]);
    // Working netlink is used for both halves.
    const ok = withFallback(table('nl2'), table('exec2'), () => told.push(true));
    await ok.delete(await ok.list());
    expect(calls.slice(-2)).toEqual(['nl2 list', 'nl2 delete 1']);
  });
});
