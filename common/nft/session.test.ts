// The long-lived `nft -i` against a real kernel, in a namespace of its own: transactions apply,
// a failing one is refused whole and reported, and the session recovers from errors and restarts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../../test/support/env.js';
import { addNetns, inNs, sh } from '../../test/support/netns.js';
import { builtHelper } from './helper.js';
import { NftSession } from './session.js';

const skip = missing('nft session', { root: true, tools: ['nft'] });
// The spare as the built helper (`npm run build`) and as the bash script used without a build.
const built = builtHelper();
const helpers: [string, string | null][] = [['bash script', null], ...(built ? [['built helper', built] as [string, string]] : [])];
if (!built) console.warn('nft session: dist/bin/skiff-helper not built (npm run build): testing the bash script only');

describe.skipIf(skip)('NftSession', () => {
  const ns = `skiffnft-s-${process.pid}`;
  let session: NftSession;
  const list = async (): Promise<string> => (await inNs(ns, 'nft', ['list', 'table', 'ip', 'skiffnft-s'])).stdout;

  beforeAll(async () => {
    await addNetns(ns);
    session = new NftSession(['ip', 'netns', 'exec', ns, 'nft', '-i'], { idleMs: 200 });
  });

  afterAll(async () => {
    session.close();
    await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
  });

  it('applies a transaction and answers once the kernel has it', async () => {
    await session.run('add table ip skiffnft-s; add set ip skiffnft-s s { type ipv4_addr ; }; add element ip skiffnft-s s { 10.0.0.1 }');
    expect(await list()).toContain('10.0.0.1');
  });

  it('refuses a failing transaction whole, with nft error text, and keeps working', async () => {
    await expect(session.run('add element ip skiffnft-s s { 10.0.0.2 }; add element ip skiffnft-s nosuch { 10.0.0.3 }')).rejects.toThrow(/No such file or directory/);
    expect(await list()).not.toContain('10.0.0.2');
    await session.run('add element ip skiffnft-s s { 10.0.0.4 }');
    expect(await list()).toContain('10.0.0.4');
  });

  it('serialises concurrent transactions and restarts after going idle or being closed', async () => {
    await Promise.all([1, 2, 3].map((i) => session.run(`add element ip skiffnft-s s { 10.0.1.${i} }`)));
    await new Promise((r) => setTimeout(r, 400)); // past idleMs: the process has exited
    await session.run('add element ip skiffnft-s s { 10.0.2.1 }');
    session.close();
    await session.run('delete element ip skiffnft-s s { 10.0.0.1 }');
    const text = await list();
    for (const ip of ['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.2.1']) expect(text).toContain(ip);
    expect(text).not.toMatch(/10\.0\.0\.1[,\s}]/);
  });

  it.each(helpers)('with a spare (%s), an idle exit leaves a forked process that becomes the next nft', async (_, helper) => {
    const spared = new NftSession(['ip', 'netns', 'exec', ns, 'nft', '-i'], { idleMs: 100, spare: true, helper });
    try {
      expect(spared.spareWaiting).toBe(true);
      await spared.run('add element ip skiffnft-s s { 10.0.3.1 }');
      expect(spared.spareWaiting).toBe(false);
      await new Promise((r) => setTimeout(r, 300)); // idle exit; a new spare waits
      expect(spared.spareWaiting).toBe(true);
      await spared.run('add element ip skiffnft-s s { 10.0.3.2 }');
      expect(spared.spareWaiting).toBe(false);
      await expect(spared.run('add element ip skiffnft-s nosuch { 10.0.3.3 }')).rejects.toThrow(/No such file or directory/);
      const text = await list();
      for (const ip of ['10.0.3.1', '10.0.3.2']) expect(text).toContain(ip);
      spared.close();
      expect(spared.spareWaiting).toBe(false);
    } finally {
      spared.close();
    }
  });

  it('rejects input that would split into several transactions', () => {
    expect(() => session.run('add table ip a\nadd table ip b')).toThrow(/one line/);
  });
});
