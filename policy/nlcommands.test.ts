// The first step of a diff as nf_tables messages: which lines have an encoding (the rest goes to
// nft), and the attributes, as `nft --debug=mnl` showed nft 1.0.6 sending them. The kernel test
// (policy/test/kernel.test.ts, "the netlink element path") loads them and compares the listing
// with a full load through nft.
import { describe, expect, it } from 'vitest';
import { commandMessage, parseCommands } from './nlcommands.js';
import { desiredState } from './desired.js';
import { cluster, policy } from './fixtures.js';
import { diffPlan, render } from './render.js';

const T = 'inet skiff-policy';
const sel = (matchLabels: Record<string, string>) => ({ matchLabels });
const one = (line: string) => parseCommands('skiff-policy', [line]);

describe('nf_tables commands for a diff first step', () => {
  it('encodes every line of a NetworkPolicy diff: counters, sets, chains, per-pod and rule chains', () => {
    const web = policy('web', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }, { ipBlock: { cidr: '192.168.0.0/16', except: [] } }], ports: [{ port: 80 }, { protocol: 'UDP' }] }] });
    const out = policy('out', { podSelector: sel({ pod: 'a' }), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: sel({ ns: 'y' }) }], ports: [{ port: 'serve-81-udp', protocol: 'UDP' }, { port: 53, protocol: 'UDP' }] }] });
    const node = { nodeName: 'n1', dnsAddresses: ['10.96.0.10'] };
    const lines = diffPlan(render(desiredState(cluster([]), node)), render(desiredState(cluster([web, out]), node))).before.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(20);
    expect(parseCommands('skiff-policy', lines)?.map((c) => c.kind)).toEqual(lines.map((l) => (l.startsWith('add rule') ? 'rule' : l.split(' ')[1])));
    const web2 = policy('web', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ pod: 'c' }) }] }] });
    const rewrite = diffPlan(render(desiredState(cluster([web]), node)), render(desiredState(cluster([web2]), node))).before.trimEnd().split('\n');
    expect(rewrite).toContain(`flush chain ${T} r.x.web.in0`);
    expect(parseCommands('skiff-policy', rewrite)).toBeDefined();
  });

  it('leaves to nft what it does not encode: maps, timeouts, base chains, logging, other tables', () => {
    for (const line of [
      `add map ${T} ingress4 { type ipv4_addr : verdict ; }`,
      `add set ${T} s.cnp.f.eg0.fqdn4 { type ipv4_addr ; flags timeout ; }`,
      `add chain ${T} ingress { type filter hook forward priority 1 ; policy accept ; }`,
      `add rule ${T} in.x.a limit rate 10/second burst 20 packets log prefix "skiff-policy deny in x/a: " level info`,
      `add rule ${T} in.x.a ip saddr 10.0.0.1 counter accept`,
      `add rule ${T} in.x.a ip saddr fd00::1 accept`,
      `add rule inet other c accept`,
      `delete chain ${T} in.x.a`,
    ])
      expect(one(line), line).toBeUndefined();
    expect(parseCommands('skiff-policy', [`add chain ${T} r.x.a.in0`, `add map ${T} m { type ipv4_addr : verdict ; }`])).toBeUndefined();
  });

  it('sends the attributes nft sends (its --debug=mnl dumps, table t, chain c)', () => {
    // nft 1.0.6's dump notation: "[len L N- tT]" an attribute header (N: nested), then the words.
    const mnl = (dump: string): string =>
      dump.replace(/\[len (\d+) (N|-)- t(\d+)\]/g, (_, len: string, n: string, t: string) => {
        const b = Buffer.alloc(4);
        b.writeUInt16LE(Number(len), 0);
        b.writeUInt16LE(Number(t) | (n === 'N' ? 0x8000 : 0), 2);
        return b.toString('hex');
      }).replace(/\s+/g, '');
    const ours = (line: string): string => {
      const c = parseCommands('t', [line.replace('TABLE', 'inet t')]);
      expect(c, line).toBeDefined();
      return Buffer.concat(commandMessage('t', c![0]!, 1).attrs).toString('hex');
    };
    expect(ours('add set TABLE dbg1 { type ipv4_addr ; }')).toBe(mnl('[len 6 -- t1] 74000000 [len 9 -- t2] 64626731 00000000 [len 8 -- t3] 00000000 [len 8 -- t4] 00000007 [len 8 -- t5] 00000004 [len 8 -- t10] 00000001 [len 10 -- t13] 00040200 00000000'));
    expect(ours('add set TABLE dbg2 { type ipv4_addr ; flags interval ; }')).toBe(mnl('[len 6 -- t1] 74000000 [len 9 -- t2] 64626732 00000000 [len 8 -- t3] 00000004 [len 8 -- t4] 00000007 [len 8 -- t5] 00000004 [len 8 -- t10] 00000001 [len 10 -- t13] 00040200 00000000'));
    expect(ours('add set TABLE dbg3 { type inet_proto . inet_service ; flags interval ; }')).toBe(
      mnl('[len 6 -- t1] 74000000 [len 9 -- t2] 64626733 00000000 [len 8 -- t3] 00000084 [len 8 -- t4] 0000030d [len 8 -- t5] 00000008 [len 8 -- t10] 00000001 [len 32 N- t9] [len 28 N- t2] [len 12 N- t1] [len 8 -- t1] 00000001 [len 12 N- t1] [len 8 -- t1] 00000002 [len 20 -- t13] 00040000 00000308 00040d00 00000100'),
    );
    expect(ours('add set TABLE dbg4 { type ipv4_addr . inet_proto . inet_service ; }')).toBe(mnl('[len 6 -- t1] 74000000 [len 9 -- t2] 64626734 00000000 [len 8 -- t3] 00000000 [len 8 -- t4] 0000730d [len 8 -- t5] 0000000c [len 8 -- t10] 00000001 [len 20 -- t13] 00040000 00000308 00040d00 00000100'));
    expect(ours('add set TABLE dbg6 { type ipv6_addr . inet_proto . inet_service ; }')).toBe(mnl('[len 6 -- t1] 74000000 [len 9 -- t2] 64626736 00000000 [len 8 -- t3] 00000000 [len 8 -- t4] 0000830d [len 8 -- t5] 00000018 [len 8 -- t10] 00000001 [len 20 -- t13] 00040000 00000308 00040d00 00000100'));
    expect(ours('add set TABLE dbg7 { type ipv6_addr ; flags interval ; }')).toBe(mnl('[len 6 -- t1] 74000000 [len 9 -- t2] 64626737 00000000 [len 8 -- t3] 00000004 [len 8 -- t4] 00000008 [len 8 -- t5] 00000010 [len 8 -- t10] 00000001 [len 10 -- t13] 00040200 00000000'));
    expect(ours('add chain TABLE dbgc')).toBe(mnl('[len 6 -- t1] 74000000 [len 9 -- t3] 64626763 00000000'));
    expect(ours('add counter TABLE dbgk')).toBe(mnl('[len 6 -- t1] 74000000 [len 9 -- t2] 6462676b 00000000 [len 8 -- t3] 00000001 [len 28 N- t4] [len 12 -- t1] 00000000 00000000 [len 12 -- t2] 00000000 00000000'));
    const rule = '[len 6 -- t1] 74000000 [len 6 -- t2] 63000000';
    const accept = '[len 48 N- t1] [len 14 -- t1] 696d6d65 64696174 65000000 [len 28 N- t2] [len 8 -- t1] 00000000 [len 16 N- t2] [len 12 N- t2] [len 8 -- t1] 00000001';
    expect(ours('add rule TABLE c jump c2')).toBe(mnl(`${rule} [len 60 N- t4] [len 56 N- t1] [len 14 -- t1] 696d6d65 64696174 65000000 [len 36 N- t2] [len 8 -- t1] 00000000 [len 24 N- t2] [len 20 N- t2] [len 8 -- t1] fffffffd [len 7 -- t2] 63320000`));
    expect(ours('add rule TABLE c counter name "cnt1" drop')).toBe(
      mnl(`${rule} [len 88 N- t4] [len 36 N- t1] [len 11 -- t1] 6f626a72 65660000 [len 20 N- t2] [len 8 -- t1] 00000001 [len 8 -- t2] 636e7431 [len 48 N- t1] [len 14 -- t1] 696d6d65 64696174 65000000 [len 28 N- t2] [len 8 -- t1] 00000000 [len 16 N- t2] [len 12 N- t2] [len 8 -- t1] 00000000`),
    );
    const ipv4 = '[len 36 N- t1] [len 9 -- t1] 6d657461 00000000 [len 20 N- t2] [len 8 -- t2] 0000000f [len 8 -- t1] 00000001 [len 44 N- t1] [len 8 -- t1] 636d7000 [len 32 N- t2] [len 8 -- t1] 00000001 [len 8 -- t2] 00000000 [len 12 N- t3] [len 5 -- t1] 02000000';
    expect(ours('add rule TABLE c ip saddr 10.244.1.11 accept')).toBe(
      mnl(`${rule} [len 228 N- t4] ${ipv4} [len 52 N- t1] [len 12 -- t1] 7061796c 6f616400 [len 36 N- t2] [len 8 -- t1] 00000001 [len 8 -- t2] 00000001 [len 8 -- t3] 0000000c [len 8 -- t4] 00000004 [len 44 N- t1] [len 8 -- t1] 636d7000 [len 32 N- t2] [len 8 -- t1] 00000001 [len 8 -- t2] 00000000 [len 12 N- t3] [len 8 -- t1] 0af4010b ${accept}`),
    );
    expect(ours('add rule TABLE c udp dport 53 accept')).toBe(
      mnl(`${rule} [len 228 N- t4] [len 36 N- t1] [len 9 -- t1] 6d657461 00000000 [len 20 N- t2] [len 8 -- t2] 00000010 [len 8 -- t1] 00000001 [len 44 N- t1] [len 8 -- t1] 636d7000 [len 32 N- t2] [len 8 -- t1] 00000001 [len 8 -- t2] 00000000 [len 12 N- t3] [len 5 -- t1] 11000000 [len 52 N- t1] [len 12 -- t1] 7061796c 6f616400 [len 36 N- t2] [len 8 -- t1] 00000001 [len 8 -- t2] 00000002 [len 8 -- t3] 00000002 [len 8 -- t4] 00000002 [len 44 N- t1] [len 8 -- t1] 636d7000 [len 32 N- t2] [len 8 -- t1] 00000001 [len 8 -- t2] 00000000 [len 12 N- t3] [len 6 -- t1] 00350000 ${accept}`),
    );
    // Lookups by set name; nft also sends a batch-local set id (NFTA_LOOKUP_SET_ID), which the
    // kernel consults only when the name is unknown. Without it, the rest is nft's.
    const lookupA = '[len 36 N- t1] [len 11 -- t1] 6c6f6f6b 75700000 [len 20 N- t2] [len 8 -- t2] 00000001 [len 6 -- t1] 61000000';
    const nftPorts = `${ipv4} [len 52 N- t1] [len 12 -- t1] 7061796c 6f616400 [len 36 N- t2] [len 8 -- t1] 00000001 [len 8 -- t2] 00000001 [len 8 -- t3] 0000000c [len 8 -- t4] 00000004 [len 44 N- t1] [len 11 -- t1] 6c6f6f6b 75700000 [len 28 N- t2] [len 8 -- t2] 00000001 [len 6 -- t1] 61000000 [len 8 -- t4] 00000002 [len 36 N- t1] [len 9 -- t1] 6d657461 00000000 [len 20 N- t2] [len 8 -- t2] 00000010 [len 8 -- t1] 00000001 [len 64 N- t1] [len 14 -- t1] 62797465 6f726465 72000000 [len 44 N- t2] [len 8 -- t1] 00000001 [len 8 -- t2] 00000001 [len 8 -- t3] 00000001 [len 8 -- t4] 00000001 [len 8 -- t5] 00000002 [len 52 N- t1] [len 12 -- t1] 7061796c 6f616400 [len 36 N- t2] [len 8 -- t1] 00000009 [len 8 -- t2] 00000002 [len 8 -- t3] 00000002 [len 8 -- t4] 00000002 [len 44 N- t1] [len 11 -- t1] 6c6f6f6b 75700000 [len 28 N- t2] [len 8 -- t2] 00000001 [len 6 -- t1] 70000000 [len 8 -- t4] 00000001 ${accept}`;
    const ourPorts = ours('add rule TABLE c ip saddr @a meta l4proto . th dport @p accept');
    expect(ourPorts).toContain(mnl(lookupA));
    expect(ourPorts.slice(mnl(rule).length + 8)).toBe(mnl(nftPorts.replace(/\[len 44 N- t1\] \[len 11 -- t1\] 6c6f6f6b 75700000 \[len 28 N- t2\] \[len 8 -- t2\] 00000001 \[len 6 -- t1\] (\S+) \[len 8 -- t4\] 0000000\d/g, '[len 36 N- t1] [len 11 -- t1] 6c6f6f6b 75700000 [len 20 N- t2] [len 8 -- t2] 00000001 [len 6 -- t1] $1')));
  });
});
