import { describe, expect, it } from 'vitest';
import type { NodeInfo } from '../common/types.js';
import { buildConflist } from './conflist.js';
import { decodeRequest, encodeRequest } from './server.js';

const node = (podCIDRs: string[]): NodeInfo => ({ name: 'n1', uid: 'u', podCIDRs, addresses: [], labels: {}, annotations: {}, ready: true });
const opts = { cniVersion: '1.0.0', mtu: 1450, stateDir: '/var/lib/skiff', agentSocket: '/run/skiff/cni.sock', chain: ['portmap', 'bandwidth'] as const };

describe('buildConflist', () => {
  it('is absent until the node has a podCIDR', () => {
    expect(buildConflist(undefined, opts)).toBeUndefined();
    expect(buildConflist(node([]), opts)).toBeUndefined();
  });
  it('carries the podCIDRs, MTU and the chained plugins found', () => {
    const list = JSON.parse(buildConflist(node(['10.244.1.0/24', 'fd00:1::/64']), opts)!);
    expect(list).toEqual({
      cniVersion: '1.0.0',
      name: 'skiff',
      plugins: [
        { type: 'skiff', podCIDRs: ['10.244.1.0/24', 'fd00:1::/64'], mtu: 1450, bridge: 'skiff0', stateDir: '/var/lib/skiff', agentSocket: '/run/skiff/cni.sock' },
        { type: 'portmap', capabilities: { portMappings: true }, snat: true },
        { type: 'bandwidth', capabilities: { bandwidth: true } },
      ],
    });
  });
  it('is byte-identical for the same node, so an unchanged node never rewrites it', () => {
    expect(buildConflist(node(['10.244.1.0/24']), opts)).toBe(buildConflist(node(['10.244.1.0/24']), opts));
  });
});

describe('shim wire format', () => {
  it('round-trips the CNI variables and stdin, dropping other variables', () => {
    const buf = encodeRequest({ CNI_COMMAND: 'ADD', CNI_ARGS: 'A=b=c;D=e', HOME: '/root' }, '{"x":"\u00e9"}');
    expect(decodeRequest(buf)).toEqual({ env: { CNI_COMMAND: 'ADD', CNI_ARGS: 'A=b=c;D=e' }, stdin: '{"x":"\u00e9"}' });
  });
  it('rejects a request without the end of the environment', () => {
    expect(() => decodeRequest(Buffer.from('CNI_COMMAND=ADD'))).toThrow(/truncated/);
  });
});

describe('installShim', () => {
  it('copies the shim once, atomically, and leaves an identical one alone', async () => {
    const { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { installShim } = await import('./install.js');
    const dir = mkdtempSync(join(tmpdir(), 'skiffcni-inst-'));
    try {
      writeFileSync(join(dir, 'built'), 'shim-v1');
      expect(installShim(join(dir, 'bin'), join(dir, 'nothing'))).toBe('missing');
      expect(installShim(join(dir, 'bin'), join(dir, 'built'))).toBe('installed');
      expect(readFileSync(join(dir, 'bin', 'skiff'), 'utf8')).toBe('shim-v1');
      expect(statSync(join(dir, 'bin', 'skiff')).mode & 0o111).toBe(0o111);
      expect(installShim(join(dir, 'bin'), join(dir, 'built'))).toBe('unchanged');
      writeFileSync(join(dir, 'built'), 'shim-v2');
      expect(installShim(join(dir, 'bin'), join(dir, 'built'))).toBe('installed');
      expect(readFileSync(join(dir, 'bin', 'skiff'), 'utf8')).toBe('shim-v2');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
