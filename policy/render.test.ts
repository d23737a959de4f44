import { describe, expect, it } from 'vitest';
import { desiredState, type PolicyInputs } from './desired.js';
import { cluster, netpolPod, policy } from './fixtures.js';
import { cleanupText, diffText, fullText, render } from './render.js';

const sel = (matchLabels: Record<string, string>) => ({ matchLabels });
const web = policy('web', {
  podSelector: sel({ pod: 'a' }),
  ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }, { ipBlock: { cidr: '192.168.0.0/16', except: ['192.168.0.0/17'] } }], ports: [{ port: 80 }, { port: 1000, endPort: 2000 }, { protocol: 'UDP' }] }],
});
const out = policy('out', {
  podSelector: sel({ pod: 'a' }),
  policyTypes: ['Egress'],
  egress: [{ to: [{ namespaceSelector: sel({ ns: 'y' }) }], ports: [{ port: 'serve-81-udp', protocol: 'UDP' }, { port: 53, protocol: 'UDP' }] }],
});
const table = (inputs: PolicyInputs, o = {}) => render(desiredState(inputs, { nodeName: 'n1', dnsAddresses: ['10.96.0.10'] }), o);

describe('render', () => {
  it('a full load: base chains, per-pod chains through verdict maps, shared rule chains, peer sets', () => {
    expect(fullText(table(cluster([web, out])))).toBe(
      [
        'add table inet skiff-policy',
        'delete table inet skiff-policy',
        'add table inet skiff-policy { comment "skiff network policy" ; }',
        'add counter inet skiff-policy drop-in.x.a',
        'add counter inet skiff-policy drop-out.x.a',
        'add map inet skiff-policy egress4 { type ipv4_addr : verdict ; }',
        'add map inet skiff-policy ingress4 { type ipv4_addr : verdict ; }',
        'add set inet skiff-policy dns4 { type ipv4_addr ; }',
        'add set inet skiff-policy denied4 { type ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service ; flags dynamic,timeout ; timeout 2m ; size 65536 ; }',
        'add set inet skiff-policy s.x.out.eg0.ports { type inet_proto . inet_service ; flags interval ; }',
        'add set inet skiff-policy s.x.out.eg0.pods4 { type ipv4_addr ; }',
        'add set inet skiff-policy s.x.out.eg0.named4 { type ipv4_addr . inet_proto . inet_service ; }',
        'add set inet skiff-policy s.x.web.in0.ports { type inet_proto . inet_service ; flags interval ; }',
        'add set inet skiff-policy s.x.web.in0.nets4 { type ipv4_addr ; flags interval ; }',
        'add chain inet skiff-policy egress { type filter hook forward priority 0 ; policy accept ; }',
        'add chain inet skiff-policy ingress { type filter hook forward priority 1 ; policy accept ; }',
        'add chain inet skiff-policy egress-node { type filter hook input priority 0 ; policy accept ; }',
        'add chain inet skiff-policy deny-in',
        'add chain inet skiff-policy deny-out',
        'add chain inet skiff-policy r.x.out.eg0',
        'add chain inet skiff-policy r.x.web.in0',
        'add chain inet skiff-policy in.x.a',
        'add chain inet skiff-policy out.x.a',
        'add element inet skiff-policy egress4 { 10.244.1.11 : jump out.x.a }',
        'add element inet skiff-policy ingress4 { 10.244.1.11 : jump in.x.a }',
        'add element inet skiff-policy dns4 { 10.96.0.10 }',
        'add element inet skiff-policy s.x.out.eg0.ports { udp . 53 }',
        'add element inet skiff-policy s.x.out.eg0.pods4 { 10.244.1.21, 10.244.1.23, 10.244.2.22 }',
        'add element inet skiff-policy s.x.out.eg0.named4 { 10.244.1.21 . udp . 81, 10.244.1.23 . udp . 81, 10.244.2.22 . udp . 81 }',
        'add element inet skiff-policy s.x.web.in0.ports { tcp . 80, tcp . 1000-2000, udp . 0-65535 }',
        'add element inet skiff-policy s.x.web.in0.nets4 { 192.168.128.0/17, 10.244.2.12 }',
        'add rule inet skiff-policy egress ct state established,related accept',
        'add rule inet skiff-policy egress ct state invalid drop',
        'add rule inet skiff-policy egress ip saddr vmap @egress4',
        'add rule inet skiff-policy ingress ct state established,related accept',
        'add rule inet skiff-policy ingress ip daddr vmap @ingress4',
        'add rule inet skiff-policy egress-node ct state established,related accept',
        'add rule inet skiff-policy egress-node ip saddr vmap @egress4',
        // A denied flow's retransmits end here uncounted; its first packet is remembered, then counted in its pod's chain.
        'add rule inet skiff-policy deny-in ip saddr . ip daddr . meta l4proto . th sport . th dport @denied4 drop',
        'add rule inet skiff-policy deny-in meta nfproto ipv4 add @denied4 { ip saddr . ip daddr . meta l4proto . th sport . th dport }',
        'add rule inet skiff-policy deny-out ip saddr . ip daddr . meta l4proto . th sport . th dport @denied4 drop',
        'add rule inet skiff-policy deny-out meta nfproto ipv4 add @denied4 { ip saddr . ip daddr . meta l4proto . th sport . th dport }',
        'add rule inet skiff-policy r.x.out.eg0 ip daddr @s.x.out.eg0.pods4 meta l4proto . th dport @s.x.out.eg0.ports accept',
        'add rule inet skiff-policy r.x.out.eg0 ip daddr . meta l4proto . th dport @s.x.out.eg0.named4 accept',
        // Pods and ipBlocks of one rule share its interval set: one set and one lookup fewer.
        'add rule inet skiff-policy r.x.web.in0 ip saddr @s.x.web.in0.nets4 meta l4proto . th dport @s.x.web.in0.ports accept',
        'add rule inet skiff-policy in.x.a ip saddr 10.244.1.11 accept',
        'add rule inet skiff-policy in.x.a jump r.x.web.in0',
        'add rule inet skiff-policy in.x.a jump deny-in',
        'add rule inet skiff-policy in.x.a counter name "drop-in.x.a" drop',
        'add rule inet skiff-policy out.x.a ip daddr 10.244.1.11 accept',
        'add rule inet skiff-policy out.x.a ip daddr @dns4 udp dport 53 accept',
        'add rule inet skiff-policy out.x.a jump r.x.out.eg0',
        'add rule inet skiff-policy out.x.a jump deny-out',
        'add rule inet skiff-policy out.x.a counter name "drop-out.x.a" drop',
      ].join('\n') + '\n',
    );
  });

  it('a pod coming and going is element adds and deletes only; nothing else is rewritten', () => {
    const base = cluster([web]);
    const before = table(base);
    const newcomer = netpolPod('x', 'd', { labels: { pod: 'b' }, podIPs: ['10.244.2.99'], nodeName: 'n2' });
    const after = table(cluster([web], { pods: [...base.pods, newcomer] }));
    expect(diffText(before, after)).toBe('add element inet skiff-policy s.x.web.in0.nets4 { 10.244.2.99 }\n');
    expect(diffText(after, before)).toBe('delete element inet skiff-policy s.x.web.in0.nets4 { 10.244.2.99 }\n');
    expect(diffText(after, after)).toBe('');
  });

  it('a local pod the policy starts selecting gets its chain and map element; the shared rule chain stays', () => {
    const base = cluster([web]);
    const before = table(base);
    const pods = base.pods.map((p) => (p.namespace === 'x' && p.name === 'c' ? { ...p, labels: { pod: 'a' } } : p));
    const after = table(cluster([web], { pods }));
    expect(diffText(before, after)).toBe(
      [
        'add counter inet skiff-policy drop-in.x.c',
        'add chain inet skiff-policy in.x.c',
        'add rule inet skiff-policy in.x.c ip saddr 10.244.1.13 accept',
        'add rule inet skiff-policy in.x.c jump r.x.web.in0',
        'add rule inet skiff-policy in.x.c jump deny-in',
        'add rule inet skiff-policy in.x.c counter name "drop-in.x.c" drop',
        'add element inet skiff-policy ingress4 { 10.244.1.13 : jump in.x.c }',
      ].join('\n') + '\n',
    );
    // And back: the element goes first, the chain is flushed before it is deleted, the counter last.
    expect(diffText(after, before)).toBe(
      [
        'delete element inet skiff-policy ingress4 { 10.244.1.13 }',
        'flush chain inet skiff-policy in.x.c',
        'delete chain inet skiff-policy in.x.c',
        'delete counter inet skiff-policy drop-in.x.c',
      ].join('\n') + '\n',
    );
  });

  it('a pod scheduled here without an address has its rule chains and sets ahead; its address brings only its own chain and elements', () => {
    const only = policy('only-d', { podSelector: sel({ pod: 'd' }), ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }, { ipBlock: { cidr: '172.16.0.0/24' } }], ports: [{ port: 80 }] }] });
    const base = cluster([only]);
    const scheduled = netpolPod('x', 'd', { podIPs: [] });
    const pending = table(cluster([only], { pods: [...base.pods, scheduled] }));
    expect(pending.chains.has('r.x.only-d.in0')).toBe(true);
    expect([...pending.elements.get('s.x.only-d.in0.nets4')!.keys()]).toEqual(['172.16.0.0/24', '10.244.2.12']);
    expect(pending.chains.has('in.x.d')).toBe(false);
    expect(pending.counters.has('drop-in.x.d')).toBe(false);
    expect(fullText(pending)).not.toMatch(/in\.x\.d|10\.244\.1\.14/);
    const wired = table(cluster([only], { pods: [...base.pods, { ...scheduled, podIPs: ['10.244.1.14'] }] }));
    expect(diffText(pending, wired)).toBe(
      [
        'add counter inet skiff-policy drop-in.x.d',
        'add chain inet skiff-policy in.x.d',
        'add rule inet skiff-policy in.x.d ip saddr 10.244.1.14 accept',
        'add rule inet skiff-policy in.x.d jump r.x.only-d.in0',
        'add rule inet skiff-policy in.x.d jump deny-in',
        'add rule inet skiff-policy in.x.d counter name "drop-in.x.d" drop',
        'add element inet skiff-policy ingress4 { 10.244.1.14 : jump in.x.d }',
      ].join('\n') + '\n',
    );
  });

  it('a policy change rewrites its rule chain and swaps its sets; a deleted policy leaves nothing', () => {
    const before = table(cluster([web]));
    const web2 = policy('web', { podSelector: sel({ pod: 'a' }), ingress: [{ from: [{ podSelector: sel({ pod: 'c' }) }], ports: [{ port: 8080 }] }] });
    expect(diffText(before, table(cluster([web2])))).toBe(
      [
        // Without its ipBlock the rule's pods move to a plain set of their own.
        'add set inet skiff-policy s.x.web.in0.pods4 { type ipv4_addr ; }',
        'delete element inet skiff-policy s.x.web.in0.ports { tcp . 80, tcp . 1000-2000, udp . 0-65535 }',
        'flush chain inet skiff-policy r.x.web.in0',
        'add rule inet skiff-policy r.x.web.in0 ip saddr @s.x.web.in0.pods4 meta l4proto . th dport @s.x.web.in0.ports accept',
        'add element inet skiff-policy s.x.web.in0.ports { tcp . 8080 }',
        'add element inet skiff-policy s.x.web.in0.pods4 { 10.244.1.13 }',
        'delete set inet skiff-policy s.x.web.in0.nets4',
      ].join('\n') + '\n',
    );
    const none = table(cluster([]));
    const gone = diffText(before, none);
    expect(gone).toContain('delete element inet skiff-policy ingress4 { 10.244.1.11 }\n');
    expect(gone.indexOf('flush chain inet skiff-policy in.x.a')).toBeLessThan(gone.indexOf('delete chain inet skiff-policy r.x.web.in0'));
    expect(gone.indexOf('delete chain inet skiff-policy r.x.web.in0')).toBeLessThan(gone.indexOf('delete set inet skiff-policy s.x.web.in0.nets4'));
  });

  it('a change of ports and peers that keeps the rule shape is element changes only: no nft chain rewrite', () => {
    const before = table(cluster([web]));
    const web2 = policy('web', {
      podSelector: sel({ pod: 'a' }),
      ingress: [{ from: [{ podSelector: sel({ pod: 'c' }) }, { ipBlock: { cidr: '172.16.0.0/24', except: [] } }], ports: [{ port: 8080 }, { protocol: 'SCTP', port: 9000, endPort: 9005 }] }],
    });
    expect(diffText(before, table(cluster([web2])))).toBe(
      [
        'delete element inet skiff-policy s.x.web.in0.ports { tcp . 80, tcp . 1000-2000, udp . 0-65535 }',
        'delete element inet skiff-policy s.x.web.in0.nets4 { 192.168.128.0/17, 10.244.2.12 }',
        'add element inet skiff-policy s.x.web.in0.ports { sctp . 9000-9005, tcp . 8080 }',
        'add element inet skiff-policy s.x.web.in0.nets4 { 172.16.0.0/24, 10.244.1.13 }',
      ].join('\n') + '\n',
    );
  });

  it('all peers and all ports: a bare accept; dual-stack renders both families', () => {
    const pods = [netpolPod('x', 'a', { podIPs: ['10.244.1.11', 'fd00:244::11'] }), netpolPod('x', 'b', { podIPs: ['10.244.2.12', 'fd00:244::12'] })];
    const t = table(cluster([policy('all', { podSelector: {}, ingress: [{}] }), policy('b', { podSelector: {}, ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }, { ipBlock: { cidr: 'fd00:1::/64' } }] }] })], { pods }), { families: [4, 6] });
    expect(t.chains.get('r.x.all.in0')!.rules).toEqual(['accept']);
    // IPv4 has only the selected pods (a plain set); IPv6 has an ipBlock too, which holds both.
    expect(t.chains.get('r.x.b.in0')!.rules).toEqual(['ip saddr @s.x.b.in0.pods4 accept', 'ip6 saddr @s.x.b.in0.nets6 accept']);
    expect(t.elements.has('s.x.b.in0.pods6')).toBe(false);
    expect([...t.elements.get('s.x.b.in0.nets6')!.keys()]).toEqual(['fd00:1::/64', 'fd00:244::12']);
    expect(t.chains.get('in.x.a')!.rules.slice(0, 2)).toEqual(['ip saddr 10.244.1.11 accept', 'ip6 saddr fd00:244::11 accept']);
    expect(t.elements.get('ingress6')!.get('fd00:244::11')).toBe('jump in.x.a');
    expect(t.chains.get('ingress')!.rules).toEqual(['ct state established,related accept', 'ip daddr vmap @ingress4', 'ip6 daddr vmap @ingress6']);
  });

  it('counters name pod and direction; long names are hashed; the denied log is opt-in', () => {
    const long = 'p'.repeat(200);
    const pods = [netpolPod('x', long)];
    const t = table(cluster([policy(long, { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })], { pods }), { logDenied: true });
    const names = [...t.counters.keys()];
    expect(names).toHaveLength(2);
    for (const n of [...names, ...t.chains.keys(), ...t.sets.keys()]) expect(n.length).toBeLessThanOrEqual(200);
    expect([...t.counters.values()]).toEqual([
      { pod: `x/${long}`, direction: 'ingress' },
      { pod: `x/${long}`, direction: 'egress' },
    ]);
    // The pod's chain stays free of logging (a pod ADD writes it over netlink); the shared deny chain logs.
    expect(t.chains.get(names[0]!.replace('drop-in.', 'in.'))!.rules.slice(-2)).toEqual(['jump deny-in', `counter name "${names[0]}" drop`]);
    expect(t.chains.get('deny-in')!.rules.at(-1)).toBe('limit rate 10/second burst 20 packets log group 2719 prefix "skiff-policy deny in: "');
    expect(t.chains.get('deny-out')!.rules.at(-1)).toBe('limit rate 10/second burst 20 packets log group 2719 prefix "skiff-policy deny out: "');
    for (const c of table(cluster([web])).chains.values()) expect(c.rules.some((r) => r.includes('log'))).toBe(false);
  });

  it('cleanup deletes the table whether or not it exists', () => {
    expect(cleanupText()).toBe('add table inet skiff-policy\ndelete table inet skiff-policy\n');
  });
});
