import { describe, expect, it } from 'vitest';
import { AutopathPlugin } from './autopath.js';
import { PrefixSet } from './cidr.js';
import { resolvConfServers } from './forward/plugin.js';
import { KubernetesPlugin } from './kubernetes/plugin.js';
import { ZoneIndex } from './kubernetes/zone-index.js';
import { LoadBalancePlugin, shuffleAnswer } from './loadbalance.js';
import { chain, makeRequest, type Plugin, type Reply, type Request } from './plugin.js';
import { cacheWith, pod, service } from './testing/fixtures.js';
import { rrsText } from './wire/text.js';
import { CLASS_IN, Rcode, Type, newMessage, replyTo, type RR } from './wire/types.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Stands in for cache+forward: knows example.org, counts what reaches it. */
class FakeUpstream implements Plugin {
  readonly name = 'forward';
  seen: string[] = [];
  async serve(req: Request): Promise<Reply> {
    this.seen.push(req.qname);
    req.answeredBy = this.name;
    if (req.qname !== 'example.org') return { ...replyTo(req.msg, Rcode.NXDOMAIN) };
    const m = replyTo(req.msg);
    if (req.q.type === Type.A) m.answer = [{ name: req.q.name, type: Type.A, class: CLASS_IN, ttl: 60, data: '192.0.2.1' }];
    return m;
  }
}

function setup() {
  const cache = cacheWith({ namespaces: ['default'], services: [service('default', 'web', { clusterIPs: ['10.96.0.20'] })], pods: [pod('default', 'client', ['10.244.0.9']), pod('default', 'host', ['192.168.1.10'], { hostNetwork: true })] });
  const index = new ZoneIndex('cluster.local');
  index.load(cache);
  const kube = new KubernetesPlugin({ zone: 'cluster.local', index, dnsIPs: ['10.96.0.10'], ownedReverse: new PrefixSet([]), ttl: () => 30, synced: () => true });
  const up = new FakeUpstream();
  const auto = new AutopathPlugin({ zone: 'cluster.local', pods: cache.store('pods'), server: 'dns://:53', enabled: () => true });
  return { next: chain([auto, kube, up]), up };
}

async function ask(next: ReturnType<typeof setup>['next'], name: string, src: string, type: number = Type.A): Promise<Reply> {
  return next(makeRequest(newMessage({ id: 1, rd: true, question: [{ name, type, class: CLASS_IN }] }), src, 'udp'));
}

describe('autopath', () => {
  it('answers the first search expansion of an external name with a CNAME and its records', async () => {
    const { next, up } = setup();
    const r = await ask(next, 'example.org.default.svc.cluster.local', '10.244.0.9');
    expect(r.rcode).toBe(Rcode.NOERROR);
    expect(rrsText(r.answer)).toEqual(['example.org.default.svc.cluster.local. 30 in cname example.org.', 'example.org. 60 in a 192.0.2.1']);
    expect(up.seen).toEqual(['example.org']);
  });

  it('resolves in-cluster names given with their namespace or in full', async () => {
    const { next } = setup();
    const r = await ask(next, 'web.default.default.svc.cluster.local', '10.244.0.9');
    expect(rrsText(r.answer)).toEqual(['web.default.default.svc.cluster.local. 30 in cname web.default.svc.cluster.local.', 'web.default.svc.cluster.local. 30 in a 10.96.0.20']);
    const full = await ask(next, 'web.default.svc.cluster.local.default.svc.cluster.local', '10.244.0.9');
    expect(full.answer[1]!.data).toBe('10.96.0.20');
  });

  it('keeps a NODATA target behind its CNAME, and NXDOMAIN when nothing exists', async () => {
    const { next } = setup();
    const aaaa = await ask(next, 'example.org.default.svc.cluster.local', '10.244.0.9', Type.AAAA);
    expect(rrsText(aaaa.answer)).toEqual(['example.org.default.svc.cluster.local. 30 in cname example.org.']);
    const nx = await ask(next, 'nothing.example.default.svc.cluster.local', '10.244.0.9');
    expect(nx.rcode).toBe(Rcode.NXDOMAIN);
  });

  it('leaves unknown clients, hostNetwork pods and other namespaces alone', async () => {
    const { next, up } = setup();
    for (const [name, src] of [
      ['example.org.default.svc.cluster.local', '10.244.0.99'],
      ['example.org.default.svc.cluster.local', '192.168.1.10'],
      ['example.org.other.svc.cluster.local', '10.244.0.9'],
    ] as const) {
      expect((await ask(next, name, src)).rcode).toBe(Rcode.NXDOMAIN);
    }
    expect(up.seen).toEqual([]);
  });
});

describe('loadbalance', () => {
  const rr = (type: number, data: string): RR => ({ name: 'x', type, class: CLASS_IN, ttl: 1, data });
  it('keeps CNAMEs first and permutes the addresses', () => {
    const answer = [rr(Type.A, '1.1.1.1'), rr(Type.CNAME, 'y'), rr(Type.A, '2.2.2.2'), rr(Type.A, '3.3.3.3')];
    const orders = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const out = shuffleAnswer(answer);
      expect(out[0]!.type).toBe(Type.CNAME);
      expect(out.slice(1).map((r) => r.data).sort()).toEqual(['1.1.1.1', '2.2.2.2', '3.3.3.3']);
      orders.add(out.map((r) => r.data).join());
    }
    expect(orders.size).toBe(6);
  });

  it('does not touch the reply it was given', async () => {
    const m = replyTo(newMessage({ question: [{ name: 'x', type: 1, class: 1 }] }));
    m.answer = [rr(Type.A, '1.1.1.1'), rr(Type.A, '2.2.2.2')];
    const lb = new LoadBalancePlugin(() => 0);
    const out = await lb.serve(makeRequest(m, '10.0.0.1', 'udp'), () => m);
    expect(out.answer.map((r) => r.data)).toEqual(['2.2.2.2', '1.1.1.1']);
    expect(m.answer.map((r) => r.data)).toEqual(['1.1.1.1', '2.2.2.2']);
  });
});

describe('resolv.conf', () => {
  it('takes nameservers in order, bracketing IPv6', () => {
    const dir = mkdtempSync(join(tmpdir(), 'skiffdns-resolv-'));
    try {
      const f = join(dir, 'resolv.conf');
      writeFileSync(f, '# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions ndots:2\n');
      expect(resolvConfServers(f)).toEqual(['192.0.2.53', '[2001:db8::53]:53']);
      expect(resolvConfServers(join(dir, 'missing'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
