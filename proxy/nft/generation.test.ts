// The periodic check reads the table back only when the ruleset generation says someone else may
// have changed it. Unit level: ExecNft's bookkeeping over a counting runner and the dataplane's
// check over it; kernel level (root): the generation read over netlink in a fresh namespace moves
// by exactly one per transaction, as the bookkeeping assumes.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../common/self.js';
import { missing } from '../../test/support/env.js';
import { addNetns, cleanupPrefix } from '../../test/support/netns.js';
import { desiredService } from '../desired.js';
import type { Runner } from '../exec.js';
import { endpoint, nodeCtx, service, slice } from '../fixtures.js';
import { ExecNft } from './backend.js';
import { FULL_VERIFY_EVERY_MS, NftDataplane } from './dataplane.js';
import { parseGeneration, type ShapeReader, type TableShape } from '../../common/nft/generation.js';

/** A kernel stand-in: each `nft -f` is one commit; it never holds the table (a listing finds none). */
function counting(shape?: ShapeReader) {
  const k = { gen: 7, lists: 0, fail: false };
  const run: Runner = async (_cmd, args) => {
    if (args[0] === '-f') {
      if (k.fail) throw new Error('nft: injected failure');
      k.gen++;
      return '';
    }
    if (args[0] === '-j' && args[1] === 'list') {
      k.lists++;
      throw new Error('Error: No such file or directory; did you mean table ‘skiff’?');
    }
    return '';
  };
  return { k, nft: new ExecNft(run, { generation: async () => k.gen, shape }) };
}

/** The shape a replace transaction's text declares (chains, rule counts, sets), as the kernel would hold it. */
function shapeOf(text: string): TableShape {
  const chains = new Map<string, number>();
  const sets = new Set<string>();
  for (const m of text.matchAll(/^add chain ip skiff (\S+)/gm)) chains.set(m[1]!, 0);
  for (const m of text.matchAll(/^add rule ip skiff (\S+)/gm)) chains.set(m[1]!, (chains.get(m[1]!) ?? 0) + 1);
  for (const m of text.matchAll(/^add (?:set|map) ip skiff (\S+)/gm)) sets.add(m[1]!);
  return { chains, sets };
}

describe('ruleset generation bookkeeping', () => {
  it('trusts only a verified generation followed by its own single commits', async () => {
    const { k, nft } = counting();
    expect(await nft.unchanged()).toBe(false);
    nft.verified(k.gen);
    expect(await nft.unchanged()).toBe(true);
    await nft.apply('add table ip skiff\n');
    expect(await nft.unchanged()).toBe(true);
    k.gen++; // someone else's commit
    expect(await nft.unchanged()).toBe(false);
    await nft.apply('add table ip skiff\n');
    expect(await nft.unchanged()).toBe(false);
    nft.verified(k.gen);
    // Overlapping writes (a staged full sync) count together.
    await Promise.all([nft.apply('add table ip skiff\n'), nft.apply('add table ip skiff\n')]);
    expect(await nft.unchanged()).toBe(true);
    const pending = Promise.all([nft.apply('add table ip skiff\n'), nft.apply('add table ip skiff\n')]);
    k.gen++; // someone else's commit in the middle of the burst
    await pending;
    expect(await nft.unchanged()).toBe(false);
    nft.verified(k.gen);
    k.fail = true;
    await expect(nft.apply('add table ip skiff\n')).rejects.toThrow('injected');
    expect(await nft.unchanged()).toBe(false);
  });

  it('without a generation reader nothing is ever trusted', async () => {
    const nft = new ExecNft(async () => '');
    nft.verified(3);
    expect(await nft.unchanged()).toBe(false);
  });

  it('the periodic check skips the read-back only while the generation is unchanged', async () => {
    const { k, nft } = counting();
    const dp = new NftDataplane(nft, [4], { staging: false });
    const eps = [endpoint('10.244.1.5')];
    const web = new Map([['ns1/web', desiredService(service('ns1', 'web'), [slice('ns1', 'web', eps)], nodeCtx).ports]]);
    // The first full sync replaces the table whole: its own commits say what the kernel holds,
    // so even the first check after a start reads nothing back.
    await dp.full(web, nodeCtx);
    expect(await dp.verify()).toEqual([]);
    expect(k.lists).toBe(0);
    await dp.full(new Map(), nodeCtx);
    expect(await dp.verify()).toEqual([]);
    expect(await dp.verify()).toEqual([]);
    expect(k.lists).toBe(0);
    expect(dp.skippedVerifies).toBe(3);
    k.gen++;
    expect(await dp.verify()).toEqual(['ip skiff: table missing']);
    expect(k.lists).toBe(1);
  });

  it('a replacing full sync with a foreign commit in the middle, or a failed one, is not trusted', async () => {
    const { k, nft } = counting();
    const dp = new NftDataplane(nft, [4], { staging: false });
    const web = new Map([['ns1/web', desiredService(service('ns1', 'web'), [slice('ns1', 'web', [endpoint('10.244.1.5')])], nodeCtx).ports]]);
    await nft.hold(true);
    await nft.apply('add table ip skiff\n');
    k.gen++; // someone else's commit between two writes of the same full sync
    await nft.apply('add table ip skiff\n');
    await nft.release();
    expect(await nft.unchanged()).toBe(false);
    k.fail = true;
    await expect(dp.full(web, nodeCtx)).rejects.toThrow('injected');
    expect(await dp.verify()).toEqual(['ip skiff: table missing']);
    expect(k.lists).toBe(1);
    // A held burst without a write proves nothing.
    await nft.hold(true);
    await nft.release();
    expect(await nft.unchanged()).toBe(false);
  });

  it("after someone else's commit the check compares the table's shape, and lists the elements only when it differs or an hour has passed", async () => {
    let kernel: TableShape | undefined;
    const shapes = { reads: 0 };
    const { k, nft } = counting(async () => (shapes.reads++, kernel));
    const wrote: string[] = [];
    const backend = Object.assign(Object.create(nft) as ExecNft, { apply: async (t: string) => (wrote.push(t), nft.apply(t)) });
    let now = 1000;
    const dp = new NftDataplane(backend, [4], { staging: false, now: () => now });
    const web = new Map([['ns1/web', desiredService(service('ns1', 'web'), [slice('ns1', 'web', [endpoint('10.244.1.5')])], nodeCtx).ports]]);
    await dp.full(web, nodeCtx);
    kernel = shapeOf(wrote.join(''));
    expect(kernel.chains.size).toBeGreaterThan(3);
    k.gen++; // another writer's commit elsewhere in the ruleset
    expect(await dp.verify()).toEqual([]);
    expect([dp.shapeVerifies, k.lists, shapes.reads]).toEqual([1, 0, 1]);
    // Recorded: the next check is answered by the generation alone.
    expect(await dp.verify()).toEqual([]);
    expect([dp.skippedVerifies, shapes.reads]).toEqual([1, 1]);
    // A rule gone from one of skiff's chains: the shape differs, so the table is listed.
    const [chain, rules] = [...kernel.chains].find(([, n]) => n > 0)!;
    kernel = { chains: new Map([...kernel.chains, [chain, rules - 1]]), sets: kernel.sets };
    k.gen++;
    expect(await dp.verify()).toEqual(['ip skiff: table missing']);
    expect(k.lists).toBe(1);
    // After a repair, the shape is trusted again, but not once the elements went unchecked for an hour.
    await dp.full(web, nodeCtx);
    kernel = shapeOf(wrote.at(-1)!);
    k.gen++;
    expect(await dp.verify()).toEqual([]);
    expect(k.lists).toBe(1);
    now += FULL_VERIFY_EVERY_MS;
    k.gen++;
    expect(await dp.verify()).toEqual(['ip skiff: table missing']);
    expect(k.lists).toBe(2);
  });

  it('a full sync from an unknown table asks the shape reader whether the table has chains', async () => {
    const web = new Map([['ns1/web', desiredService(service('ns1', 'web'), [slice('ns1', 'web', [endpoint('10.244.1.5')])], nodeCtx).ports]]);
    // No chains: staged into a fresh table (create, element chunk, switch), no `nft list chains`.
    const empty = counting(async () => ({ chains: new Map(), sets: new Set() }));
    await new NftDataplane(empty.nft, [4]).full(web, nodeCtx);
    expect(empty.k.gen - 7).toBeGreaterThanOrEqual(3);
    // Chains left by a previous agent: replaced in one transaction.
    const live = counting(async () => ({ chains: new Map([['services', 2]]), sets: new Set() }));
    await new NftDataplane(live.nft, [4]).full(web, nodeCtx);
    expect(live.k.gen - 7).toBe(1);
  });

  it('parses NFTA_GEN_ID out of a NEWGEN body', () => {
    // nfgenmsg (4 bytes), then NFTA_GEN_ID = 0x01020304, NFTA_GEN_PROC_PID, NFTA_GEN_PROC_NAME
    const body = Buffer.from('00000304' + '0800010001020304' + '08000200000002a3' + '090003006e6f646500000000', 'hex');
    expect(parseGeneration(body)).toBe(0x01020304);
    expect(parseGeneration(Buffer.from('00000000', 'hex'))).toBeUndefined();
  });
});

const NS = 'skiffgen-t';

describe.skipIf(missing('nf_tables generation', { root: true, tools: ['nft'] }))('nf_tables generation from the kernel', () => {
  afterAll(() => cleanupPrefix(NS));

  it('moves by one per transaction (nft -f and one nft -i line), not on a listing', async () => {
    cleanupPrefix(NS);
    await addNetns(NS);
    const read = (): number => {
      const script = `import(${JSON.stringify(join(projectRoot, 'common/nft/generation.ts'))}).then(async (m) => { const r = m.netlinkGeneration(); console.log(await r()); r.close(); })`;
      return Number(execFileSync('ip', ['netns', 'exec', NS, process.execPath, '--import', 'tsx', '-e', script], { encoding: 'utf8', cwd: projectRoot }).trim());
    };
    const nft = (args: string[], input?: string): string => execFileSync('ip', ['netns', 'exec', NS, 'nft', ...args], { encoding: 'utf8', input });
    const g0 = read();
    expect(Number.isInteger(g0)).toBe(true);
    nft(['-f', '-'], 'add table ip skiffgen\nadd chain ip skiffgen c\nadd set ip skiffgen s { type ipv4_addr; }\n');
    expect(read()).toBe(g0 + 1);
    nft(['-i'], 'add element ip skiffgen s { 10.0.0.1 }; add element ip skiffgen s { 10.0.0.2 }\n');
    expect(read()).toBe(g0 + 2);
    nft(['list', 'ruleset']);
    expect(read()).toBe(g0 + 2);
  }, 30_000);

  it("reads a table's shape without its elements: chains with rule counts, named sets (not a rule's anonymous ones)", async () => {
    const nft = (input: string): string => execFileSync('ip', ['netns', 'exec', NS, 'nft', '-f', '-'], { encoding: 'utf8', input });
    nft('add table ip skiffshape\nadd chain ip skiffshape pre { type nat hook prerouting priority -100 ; }\nadd chain ip skiffshape empty\nadd chain ip skiffshape svc\n' + 'add rule ip skiffshape pre jump svc\nadd rule ip skiffshape svc meta l4proto { tcp, udp } counter\nadd rule ip skiffshape svc counter\n' + 'add map ip skiffshape m { type mark : ipv4_addr ; }\nadd element ip skiffshape m { 1 : 10.0.0.1 }\nadd table ip6 skiffshape\nadd chain ip6 skiffshape other\n');
    const script = `import(${JSON.stringify(join(projectRoot, 'common/nft/generation.ts'))}).then(async (m) => { const r = m.netlinkShape(); const s = await r('ip skiffshape'); const none = await r('ip nosuch'); console.log(JSON.stringify({ chains: [...s.chains], sets: [...s.sets], none: none.chains.size + none.sets.size })); r.close(); })`;
    const got = JSON.parse(execFileSync('ip', ['netns', 'exec', NS, process.execPath, '--import', 'tsx', '-e', script], { encoding: 'utf8', cwd: projectRoot }).trim()) as { chains: [string, number][]; sets: string[]; none: number };
    expect(new Map(got.chains)).toEqual(new Map([['pre', 1], ['empty', 0], ['svc', 2]]));
    expect(got.sets).toEqual(['m']);
    expect(got.none).toBe(0);
  }, 30_000);
});
