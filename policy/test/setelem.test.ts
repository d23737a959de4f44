// The netlink element writer against a real kernel, in a namespace of its own (`skiffpr-`), as
// FQDN egress uses it (the policy applier's use is in kernel.test.ts): IPv4 and IPv6 elements with
// their timeouts as nft shows them, a timeout replaced by a later add, and
// an unknown set refused at once with the kernel's errno.
import { RawNetlinkSocket } from 'netlink';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNetnsAddon } from '../../cni/plugin/netns-addon.js';
import { missing } from '../../test/support/env.js';
import { addNetns, cleanupPrefix, inNs } from '../../test/support/netns.js';
import { netlinkWrite, type TimedElement } from '../fqdn.js';
import { netlinkElements, type ElementWriter } from '../setelem.js';

const P = 'skiffpr-';
const NS = `${P}nl`;
const addon = loadNetnsAddon();
function noAddon(): string | undefined {
  if (addon.addon) return undefined;
  const reason = `skipping nf_tables netlink writer: needs the netns addon (${addon.error ?? 'not loaded'}; npm run build)`;
  console.warn(reason);
  return reason;
}
const skip = missing('nf_tables netlink writer', { root: true, tools: ['ip', 'nft'] }) ?? noAddon();

describe.skipIf(skip)('nf_tables element writer, timed elements (root)', () => {
  let writer: ElementWriter;
  let add: (els: readonly TimedElement[]) => Promise<void>;

  beforeAll(async () => {
    cleanupPrefix(P);
    await addNetns(NS);
    await inNs(NS, 'nft', ['-f', '-'], 'add table inet skiffpr\nadd set inet skiffpr s4 { type ipv4_addr ; flags timeout ; }\nadd set inet skiffpr s6 { type ipv6_addr ; flags timeout ; }\n');
    writer = netlinkElements(() => addon.addon!.inNetns(`/var/run/netns/${NS}`, () => new RawNetlinkSocket(12)), { timeoutMs: 2000 });
    add = netlinkWrite(writer, 'skiffpr');
  });

  afterAll(() => {
    writer?.close();
    cleanupPrefix(P);
  });

  const list = async (set: string): Promise<{ val: string; timeout: number }[]> => {
    const out = JSON.parse((await inNs(NS, 'nft', ['-j', 'list', 'set', 'inet', 'skiffpr', set])).stdout) as { nftables: { set?: { elem?: { elem: { val: string; timeout: number } }[] } }[] };
    return (out.nftables.find((x) => x.set)?.set?.elem ?? []).map((e) => ({ val: e.elem.val, timeout: e.elem.timeout }));
  };

  it('adds IPv4 and IPv6 elements with their timeouts in one batch', async () => {
    await add([
      { set: 's4', ip: '192.0.2.1', timeoutS: 30 },
      { set: 's6', ip: '2001:db8::1', timeoutS: 60 },
      { set: 's4', ip: '192.0.2.2', timeoutS: 45 },
    ]);
    expect(await list('s4')).toEqual([{ val: '192.0.2.1', timeout: 30 }, { val: '192.0.2.2', timeout: 45 }]);
    expect(await list('s6')).toEqual([{ val: '2001:db8::1', timeout: 60 }]);
  });

  it('gives an existing element the new timeout', async () => {
    await add([{ set: 's4', ip: '192.0.2.1', timeoutS: 300 }]);
    expect((await list('s4')).find((e) => e.val === '192.0.2.1')?.timeout).toBe(300);
  });

  it('rejects an unknown set at once with the errno, and keeps working', async () => {
    const t = Date.now();
    await expect(add([{ set: 'gone', ip: '192.0.2.9', timeoutS: 30 }])).rejects.toThrow(/ENOENT/);
    expect(Date.now() - t).toBeLessThan(1000);
    await add([{ set: 's4', ip: '192.0.2.3', timeoutS: 30 }]);
    expect((await list('s4')).map((e) => e.val)).toContain('192.0.2.3');
  });
});
