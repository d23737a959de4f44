// The handler's answers that need no kernel: STATUS, VERSION and every error's JSON shape.
import { describe, expect, it } from 'vitest';
import { handle } from './handler.js';

const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.1.0', name: 'skiff', type: 'skiff', podCIDRs: ['10.244.1.0/24'], ...extra });

describe('handle', () => {
  it('STATUS answers 50 with the reason while the agent is not ready, and succeeds once it is', async () => {
    let ready = false;
    const deps = { status: () => ({ ok: ready, reason: 'node n1 has no podCIDR yet' }) };
    const r = await handle({ CNI_COMMAND: 'STATUS' }, conf(), deps);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.1.0', code: 50, msg: 'skiff is not ready to add pods', details: 'node n1 has no podCIDR yet' });
    ready = true;
    expect(await handle({ CNI_COMMAND: 'STATUS' }, conf(), deps)).toEqual({ code: 0, stdout: '' });
  });

  it("refuses a config naming another state directory or bridge than the agent's, before touching anything", async () => {
    const own = { stateDir: '/var/lib/skiff', bridge: 'skiff0' };
    const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_NETNS: '/nonexistent/skiffcni-netns' };
    for (const [extra, key] of [[{ stateDir: '/etc', bridge: 'skiff0' }, 'stateDir'], [{ stateDir: '/var/lib/skiff/../../etc', bridge: 'skiff0' }, 'stateDir'], [{ stateDir: '/var/lib/skiff', bridge: 'eth0' }, 'bridge']] as const) {
      for (const command of ['ADD', 'DEL', 'CHECK', 'GC']) {
        const r = await handle({ ...env, CNI_COMMAND: command }, conf({ ...extra, 'cni.dev/valid-attachments': [] }), { own, bridgeReady: () => true });
        expect(r.code).toBe(1);
        expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining(`${key} `) });
      }
    }
  });

  it('VERSION lists the supported versions in the requested version', async () => {
    const r = await handle({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('answers errors as CNI error JSON in the request version', async () => {
    const r = await handle({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x/y', CNI_IFNAME: 'eth0', CNI_NETNS: '/run/netns/x' }, conf({ cniVersion: '1.0.0' }));
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout);
    expect(e).toMatchObject({ cniVersion: '1.0.0', code: 4, msg: 'invalid CNI_CONTAINERID "x/y"' });
    const garbage = await handle({ CNI_COMMAND: 'ADD' }, '\u0000garbage');
    expect(JSON.parse(garbage.stdout)).toMatchObject({ cniVersion: '1.1.0', code: 6 });
  });

  it('ADD into a namespace that does not exist fails with code 3 and releases the address', async () => {
    const { mkdtempSync, readdirSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'skiffcni-h-'));
    try {
      const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_NETNS: '/nonexistent/skiffcni-netns' };
      const r = await handle(env, conf({ stateDir: dir }), { bridgeReady: () => true });
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 3 });
      expect(readdirSync(join(dir, 'ipam', 'skiff')).filter((n) => n.startsWith('10.'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
