import { describe, expect, it } from 'vitest';
import { desiredService } from '../desired.js';
import { endpoint, nodeCtx, service, slice } from '../fixtures.js';
import { parseSave } from './dataplane.js';
import { renderIptables, restoreText, sepChain, svcChain } from './render.js';

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
    expect(t.filter.get('SKIFF-SERVICES')).toEqual(['-d 10.96.0.10/32 -j REJECT']);
    expect(svcChain(sp)).toMatch(/^SKIFF-SVC-[A-Z0-9]{16}$/);
  });

  it('rejects Services without endpoints in the filter table', () => {
    const empty = desiredService(service('ns', 'e', { clusterIPs: ['10.96.0.20'] }), [], nodeCtx).ports[0]!;
    const t = renderIptables(4, [empty], nodeCtx);
    expect(t.filter.get('SKIFF-SERVICES')).toEqual(['-d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j REJECT', '-d 10.96.0.20/32 -j REJECT']);
  });

  it('restore text declares, fills and deletes stale chains', () => {
    const text = restoreText({ nat: new Map([['SKIFF-A', ['-j RETURN']]]), filter: new Map() }, { nat: ['SKIFF-OLD'], filter: [] });
    expect(text).toBe('*filter\nCOMMIT\n*nat\n:SKIFF-A - [0:0]\n:SKIFF-OLD - [0:0]\n-A SKIFF-A -j RETURN\n-X SKIFF-OLD\nCOMMIT\n');
    expect(parseSave('*nat\n:PREROUTING ACCEPT [0:0]\n:SKIFF-A - [0:0]\n-A PREROUTING -j SKIFF-A\n-A SKIFF-A -j RETURN\nCOMMIT\n').nat).toEqual(new Map([['SKIFF-A', 1]]));
  });
});
