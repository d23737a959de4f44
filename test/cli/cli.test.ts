import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { skiffCommand } from '../../common/self.js';

function skiff(args: string[], env: Record<string, string> = {}) {
  const [cmd, ...pre] = skiffCommand();
  const r = spawnSync(cmd!, [...pre, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('skiff command line', () => {
  it('lists its subcommands', () => {
    const r = skiff(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['agent', 'cni', 'sandbox', 'status', 'version']) expect(r.stdout).toContain(c);
  });

  it('prints the version', () => {
    const r = skiff(['version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^skiff \d+\.\d+\.\d+ \(node v\d+/);
  });

  it('rejects an unknown command and an unknown flag in one line', () => {
    const a = skiff(['frobnicate']);
    expect(a.code).toBe(2);
    expect(a.stderr.trim().split('\n')).toHaveLength(1);
    const b = skiff(['agent', '--no-such-flag']);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/no-such-flag/);
    expect(b.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('names the bad config field and exits non-zero', () => {
    const missingNode = skiff(['agent']);
    expect(missingNode.code).toBe(2);
    expect(missingNode.stderr).toMatch(/nodeName/);
    const badCidr = skiff(['agent', '--service-cidrs', '10.96.0.0/40'], { NODE_NAME: 'n1' });
    expect(badCidr.code).toBe(2);
    expect(badCidr.stderr).toMatch(/serviceCIDRs.*CIDR/);
    const noKubeconfig = skiff(['agent', '--kubeconfig', '/nonexistent/skiff-kubeconfig', '--metrics-bind-address', '127.0.0.1:0', '--healthz-bind-address', '127.0.0.1:0'], { NODE_NAME: 'n1' });
    expect(noKubeconfig.code).toBe(2);
    // Past flag parsing the agent has its logger: the fatal error is a log line (all a pod shows).
    const fatal = JSON.parse(noKubeconfig.stderr.trim().split('\n').at(-1)!) as { level: number; msg: string; err: { message: string } };
    expect(fatal).toMatchObject({ level: 60, msg: 'agent failed to start' });
    expect(fatal.err.message).toMatch(/^invalid config: kubeconfig: cannot load \/nonexistent\/skiff-kubeconfig/);
    const badBackend = skiff(['agent', '--proxy-backend', 'ipvs'], { NODE_NAME: 'n1' });
    expect(badBackend.code).toBe(2);
    expect(badBackend.stderr).toMatch(/proxy\.backend/);
  });

  it('shows help for each subcommand', () => {
    for (const c of ['agent', 'status', 'version']) {
      const r = skiff([c, '--help']);
      expect(r.code, `${c} --help: ${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/usage: skiff/);
    }
  });

  it('status reports an unreachable agent and rejects a bad output format', () => {
    const bad = skiff(['status', '-o', 'xml']);
    expect(bad.code).toBe(2);
    const down = skiff(['status', '--address', '127.0.0.1:1']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot reach the agent/);
  });
});
