import { describe, expect, it } from 'vitest';
import { desiredService } from '../desired.js';
import { endpoint, nodeCtx, service, slice } from '../fixtures.js';
import { IptablesDataplane, parseSave } from './dataplane.js';
import { renderIptables, restoreDiff, restoreText, sepChain, svcChain } from './render.js';

describe('iptables rendering', () => {
  const sp = desiredService(
    service('ns', 'web', { type: 'NodePort', ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }] }),
    [slice('ns', 'web', [endpoint('10.244.1.5'), endpoint('10.244.1.6'), endpoint('10.244.1.7')])],
    nodeCtx,
  ).ports[0]!;

  it('balances with a statistic cascade and DNATs in endpoint chains', () => {
    const t = renderIptables(4, [sp], nodeCtx);
    const [a, b, c] = sp.clusterEndpoints.map((e) => sepChain(sp, e));
    expect(t.nat.get(svcChain(sp))).toEqual([
      '! -s 10.244.0.0/16 -j SKIFF-MARK-MASQ',
      `-m statistic --mode random --probability 0.3333333333 -j ${a}`,
      `-m statistic --mode random --probability 0.5000000000 -j ${b}`,
      `-j ${c}`,
    ]);
    expect(t.nat.get(a!)).toEqual(['-s 10.244.1.5/32 -j SKIFF-MARK-MASQ', '-p tcp -m tcp -j DNAT --to-destination 10.244.1.5:8080']);
    expect(t.nat.get('SKIFF-SERVICES')).toEqual([`-d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j ${svcChain(sp)}`, '-m addrtype --dst-type LOCAL -j SKIFF-NODEPORTS']);
    expect(t.filter.get('SKIFF-SERVICES')).toEqual(['-d 10.96.0.10/32 -p tcp -j REJECT --reject-with tcp-reset', '-d 10.96.0.10/32 -j REJECT', '-d 10.96.0.0/12 -j DROP']);
    expect(svcChain(sp)).toMatch(/^SKIFF-SVC-[A-Z0-9]{16}$/);
  });

  it('rejects Services without endpoints in the filter table', () => {
    const empty = desiredService(service('ns', 'e', { clusterIPs: ['10.96.0.20'] }), [], nodeCtx).ports[0]!;
    const t = renderIptables(4, [empty], nodeCtx);
    expect(t.filter.get('SKIFF-SERVICES')).toEqual(['-d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset', '-d 10.96.0.20/32 -p tcp -j REJECT --reject-with tcp-reset', '-d 10.96.0.20/32 -j REJECT', '-d 10.96.0.0/12 -j DROP']);
  });

  it('restore text declares, fills and deletes stale chains', () => {
    const text = restoreText({ nat: new Map([['SKIFF-A', ['-j RETURN']]]), filter: new Map() }, { nat: ['SKIFF-OLD'], filter: [] });
    expect(text).toBe('*filter\nCOMMIT\n*nat\n:SKIFF-A - [0:0]\n:SKIFF-OLD - [0:0]\n-A SKIFF-A -j RETURN\n-X SKIFF-OLD\nCOMMIT\n');
    expect(parseSave('*nat\n:PREROUTING ACCEPT [0:0]\n:SKIFF-A - [0:0]\n-A PREROUTING -j SKIFF-A\n-A SKIFF-A -j RETURN\nCOMMIT\n').nat).toEqual(new Map([['SKIFF-A', 1]]));
  });

  it('restore diff rewrites only changed chains and deletes the ones gone', () => {
    const prev = { nat: new Map([['SKIFF-A', ['-j RETURN']], ['SKIFF-B', ['-j SKIFF-C']], ['SKIFF-C', ['-j RETURN']]]), filter: new Map([['SKIFF-F', ['-j REJECT']]]) };
    const next = { nat: new Map([['SKIFF-A', ['-j RETURN']], ['SKIFF-B', ['-j SKIFF-D']], ['SKIFF-D', ['-j ACCEPT']]]), filter: new Map([['SKIFF-F', ['-j REJECT']]]) };
    expect(restoreDiff(prev, next)).toBe('*nat\n:SKIFF-B - [0:0]\n:SKIFF-D - [0:0]\n:SKIFF-C - [0:0]\n-A SKIFF-B -j SKIFF-D\n-A SKIFF-D -j ACCEPT\n-X SKIFF-C\nCOMMIT\n');
    expect(restoreDiff(next, next)).toBe('');
  });
});

describe('iptables dataplane', () => {
  /** A runner recording every command; iptables-save prints empty tables. */
  function recorder(): { run: (cmd: string, args: readonly string[], input?: string) => Promise<string>; calls: { cmd: string; input?: string }[] } {
    const calls: { cmd: string; input?: string }[] = [];
    return {
      calls,
      run: async (cmd, _args, input) => {
        calls.push({ cmd, ...(input !== undefined ? { input } : {}) });
        return cmd.endsWith('-save') ? '*nat\nCOMMIT\n*filter\nCOMMIT\n' : '';
      },
    };
  }
  const ports = (name: string, ips: string[]) => desiredService(service('ns', name, { clusterIPs: [`10.96.0.${name.length}`] }), [slice('ns', name, ips.map((ip) => endpoint(ip)))], nodeCtx).ports;

  it('a partial sync restores only what changed and reads nothing back; a full sync starts over', async () => {
    const r = recorder();
    const dp = new IptablesDataplane(r.run, [4], 'legacy');
    await dp.full(new Map([['ns/a', ports('a', ['10.244.1.5'])], ['ns/bb', ports('bb', ['10.244.1.6'])]]), nodeCtx);
    expect(r.calls.filter((c) => c.cmd === 'iptables-legacy-save')).toHaveLength(1);
    const b = ports('bb', ['10.244.1.6'])[0]!;
    r.calls.length = 0;
    const moved = ports('a', ['10.244.1.7']);
    await dp.partial([{ key: 'ns/a', ports: moved }], nodeCtx);
    expect(r.calls.map((c) => c.cmd)).toEqual(['iptables-legacy-restore']);
    const text = r.calls[0]!.input!;
    expect(text).toContain(`:${svcChain(moved[0]!)} - [0:0]`);
    expect(text).toContain('--to-destination 10.244.1.7:8080');
    expect(text).toContain(`-X ${sepChain(moved[0]!, { ip: '10.244.1.5', port: 8080, local: true, nodeName: 'node-a' })}`);
    expect(text).not.toContain(svcChain(b));
    expect(text).not.toContain('SKIFF-SERVICES');
    r.calls.length = 0;
    await dp.partial([{ key: 'ns/a', ports: moved }], nodeCtx);
    expect(r.calls).toEqual([]);
    // The drift repair's full sync: read back, every chain rewritten (b's too, unchanged as it is).
    await dp.full(new Map([['ns/a', moved], ['ns/bb', [b]]]), nodeCtx);
    expect(r.calls.map((c) => c.cmd)).toContain('iptables-legacy-save');
    expect(r.calls.find((c) => c.cmd === 'iptables-legacy-restore')!.input).toContain(`:${svcChain(b)} - [0:0]`);
  });

  it('with iptables-nft, a check reads nothing back while the generation shows only its own commits; another commit or an hour makes it list', async () => {
    // A kernel in miniature: each restore and each inserted rule is one commit; save shows the last full restore.
    let gen = 100;
    let saved = '*nat\nCOMMIT\n*filter\nCOMMIT\n';
    const saves: string[] = [];
    const run = async (cmd: string, args: readonly string[], input?: string): Promise<string> => {
      if (cmd.endsWith('-save')) {
        saves.push(cmd);
        return saved;
      }
      if (cmd.endsWith('-restore')) {
        gen++;
        // Only a full restore's text is a whole table (a partial one carries the changed chains).
        if (input!.includes(':SKIFF-SERVICES')) {
          const gone = [...input!.matchAll(/^-X (\S+)$/gm)].map((m) => m[1]!);
          saved = input!.split('\n').filter((l) => !gone.some((c) => l.startsWith(`:${c} `) || l === `-X ${c}`)).join('\n');
        }
      } else if (args.includes('-I')) gen++;
      return '';
    };
    let now = 0;
    const dp = new IptablesDataplane(run, [4], 'nft', { generation: async () => gen, now: () => now });
    await dp.full(new Map([['ns/a', ports('a', ['10.244.1.5'])]]), nodeCtx);
    expect(saves).toHaveLength(1);
    expect(await dp.verify()).toEqual([]);
    expect(saves).toHaveLength(1);
    await dp.partial([{ key: 'ns/a', ports: ports('a', ['10.244.1.7']) }], nodeCtx);
    expect(await dp.verify()).toEqual([]);
    expect(saves).toHaveLength(1);
    // Someone else's commit (a CNI plugin's, kubelet's): read once, then quiet again.
    gen++;
    saved = saved.replace(/^-A SKIFF-SERVICES .*$/m, '');
    expect((await dp.verify()).join()).toContain('SKIFF-SERVICES');
    expect(saves).toHaveLength(2);
    await dp.full(new Map([['ns/a', ports('a', ['10.244.1.7'])]]), nodeCtx);
    expect(await dp.verify()).toEqual([]);
    const listed = saves.length;
    now += 60 * 60_000;
    expect(await dp.verify()).toEqual([]);
    expect(saves).toHaveLength(listed + 1);
    expect(await dp.verify()).toEqual([]);
    expect(saves).toHaveLength(listed + 1);
    // Legacy iptables has no generation: every check reads the tables.
    const legacy = new IptablesDataplane(run, [4], 'legacy', { generation: async () => gen, now: () => now });
    await legacy.full(new Map([['ns/a', ports('a', ['10.244.1.7'])]]), nodeCtx);
    const n = saves.length;
    await legacy.verify();
    await legacy.verify();
    expect(saves).toHaveLength(n + 2);
  });
});
