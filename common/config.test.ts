import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig, parseDuration } from './config.js';
import { ConfigError } from './errors.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'skiff-config-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('config', () => {
  it('fills kube-proxy and CoreDNS defaults', () => {
    const c = parseConfig({ nodeName: 'n1' });
    expect(c.clusterDomain).toBe('cluster.local');
    expect(c.metricsBindAddress).toBe('0.0.0.0:10249');
    expect(c.healthzBindAddress).toBe('0.0.0.0:10256');
    expect(c.proxy.backend).toBe('nftables');
    expect(c.proxy.syncPeriod).toBe(30_000);
    expect(c.dns.ttl).toBe(30);
    expect(c.dnsServiceIPs).toEqual(['10.96.0.10']);
  });

  it('names the field and the reason of an invalid value', () => {
    expect(() => parseConfig({ nodeName: 'n1', serviceCIDRs: ['10.96.0.0/99'] })).toThrow(/serviceCIDRs\.0: must be a CIDR/);
    expect(() => parseConfig({ nodeName: 'n1', proxy: { backend: 'ipvs' } })).toThrow(/proxy\.backend/);
    expect(() => parseConfig({})).toThrow(ConfigError);
    expect(() => parseConfig({ nodeName: 'n1', bogus: 1 })).toThrow(/unknown field\(s\) bogus/);
    expect(() => parseConfig({ nodeName: 'n1', proxy: { syncPeriod: 'soon' } })).toThrow(/proxy\.syncPeriod: must be a duration/);
  });

  it('layers file < environment < flags', () => {
    const dir = tempDir();
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'clusterDomain: file.local\ndns:\n  ttl: 5\nproxy:\n  syncPeriod: 10s\n');
    const c = loadConfig({ configFile: file, 'dns.ttl': '7' }, { NODE_NAME: 'env-node', SKIFF_CLUSTER_DOMAIN: 'env.local', SKIFF_SERVICE_CIDRS: '10.96.0.0/16,fd00::/108' });
    expect(c.nodeName).toBe('env-node');
    expect(c.clusterDomain).toBe('env.local');
    expect(c.dns.ttl).toBe(7);
    expect(c.proxy.syncPeriod).toBe(10_000);
    expect(c.serviceCIDRs).toEqual(['10.96.0.0/16', 'fd00::/108']);
  });

  it('rejects a config file that is not a mapping', () => {
    const dir = tempDir();
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, '- a\n- b\n');
    expect(() => loadConfig({ configFile: file }, { NODE_NAME: 'n' })).toThrow(/configFile: .* must hold a mapping/);
    expect(() => loadConfig({ configFile: join(dir, 'missing.yaml') }, { NODE_NAME: 'n' })).toThrow(/cannot read/);
  });

  it('parses durations like kube-proxy flags', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('5 minutes')).toBeUndefined();
  });
});
