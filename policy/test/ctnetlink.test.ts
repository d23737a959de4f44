// Strict mode's ctnetlink access against a real kernel, in a namespace of its own (`skiffpct-`):
// entries made with conntrack(8) (-I) are listed over netlink in both families, with TCP entries
// that are over left out, and the ones deleted over netlink are gone for conntrack(8) too, the
// others kept. A dump opened in another namespace sees none of them.
import { RawNetlinkSocket } from 'netlink';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNetnsAddon } from '../../cni/plugin/netns-addon.js';
import { missing } from '../../test/support/env.js';
import { addNetns, cleanupPrefix, inNs } from '../../test/support/netns.js';
import type { Flow } from '../conntrack.js';
import { parseConntrack } from '../conntrack.js';
import { netlinkConntrack } from '../ctnetlink.js';

const P = 'skiffpct-';
const NS = `${P}a`;
const OTHER = `${P}b`;
const addon = loadNetnsAddon();
function noAddon(): string | undefined {
  if (addon.addon) return undefined;
  const reason = `skipping ctnetlink: needs the netns addon (${addon.error ?? 'not loaded'}; npm run build)`;
  console.warn(reason);
  return reason;
}
const skip = missing('ctnetlink', { root: true, tools: ['ip', 'conntrack'] }) ?? noAddon();

const open = (ns: string) => () => addon.addon!.inNetns(`/var/run/netns/${ns}`, () => new RawNetlinkSocket(12));

/** An entry made by conntrack(8) in NS. */
const insert = (proto: 'tcp' | 'udp', src: string, dst: string, sport: number, dport: number, state?: string) =>
  inNs(NS, 'conntrack', ['-I', '-p', proto, '-s', src, '-d', dst, '--sport', String(sport), '--dport', String(dport), ...(state ? ['--state', state] : []), '--timeout', '300', '-u', 'SEEN_REPLY']);
const key = (f: Flow) => `${f.protocol} ${f.orig.src}:${f.orig.sport} -> ${f.orig.dst}:${f.orig.dport} / ${f.reply.src}:${f.reply.sport}`;

describe.skipIf(skip)('strict mode over ctnetlink (root)', () => {
  beforeAll(async () => {
    cleanupPrefix(P);
    await addNetns(NS);
    await addNetns(OTHER);
    await insert('tcp', '10.244.7.4', '10.244.7.3', 40000, 80, 'ESTABLISHED');
    await insert('tcp', '10.244.7.2', '10.244.7.3', 40001, 80, 'ESTABLISHED');
    await insert('tcp', '10.244.7.2', '10.244.7.3', 40002, 80, 'TIME_WAIT');
    await insert('udp', '10.244.7.4', '10.244.7.3', 5353, 53);
    await insert('tcp', 'fd00::4', 'fd00::3', 40003, 81, 'ESTABLISHED');
  });

  afterAll(() => cleanupPrefix(P));

  it('lists both families in one dump, without TCP entries that are over; deletes exactly the ones asked', async () => {
    const ct = netlinkConntrack(open(NS), { timeoutMs: 2000 });
    try {
      const flows = await ct.list();
      expect(flows.map(key).sort()).toEqual([
        'TCP 10.244.7.2:40001 -> 10.244.7.3:80 / 10.244.7.3:80',
        'TCP 10.244.7.4:40000 -> 10.244.7.3:80 / 10.244.7.3:80',
        'TCP fd00::4:40003 -> fd00::3:81 / fd00::3:81',
        'UDP 10.244.7.4:5353 -> 10.244.7.3:53 / 10.244.7.3:53',
      ]);
      expect(flows.every((f) => typeof f.id === 'number')).toBe(true);
      const cut = flows.filter((f) => f.orig.src === '10.244.7.4' || f.family === 6);
      // Asked again right before the delete: the UDP one is spared.
      expect(await ct.delete(cut, (f) => f.protocol === 'TCP')).toBe(2);
      // Already gone: no error, nothing counted.
      expect(await ct.delete(cut.filter((f) => f.protocol === 'TCP'))).toBe(0);
      const left = [(await inNs(NS, 'conntrack', ['-L', '-f', 'ipv4'])).stdout, (await inNs(NS, 'conntrack', ['-L', '-f', 'ipv6'])).stdout].join('\n');
      expect(parseConntrack(left).map(key).sort()).toEqual(['TCP 10.244.7.2:40001 -> 10.244.7.3:80 / 10.244.7.3:80', 'UDP 10.244.7.4:5353 -> 10.244.7.3:53 / 10.244.7.3:53']);
      expect(left).toContain('TIME_WAIT');
    } finally {
      ct.close();
    }
  });

  it('reads the namespace its socket was opened in', async () => {
    const ct = netlinkConntrack(open(OTHER), { timeoutMs: 2000 });
    try {
      expect(await ct.list()).toEqual([]);
    } finally {
      ct.close();
    }
  });
});
