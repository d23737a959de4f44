import { describe, expect, it } from 'vitest';
import { desiredState } from './desired.js';
import { cluster, cnp, podIP } from './fixtures.js';
import { FqdnFeed, elementsLine, fqdnTable, type FqdnTable } from './fqdn.js';
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
