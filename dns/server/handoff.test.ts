// A restarting DNS server keeps its sockets: the first run leaves them with a holder process, a
// query sent while nothing serves waits in the socket, and the next run answers it. Without the
// handoff the same query is refused at once (nothing listens on the port).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { missing } from '../../test/support/env.js';
import { cacheWith, service } from '../testing/fixtures.js';
import { dig, freePort, startDns } from '../testing/harness.js';
import { releaseHeldSockets } from './handoff.js';
import { loadUdpBatch } from './native-udp.js';

const execFileP = promisify(execFile);
const noAddon = loadUdpBatch().addon ? undefined : 'the native UDP addon (npm run build)';

/** One try with a long timeout: answered, or how it failed. */
async function slowDig(port: number): Promise<string> {
  try {
    const { stdout } = await execFileP('dig', ['@127.0.0.1', '-p', String(port), '+time=6', '+tries=1', '+short', 'web.default.svc.cluster.local', 'A']);
    return stdout.trim();
  } catch (e) {
    return `failed: ${String((e as { stdout?: string }).stdout ?? e).trim().slice(0, 80)}`;
  }
}

describe.skipIf(missing('dns socket handoff', { tools: ['dig'] }) ?? noAddon)('dns socket handoff across restarts', () => {
  const cache = cacheWith({ namespaces: ['default'], services: [service('default', 'web', { clusterIPs: ['10.96.0.20'] })] });
  const runDir = mkdtempSync(join(tmpdir(), 'skiffdns-handoff-'));
  afterAll(() => {
    releaseHeldSockets(runDir);
    rmSync(runDir, { recursive: true, force: true });
  });

  for (const workers of [1, 0]) {
    it(`answers a query sent while no server runs (dns.workers ${workers})`, async () => {
      const port = await freePort();
      const cfg = { runDir, dns: { workers, udpBackend: 'native' as const } };
      const first = await startDns(cache, cfg, { port, handoff: true });
      expect((await dig(port, ['web.default.svc.cluster.local', 'A'])).answer).toEqual(['web.default.svc.cluster.local. 30 IN A 10.96.0.20']);
      await first.stop();
      const held = JSON.parse(readFileSync(join(runDir, 'dns-sockets.json'), 'utf8')) as { pid: number; sockets: Record<string, number> };
      expect(Object.keys(held.sockets).sort()).toEqual([`tcp 127.0.0.1 ${port}`, `udp 127.0.0.1 ${port}`]);
      const pending = slowDig(port);
      await new Promise((r) => setTimeout(r, 700));
      const second = await startDns(cache, cfg, { port, handoff: true });
      expect(await pending).toBe('10.96.0.20');
      expect((await dig(port, ['+tcp', 'web.default.svc.cluster.local', 'A'])).status).toBe('NOERROR');
      await second.stop();
      // The second run's holder replaced the first one's.
      const now = JSON.parse(readFileSync(join(runDir, 'dns-sockets.json'), 'utf8')) as { pid: number };
      expect(now.pid).not.toBe(held.pid);
      expect(existsSync(`/proc/${held.pid}`)).toBe(false);
      releaseHeldSockets(runDir);
      expect(existsSync(join(runDir, 'dns-sockets.json'))).toBe(false);
    }, 30_000);
  }

  it('without the handoff the same query is refused while nothing serves', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'skiffdns-nohandoff-'));
    const first = await startDns(cache, { runDir: dir, dns: { udpBackend: 'native' } }, { port });
    await first.stop();
    expect(existsSync(join(dir, 'dns-sockets.json'))).toBe(false);
    expect(await slowDig(port)).toMatch(/^failed/);
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);
});
