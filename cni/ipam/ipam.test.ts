import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CniError } from '../spec/errors.js';
import { nextFree } from './allocator.js';
import { formatIP, parseIP, parseRange } from './ipnet.js';
import { IpamStore } from './store.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'skiffcni-ipam-'));
  dirs.push(d);
  return d;
}

describe('ipnet', () => {
  it.each(['10.244.1.7', '0.0.0.0', '255.255.255.255', 'fd00::1', '2001:db8::', '::', '2001:db8:0:1:0:0:0:1', 'fe80::1:2:3:4'])('round-trips %s', (ip) => {
    const p = parseIP(ip);
    expect(parseIP(formatIP(p.value, p.family))).toEqual(p);
  });
  it('compresses the longest zero run', () => {
    expect(formatIP(parseIP('2001:0db8:0000:0000:0001:0000:0000:0000').value, 6)).toBe('2001:db8:0:0:1::');
  });
  it('computes usable bounds', () => {
    const r = parseRange('10.244.1.9/24');
    expect(r.cidr).toBe('10.244.1.0/24');
    expect(formatIP(r.gateway, 4)).toBe('10.244.1.1');
    expect(formatIP(r.first, 4)).toBe('10.244.1.2');
    expect(formatIP(r.last, 4)).toBe('10.244.1.254');
  });
});

describe('nextFree', () => {
  const r = parseRange('10.0.0.0/29'); // .2 .. .6
  const v = (s: string) => parseIP(s).value;
  it('goes round-robin after the last reserved address', () => {
    expect(formatIP(nextFree(r, new Set(), undefined), 4)).toBe('10.0.0.2');
    expect(formatIP(nextFree(r, new Set(), v('10.0.0.3')), 4)).toBe('10.0.0.4');
    expect(formatIP(nextFree(r, new Set([v('10.0.0.2')]), v('10.0.0.6')), 4)).toBe('10.0.0.3');
  });
  it('fails clearly when exhausted', () => {
    const all = new Set(['2', '3', '4', '5', '6'].map((x) => v(`10.0.0.${x}`)));
    expect(() => nextFree(r, all, undefined)).toThrow(CniError);
    expect(() => nextFree(r, all, undefined)).toThrow(/no IP addresses available in range 10.0.0.0\/29/);
  });
  it('finds the hole in a huge IPv6 range quickly', () => {
    const r6 = parseRange('fd00::/64');
    expect(formatIP(nextFree(r6, new Set([r6.first]), undefined), 6)).toBe('fd00::3');
  });
});

describe('IpamStore', () => {
  it('allocates dual-stack, is idempotent per attachment, and releases', async () => {
    const s = new IpamStore(tmp(), 'net', ['10.1.0.0/24', 'fd10::/64']);
    const a = await s.allocate({ containerID: 'c1', ifname: 'eth0' });
    expect(a.map((x) => x.ip)).toEqual(['10.1.0.2', 'fd10::2']);
    const again = await s.allocate({ containerID: 'c1', ifname: 'eth0' });
    expect(again.map((x) => x.ip)).toEqual(['10.1.0.2', 'fd10::2']);
    const b = await s.allocate({ containerID: 'c2', ifname: 'eth0' });
    expect(b.map((x) => x.ip)).toEqual(['10.1.0.3', 'fd10::3']);
    expect((await s.release('c1', 'eth0')).length).toBe(2);
    expect(await s.release('c1', 'eth0')).toEqual([]);
    // Round-robin: the released .2 is not reused at once.
    const c = await s.allocate({ containerID: 'c3', ifname: 'eth0' });
    expect(c[0]!.ip).toBe('10.1.0.4');
  });

  it('never hands one address to two attachments, across stores sharing the directory', async () => {
    const dir = tmp();
    const stores = [0, 1, 2].map(() => new IpamStore(dir, 'net', ['10.2.0.0/24']));
    const allocs = await Promise.all(Array.from({ length: 60 }, (_, i) => stores[i % 3]!.allocate({ containerID: `c${i}`, ifname: 'eth0' })));
    const ips = allocs.map((a) => a[0]!.ip);
    expect(new Set(ips).size).toBe(60);
    expect(readdirSync(join(dir, 'ipam', 'net')).filter((n) => n.startsWith('10.')).length).toBe(60);
  });

  it('reports exhaustion as a CNI error and recovers after release', async () => {
    const s = new IpamStore(tmp(), 'net', ['10.3.0.0/30']); // one usable address
    await s.allocate({ containerID: 'a', ifname: 'eth0' });
    await expect(s.allocate({ containerID: 'b', ifname: 'eth0' })).rejects.toThrow(/no IP addresses available/);
    await s.release('a', 'eth0');
    expect((await s.allocate({ containerID: 'b', ifname: 'eth0' }))[0]!.ip).toBe('10.3.0.2');
  });

  it('breaks a lock left by a dead process', async () => {
    const dir = tmp();
    const s = new IpamStore(dir, 'net', ['10.4.0.0/24']);
    await s.list();
    writeFileSync(join(dir, 'ipam', 'net', 'lock'), '999999999');
    expect((await s.allocate({ containerID: 'a', ifname: 'eth0' }))[0]!.ip).toBe('10.4.0.2');
  });
});

describe('IpamStore remembered owners', () => {
  it('checks an owner it remembers against the file before using it: another process may have reused the address', async () => {
    const dir = tmp();
    const agent = new IpamStore(dir, 'net', ['10.6.0.0/30']); // one usable address: 10.6.0.2
    const other = new IpamStore(dir, 'net', ['10.6.0.0/30']);
    expect((await agent.allocate({ containerID: 'a', ifname: 'eth0' }))[0]!.ip).toBe('10.6.0.2');
    // Behind the agent's back: a released, its address given to b (same file name, new owner).
    await other.release('a', 'eth0');
    expect((await other.allocate({ containerID: 'b', ifname: 'eth0' }))[0]!.ip).toBe('10.6.0.2');
    // A late repeated DEL of a must not free b's address, nor a repeated ADD of a hand it out twice.
    expect(await agent.release('a', 'eth0')).toEqual([]);
    expect(await agent.find('b', 'eth0')).toHaveLength(1);
    await expect(agent.allocate({ containerID: 'a', ifname: 'eth0' })).rejects.toThrow(CniError);
    expect((await agent.list()).map((x) => x.containerID)).toEqual(['b']);
  });
});

describe('IpamStore fresh flag', () => {
  it('marks only addresses created by this call', async () => {
    const s = new IpamStore(tmp(), 'net', ['10.5.0.0/24']);
    expect((await s.allocate({ containerID: 'a', ifname: 'eth0' }))[0]!.fresh).toBe(true);
    expect((await s.allocate({ containerID: 'a', ifname: 'eth0' }))[0]!.fresh).toBeUndefined();
  });
});
