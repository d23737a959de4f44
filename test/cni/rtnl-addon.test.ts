// The netns addon's netlink path (cni/native/netns.c + plugin/rtnl.ts), built fresh from source:
// the pod side's requests in a scratch namespace, the error wording the callers match, and the
// pool-thread variant. The plugin suite covers whole ADDs; this one fails if the addon path is
// broken while the fallbacks would still make ADD pass.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../common/self.js';
import { missing } from '../support/env.js';
import { addNetns, cleanupPrefix, inNs } from '../support/netns.js';
import { tempDir } from './support/harness.js';

const P = 'skiffrtnla';
const NS = `${P}-pod`;

describe.skipIf(missing('cni netlink addon', { root: true, tools: ['ip', 'cc'] }))('cni netlink addon (root)', () => {
  let rtnl: typeof import('../../cni/plugin/rtnl.js');
  let addon: import('../../cni/plugin/netns-addon.js').NetnsAddon;
  const dir = tempDir('addon');

  beforeAll(async () => {
    cleanupPrefix(P);
    const out = join(dir, 'netns.node');
    execFileSync('bash', [join(projectRoot, 'scripts', 'build-native.sh'), 'netns', out]);
    process.env.SKIFF_NETNS_ADDON = out;
    const { loadNetnsAddon } = await import('../../cni/plugin/netns-addon.js');
    const loaded = loadNetnsAddon();
    if (!loaded.addon) throw new Error(loaded.error);
    addon = loaded.addon;
    rtnl = await import('../../cni/plugin/rtnl.js');
    await addNetns(NS);
    // A veth pair inside the namespace (no dummy module on every kernel); the peer is up so eth0 has carrier.
    await inNs(NS, 'ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
    await inNs(NS, 'ip', ['link', 'set', 'peer0', 'up']);
  });
  afterAll(() => {
    cleanupPrefix(P);
    rmSync(dir, { recursive: true, force: true });
  });

  it('configures the pod side: up, both families addressed (IPv6 without DAD), default routes', async () => {
    expect(await rtnl.configurePodSide({ netnsPath: `/var/run/netns/${NS}`, podIf: 'eth0', addresses: ['10.77.0.5/24', 'fd77::5/64'], gateways: ['10.77.0.1', 'fd77::1'] })).toBe(true);
    const [link] = JSON.parse((await inNs(NS, 'ip', ['-j', 'addr', 'show', 'eth0'])).stdout) as { flags: string[]; addr_info: { local: string; prefixlen: number; tentative?: boolean }[] }[];
    expect(link!.flags).toContain('UP');
    const addrs = link!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
    expect(addrs).toEqual(expect.arrayContaining(['10.77.0.5/24', 'fd77::5/64']));
    expect(link!.addr_info.find((a) => a.local === 'fd77::5')!.tentative).toBeFalsy();
    expect((await inNs(NS, 'ip', ['route', 'show', 'default'])).stdout).toContain('via 10.77.0.1 dev eth0');
    expect((await inNs(NS, 'ip', ['-6', 'route', 'show', 'default'])).stdout).toContain('via fd77::1 dev eth0');
  });

  it('stops at the first failing request and names its errno as the callers expect', async () => {
    // The address exists now: the first NEWADDR fails, and the route after it is never sent.
    await inNs(NS, 'ip', ['route', 'del', 'default']);
    const err = (() => {
      try {
        addon.inNetns(`/var/run/netns/${NS}`, () => addon.rtnl!(rtnl.podRequests(addon.ifIndex!('eth0'), { addresses: ['10.77.0.5/24'], gateways: ['10.77.0.1'] })));
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(err?.message).toMatch(/^Request rejected: EEXIST .*message 1$/);
    expect(rtnl.errnoOf(err)).toBe('EEXIST');
    expect((await inNs(NS, 'ip', ['route', 'show', 'default'])).stdout).toBe('');
  });

  it('the pool-thread variant answers too, and a missing link is no error for delete', async () => {
    await expect(addon.rtnlAsync!(Buffer.alloc(0))).resolves.toBeUndefined();
    // Deleting a link that does not exist in the test's own namespace: ENODEV, reported as false.
    expect(await rtnl.deleteLinkByName(`${P}-none`.slice(0, 15))).toBe(false);
    expect(addon.ifIndex!(`${P}-none`.slice(0, 15))).toBe(0);
  });
});
