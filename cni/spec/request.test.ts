import { describe, expect, it } from 'vitest';
import { CniError } from './errors.js';
import { parseRequest } from './request.js';
import { formatResult, parsePrevResult } from './result.js';
import { highestCommon } from './version.js';

const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.1.0', name: 'skiff', type: 'skiff', podCIDRs: ['10.244.1.0/24'], mtu: 1450, ...extra });
const env = (extra: Record<string, string | undefined> = {}) => ({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_IFNAME: 'eth0', CNI_NETNS: '/var/run/netns/x', CNI_PATH: '/opt/cni/bin', ...extra });

function codeOf(e: Record<string, string | undefined>, stdin: string): number | undefined {
  try {
    parseRequest(e, stdin);
    return undefined;
  } catch (err) {
    if (err instanceof CniError) return err.cniCode;
    throw err;
  }
}

describe('parseRequest error codes', () => {
  it.each([
    ['missing CNI_COMMAND', env({ CNI_COMMAND: undefined }), conf(), 4],
    ['unknown command', env({ CNI_COMMAND: 'FROB' }), conf(), 4],
    ['container id with /', env({ CNI_CONTAINERID: 'a/b' }), conf(), 4],
    ['container id with ..', env({ CNI_CONTAINERID: 'a..b' }), conf(), 4],
    ['missing container id', env({ CNI_CONTAINERID: undefined }), conf(), 4],
    ['ifname too long', env({ CNI_IFNAME: 'abcdefghijklmnop' }), conf(), 4],
    ['ifname with /', env({ CNI_IFNAME: 'et/h0' }), conf(), 4],
    ['ifname dot', env({ CNI_IFNAME: '.' }), conf(), 4],
    ['missing netns on ADD', env({ CNI_NETNS: undefined }), conf(), 4],
    ['relative netns', env({ CNI_NETNS: 'netns/x' }), conf(), 4],
    ['bad CNI_ARGS', env({ CNI_ARGS: 'novalue' }), conf(), 4],
    ['not JSON', env(), '{nope', 6],
    ['JSON array', env(), '[]', 6],
    ['unsupported version', env(), conf({ cniVersion: '0.2.0' }), 1],
    ['missing version', env(), conf({ cniVersion: undefined }), 7],
    ['missing name', env(), conf({ name: undefined }), 7],
    ['no podCIDRs', env(), conf({ podCIDRs: [] }), 7],
    ['bad podCIDR', env(), conf({ podCIDRs: ['10.0.0.0/33'] }), 7],
    ['two v4 podCIDRs', env(), conf({ podCIDRs: ['10.0.0.0/24', '10.0.1.0/24'] }), 7],
    ['bad mtu', env(), conf({ mtu: 10 }), 7],
    ['CHECK on 0.3.1', env({ CNI_COMMAND: 'CHECK' }), conf({ cniVersion: '0.3.1' }), 1],
    ['STATUS on 1.0.0', env({ CNI_COMMAND: 'STATUS' }), conf({ cniVersion: '1.0.0' }), 1],
    ['GC without attachments', env({ CNI_COMMAND: 'GC' }), conf(), 7],
    ['malformed prevResult', env(), conf({ prevResult: { ips: 'x' } }), 7],
  ])('%s -> %i', (_name, e, stdin, code) => {
    expect(codeOf(e, stdin)).toBe(code);
  });

  it('accepts a DEL without netns and parses CNI_ARGS', () => {
    const r = parseRequest(env({ CNI_COMMAND: 'DEL', CNI_NETNS: undefined, CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=web' }), conf());
    expect(r.command).toBe('DEL');
    expect(r.args).toEqual({ K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'web' });
  });

  it('VERSION needs no container and tolerates any version', () => {
    expect(parseRequest({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.1.0"}').cniVersion).toBe('1.1.0');
    expect(parseRequest({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}').cniVersion).toBe('0.4.0');
  });

  it('GC accepts both attachment keys', () => {
    const a = [{ containerID: 'c1', ifname: 'eth0' }];
    expect(parseRequest({ CNI_COMMAND: 'GC' }, conf({ 'cni.dev/valid-attachments': a })).conf?.validAttachments).toEqual(a);
    expect(parseRequest({ CNI_COMMAND: 'GC' }, conf({ 'cni.dev/attachments': a })).conf?.validAttachments).toEqual(a);
  });
});

describe('formatResult', () => {
  const r = {
    interfaces: [{ name: 'skiff0' }, { name: 'eth0', mac: '0a:58:0a:f4:01:02', mtu: 1450, sandbox: '/var/run/netns/x' }],
    ips: [
      { address: '10.244.1.2/24', gateway: '10.244.1.1', interface: 1 },
      { address: 'fd00::2/64', gateway: 'fd00::1', interface: 1 },
    ],
    routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }],
    dns: {},
  };
  it('adds ips[].version before 1.0.0 and drops interface mtu before 1.1.0', () => {
    const old = formatResult(r, '0.3.1') as { ips: { version: string }[]; interfaces: { mtu?: number }[] };
    expect(old.ips.map((i) => i.version)).toEqual(['4', '6']);
    expect(old.interfaces[1]!.mtu).toBeUndefined();
    const v1 = formatResult(r, '1.0.0') as { ips: { version?: string }[]; interfaces: { mtu?: number }[] };
    expect(v1.ips[0]!.version).toBeUndefined();
    expect(v1.interfaces[1]!.mtu).toBeUndefined();
    const v11 = formatResult(r, '1.1.0') as { interfaces: { mtu?: number }[]; cniVersion: string };
    expect(v11.interfaces[1]!.mtu).toBe(1450);
    expect(v11.cniVersion).toBe('1.1.0');
  });
  it('round-trips through parsePrevResult', () => {
    expect(parsePrevResult(formatResult(r, '0.4.0'))).toEqual({ ...r, interfaces: [r.interfaces[0], { ...r.interfaces[1], mtu: undefined }].map((i) => JSON.parse(JSON.stringify(i))) });
  });
});

describe('highestCommon', () => {
  it('picks the newest version all chained plugins speak', () => {
    expect(highestCommon([['0.3.0', '0.3.1', '0.4.0', '1.0.0'], ['0.4.0', '1.0.0', '1.1.0']])).toBe('1.0.0');
    expect(highestCommon([['9.9.9']])).toBeUndefined();
  });
});
