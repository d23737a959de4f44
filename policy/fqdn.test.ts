import { describe, expect, it } from 'vitest';
import { desiredState } from './desired.js';
import { cluster, cnp, podIP } from './fixtures.js';
import { FqdnFeed, elementsLine, fqdnTable, type FqdnTable } from './fqdn.js';
import { addressBytes, setElementBatch } from './nft-elements.js';
import { render } from './render.js';

const inX = { namespaces: { matchLabels: { ns: 'x' } } };
const FQDN = cnp('fqdn', 'Admin', 20, { subject: inX, egress: [{ action: 'Accept', to: [{ domainNames: ['*.example.com', 'example.org.'] }], protocols: [{ tcp: { destinationPort: { number: 443 } } }] }, { action: 'Deny', to: [{ networks: ['0.0.0.0/0'] }] }] });

describe('fqdnTable', () => {
  it('lists the fqdn sets of the admin policies that select each local pod, and nothing for the others', () => {
    const d = desiredState(cluster([], { admin: [FQDN] }), { nodeName: 'n1' });
    const t = fqdnTable(d, render(d, { families: [4, 6] }));
    expect(t.sets).toEqual({ 's.cnp.fqdn.eg0.fqdn4': { family: 4, patterns: ['*.example.com', 'example.org'] }, 's.cnp.fqdn.eg0.fqdn6': { family: 6, patterns: ['*.example.com', 'example.org'] } });
    // n1 holds a and c of every namespace; only x's are subjects. b lives on n2.
    expect(t.clients).toEqual({ [podIP('x', 'a')]: ['s.cnp.fqdn.eg0.fqdn4', 's.cnp.fqdn.eg0.fqdn6'], [podIP('x', 'c')]: ['s.cnp.fqdn.eg0.fqdn4', 's.cnp.fqdn.eg0.fqdn6'] });
  });

  it('is empty without domainNames peers', () => {
    const d = desiredState(cluster([], { admin: [cnp('plain', 'Admin', 1, { subject: inX, egress: [{ action: 'Deny', to: [{ networks: ['0.0.0.0/0'] }] }] })] }), { nodeName: 'n1' });
    expect(fqdnTable(d, render(d))).toEqual({ sets: {}, clients: {} });
  });
});

const TABLE: FqdnTable = { sets: { s4: { family: 4, patterns: ['a.example'] }, s6: { family: 6, patterns: ['a.example'] } }, clients: { '10.244.1.11': ['s4', 's6'] } };

function feed(o: { min?: number; max?: number; fail?: boolean } = {}) {
  const lines: string[] = [];
  let now = 1_000_000;
  const f = new FqdnFeed({
    write: async (els) => {
      if (o.fail) throw new Error('Error: No such file or directory');
      lines.push(elementsLine(els));
    },
    minTTL: o.min ?? 5,
    maxTTL: o.max ?? 3600,
    now: () => now,
  });
  f.publish(TABLE);
  return { f, lines, tick: (ms: number) => (now += ms) };
}

describe('FqdnFeed', () => {
  it('writes each address with the TTL bounded, in one transaction, and skips what is already allowed as long', async () => {
    const { f, lines, tick } = feed();
    await f.add([
      { set: 's4', ip: '192.0.2.1', ttl: 0 },
      { set: 's4', ip: '192.0.2.2', ttl: 99_999 },
      { set: 's6', ip: '2001:db8::1', ttl: 60 },
    ]);
    expect(lines).toEqual(['add element inet skiff-policy s4 { 192.0.2.1 timeout 5s }; add element inet skiff-policy s4 { 192.0.2.2 timeout 3600s }; add element inet skiff-policy s6 { 2001:db8::1 timeout 60s }']);
    // A repeated lookup within the allowance writes nothing; a longer one later extends it.
    await f.add([{ set: 's6', ip: '2001:db8::1', ttl: 60 }]);
    expect(lines).toHaveLength(1);
    tick(30_000);
    await f.add([{ set: 's6', ip: '2001:db8::1', ttl: 10 }]);
    expect(lines).toHaveLength(1);
    await f.add([{ set: 's6', ip: '2001:db8::1', ttl: 60 }]);
    expect(lines[1]).toBe('add element inet skiff-policy s6 { 2001:db8::1 timeout 60s }');
  });

  it('ignores unknown sets, wrong families and text that is not an address (nothing reaches nft)', async () => {
    const { f, lines } = feed();
    await f.add([
      { set: 'gone', ip: '192.0.2.1', ttl: 60 },
      { set: 's4', ip: '2001:db8::1', ttl: 60 },
      { set: 's4', ip: '1.2.3.4 }; flush ruleset; {', ttl: 60 },
    ]);
    expect(lines).toEqual([]);
  });

  it('rejects when the write fails', async () => {
    const { f } = feed({ fail: true });
    await expect(f.add([{ set: 's4', ip: '192.0.2.1', ttl: 60 }])).rejects.toThrow(/No such file/);
  });

  it('puts running allowances back after a full load, with their remaining time, and forgets expired ones', async () => {
    const { f, lines, tick } = feed();
    await f.add([{ set: 's4', ip: '192.0.2.1', ttl: 60 }, { set: 's4', ip: '192.0.2.2', ttl: 10 }]);
    tick(20_000);
    await f.restore();
    expect(lines[1]).toBe('add element inet skiff-policy s4 { 192.0.2.1 timeout 40s }');
  });

  it('tells subscribers the current table and real changes only; a removed set is forgotten', async () => {
    const { f, lines } = feed();
    const seen: FqdnTable[] = [];
    f.subscribe((t) => seen.push(t));
    f.publish(JSON.parse(JSON.stringify(TABLE)) as FqdnTable);
    expect(seen).toHaveLength(1);
    await f.add([{ set: 's4', ip: '192.0.2.1', ttl: 60 }]);
    f.publish({ sets: { s6: TABLE.sets.s6! }, clients: {} });
    expect(seen).toHaveLength(2);
    await f.restore();
    expect(lines).toHaveLength(1);
  });
});

describe('nf_tables set element messages', () => {
  it('encodes addresses as the kernel keys them', () => {
    expect(addressBytes('192.0.2.1').toString('hex')).toBe('c0000201');
    expect(addressBytes('2001:db8::1').toString('hex')).toBe('20010db8000000000000000000000001');
    expect(addressBytes('::').toString('hex')).toBe('0'.repeat(32));
    expect(addressBytes('fe80::1:2').toString('hex')).toBe('fe800000000000000000000000010002');
    expect(addressBytes('::ffff:192.0.2.1').toString('hex')).toBe('00000000000000000000ffffc0000201');
    expect(addressBytes('2001:db8:1:2:3:4:5:6').toString('hex')).toBe('20010db8000100020003000400050006');
  });

  it('is one batch: begin, one NEWSETELEM per set asking for an ack, end', () => {
    const { batch, seqs } = setElementBatch('skiff-policy', [{ set: 'a', ip: '192.0.2.1', timeoutS: 30 }, { set: 'b', ip: '2001:db8::1', timeoutS: 5 }, { set: 'a', ip: '192.0.2.2', timeoutS: 30 }], 100);
    expect(seqs).toEqual([101, 102]);
    expect(batch.map((m) => m.readUInt16LE(4))).toEqual([0x10, 0x0a0c, 0x0a0c, 0x11]);
    expect(batch.map((m) => m.readUInt32LE(0))).toEqual(batch.map((m) => m.length));
    // NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, never EXCL: an existing element takes the new timeout.
    expect(batch[1]!.readUInt16LE(6)).toBe(0x405);
    expect(batch[1]!.includes(Buffer.from('skiff-policy\0'))).toBe(true);
    expect(batch[1]!.includes(Buffer.from([0xc0, 0, 2, 2]))).toBe(true);
    // The timeout in milliseconds, big-endian.
    const ms = Buffer.alloc(8);
    ms.writeBigUInt64BE(5000n);
    expect(batch[2]!.includes(ms)).toBe(true);
  });
});
