// Strict mode's choice of conntrack entries: parsed from conntrack's own text, judged by the
// engine on the node's desired state, never the node's own connections.
import { describe, expect, it } from 'vitest';
import { deleteArgs, deniedFlows, mayDeny, parseConntrack } from './conntrack.js';
import { desiredState } from './desired.js';
import type { NetworkPolicy, PolicyPod } from './model.js';

const LIST = `tcp      6 431999 ESTABLISHED src=10.244.7.2 dst=10.244.7.3 sport=40000 dport=80 src=10.244.7.3 dst=10.244.7.2 sport=80 dport=40000 [ASSURED] mark=0 use=1
tcp      6 431999 ESTABLISHED src=10.244.8.9 dst=10.96.0.20 sport=40001 dport=8080 src=10.244.7.3 dst=10.244.8.9 sport=80 dport=40001 [ASSURED] mark=0 use=1
udp      17 29 src=10.244.7.4 dst=10.244.7.3 sport=5353 dport=80 [UNREPLIED] src=10.244.7.3 dst=10.244.7.4 sport=80 dport=5353 mark=0 use=1
tcp      6 100 ESTABLISHED src=10.244.7.1 dst=10.244.7.3 sport=40002 dport=80 src=10.244.7.3 dst=10.244.7.1 sport=80 dport=40002 [ASSURED] mark=0 use=1
icmp     1 29 src=10.244.7.2 dst=10.244.7.3 type=8 code=0 id=7 src=10.244.7.3 dst=10.244.7.2 type=0 code=0 id=7 mark=0 use=1
tcp      6 431999 ESTABLISHED src=fd00::2 dst=fd00::3 sport=40003 dport=81 src=fd00::3 dst=fd00::2 sport=81 dport=40003 [ASSURED] mark=0 use=1
conntrack v1.4.8 (conntrack-tools): 6 flow entries have been shown.`;

const sel = (labels: Record<string, string>) => ({ matchLabels: labels, matchExpressions: [] });
const pod = (name: string, ips: string[], labels: Record<string, string>, nodeName = 'n1'): PolicyPod => ({ namespace: 'x', name, nodeName, hostNetwork: false, podIPs: ips, labels, namedPorts: [] });
const pods = [pod('a', ['10.244.7.2', 'fd00::2'], { app: 'a' }), pod('b', ['10.244.7.3', 'fd00::3'], { app: 'b' }), pod('c', ['10.244.7.4'], { app: 'c' }), pod('r', ['10.244.8.9'], { app: 'a' }, 'n2')];
const onlyFromA: NetworkPolicy = { namespace: 'x', name: 'b-from-a', podSelector: sel({ app: 'b' }), policyTypes: ['Ingress'], ingress: [{ peers: [{ podSelector: sel({ app: 'a' }) }], ports: [{ protocol: 'TCP', port: 80 }] }], egress: [] };
const aNoEgress: NetworkPolicy = { namespace: 'x', name: 'a-no-egress', podSelector: sel({ app: 'a' }), policyTypes: ['Egress'], ingress: [], egress: [] };
const ns = [{ name: 'x', labels: {} }];

describe('strict mode conntrack', () => {
  it('parses both directions of TCP, UDP and IPv6 entries and skips the rest', () => {
    const flows = parseConntrack(LIST);
    expect(flows).toHaveLength(5);
    expect(flows[1]).toEqual({ protocol: 'TCP', family: 4, orig: { src: '10.244.8.9', dst: '10.96.0.20', sport: 40001, dport: 8080 }, reply: { src: '10.244.7.3', dst: '10.244.8.9', sport: 80, dport: 40001 } });
    expect(flows[2]!.protocol).toBe('UDP');
    expect(flows[4]!.family).toBe(6);
  });

  it('skips TCP connections that are over (TIME_WAIT, CLOSE): nothing to cut there', () => {
    const over = `tcp      6 119 TIME_WAIT src=10.244.7.4 dst=10.244.7.3 sport=40000 dport=80 src=10.244.7.3 dst=10.244.7.4 sport=80 dport=40000 [ASSURED] mark=0 use=1
tcp      6 9 CLOSE src=10.244.7.4 dst=10.244.7.3 sport=40001 dport=80 src=10.244.7.3 dst=10.244.7.4 sport=80 dport=40001 [ASSURED] mark=0 use=1
tcp      6 59 FIN_WAIT src=10.244.7.4 dst=10.244.7.3 sport=40002 dport=80 src=10.244.7.3 dst=10.244.7.4 sport=80 dport=40002 [ASSURED] mark=0 use=1`;
    expect(parseConntrack(over).map((f) => f.orig.sport)).toEqual([40002]);
  });

  it('picks flows the new state denies, judged after DNAT, and never the node\'s own', () => {
    const d = desiredState({ policies: [onlyFromA], pods, namespaces: ns }, { nodeName: 'n1' });
    const denied = deniedFlows(d, parseConntrack(LIST), new Set(['10.244.7.1']));
    // a->b:80 allowed; r (a remote app=a pod) through a Service VIP to b:80 allowed (judged on the
    // endpoint); c->b UDP denied; the node (10.244.7.1) is never cut; a->b:81 over IPv6 denied (port).
    expect(denied.map((x) => `${x.flow.orig.src}>${x.flow.reply.src}:${x.flow.reply.sport} ${x.pod} ${x.direction}`)).toEqual(['10.244.7.4>10.244.7.3:80 x/b ingress', 'fd00::2>fd00::3:81 x/b ingress']);
    expect(deleteArgs(denied[1]!.flow)).toEqual(['-D', '-f', 'ipv6', '-p', 'tcp', '--orig-src', 'fd00::2', '--orig-dst', 'fd00::3', '--sport', '40003', '--dport', '81']);
  });

  it('cuts egress of a pod whose egress is now denied, where it started the flow', () => {
    const d = desiredState({ policies: [aNoEgress], pods, namespaces: ns }, { nodeName: 'n1' });
    const denied = deniedFlows(d, parseConntrack(LIST), new Set());
    expect(denied.map((x) => `${x.flow.orig.src} ${x.pod} ${x.direction}`)).toEqual(['10.244.7.2 x/a egress', 'fd00::2 x/a egress']);
  });

  it('cuts nothing when nothing is isolated', () => {
    const d = desiredState({ policies: [], pods, namespaces: ns }, { nodeName: 'n1' });
    expect(deniedFlows(d, parseConntrack(LIST), new Set())).toEqual([]);
  });

  it.each([
    ['a peer pod added elsewhere', 'add element inet skiff-policy s.x.p.in0.pods4 { 10.244.8.9 }\n', false],
    ['peers and named entries added', 'add element inet skiff-policy s.x.p.in0.pods4 { 10.244.8.9 }\nadd element inet skiff-policy s.x.p.eg0.named4 { 10.244.8.9 . tcp . 80 }\n', false],
    ['a pod entering isolation', 'add element inet skiff-policy ingress4 { 10.244.7.3 : jump in.x.b }\n', true],
    ['a peer removed', 'delete element inet skiff-policy s.x.p.in0.pods4 { 10.244.8.9 }\n', true],
    ['a chain rewritten', 'flush chain inet skiff-policy in.x.b\nadd rule inet skiff-policy in.x.b drop\n', true],
  ])('reads conntrack after %s: %s', (_n, text, expected) => {
    expect(mayDeny(text)).toBe(expected);
  });
});
