import { describe, expect, it } from 'vitest';
import { MemoryCache } from '../../common/watch/store.js';
import { PrefixSet } from '../cidr.js';
import { makeRequest, type Reply } from '../plugin.js';
import { cacheWith, endpoint, service, slice } from '../testing/fixtures.js';
import { rrsText, normalizeZone } from '../wire/text.js';
import { Rcode, newMessage, rcodeName, replyTo, typeFromName } from '../wire/types.js';
import { KubernetesPlugin } from './plugin.js';
import { ZoneIndex } from './zone-index.js';

const objects = {
  namespaces: ['default', 'empty-ns'],
  services: [
    service('default', 'web', { clusterIPs: ['10.96.0.20'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }, { name: '', protocol: 'TCP', port: 81, targetPort: 81 }] }),
    service('default', 'dual', { clusterIPs: ['10.96.0.21', 'fd00:96::21'], ipFamilies: ['IPv4', 'IPv6'] }),
    service('default', 'db', { headless: true, ports: [{ name: 'pg', protocol: 'TCP', port: 5432, targetPort: 5432 }] }),
    service('default', 'nre', { headless: true, publishNotReadyAddresses: true }),
    service('default', 'lonely', { headless: true }),
    service('default', 'ext', { type: 'ExternalName', externalName: 'example.org' }),
    service('kube-system', 'kube-dns', { clusterIPs: ['10.96.0.10'], ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 53 }] }),
  ],
  slices: [
    slice('default', 'db', 'db-1', {
      ports: [{ name: 'pg', protocol: 'TCP', port: 5432 }],
      endpoints: [endpoint(['10.244.1.5'], { hostname: 'db-0' }), endpoint(['10.244.1.6']), endpoint(['10.244.1.7'], { ready: false, serving: false })],
    }),
    slice('default', 'nre', 'nre-1', { endpoints: [endpoint(['10.244.2.5'], { ready: false })] }),
    slice('default', 'db', 'db-v6', { addressType: 'IPv6', ports: [{ name: 'pg', protocol: 'TCP', port: 5432 }], endpoints: [endpoint(['fd00:244::5'], { hostname: 'db-0' })] }),
  ],
};

function setup(cache: MemoryCache = cacheWith(objects)) {
  const index = new ZoneIndex('cluster.local');
  index.load(cache);
  const unsub = cache.subscribe(['services', 'endpointslices', 'namespaces'], (b) => index.apply(b));
  const plugin = new KubernetesPlugin({
    zone: 'cluster.local',
    index,
    dnsIPs: ['10.96.0.10'],
    ownedReverse: new PrefixSet(['10.96.0.0/12', '10.244.0.0/16', 'fd00:244::/64']),
    ttl: () => 30,
    synced: () => cache.synced(['services', 'endpointslices']),
  });
  return { plugin, unsub, cache, index };
}

function ask(plugin: KubernetesPlugin, query: string): Reply {
  const [name, type] = query.split(' ') as [string, string];
  const msg = newMessage({ id: 1, rd: true, question: [{ name: name.replace(/\.$/, ''), type: typeFromName(type)!, class: 1 }] });
  const req = makeRequest(msg, '10.244.0.9', 'udp');
  const r = plugin.serve(req, (rq) => {
    rq.answeredBy = 'next';
    return replyTo(rq.msg, Rcode.REFUSED);
  });
  return r as Reply;
}

interface Row {
  q: string;
  rcode: keyof typeof Rcode;
  answer?: string;
  additional?: string;
  /** A negative answer must carry the SOA; true by default for NXDOMAIN and empty NOERROR. */
  soa?: boolean;
}

const SOA_NS = 'ns.dns.cluster.local.';

const table: Row[] = [
  { q: 'web.default.svc.cluster.local. A', rcode: 'NOERROR', answer: 'web.default.svc.cluster.local. 30 IN A 10.96.0.20' },
  { q: 'WEB.Default.svc.cluster.local. A', rcode: 'NOERROR', answer: 'WEB.Default.svc.cluster.local. 30 IN A 10.96.0.20' },
  { q: 'web.default.svc.cluster.local. AAAA', rcode: 'NOERROR' },
  { q: 'web.default.svc.cluster.local. TXT', rcode: 'NOERROR' },
  { q: 'dual.default.svc.cluster.local. AAAA', rcode: 'NOERROR', answer: 'dual.default.svc.cluster.local. 30 IN AAAA fd00:96::21' },
  { q: 'nope.default.svc.cluster.local. A', rcode: 'NXDOMAIN' },
  { q: 'web.nope.svc.cluster.local. A', rcode: 'NXDOMAIN' },
  { q: 'default.svc.cluster.local. A', rcode: 'NOERROR' },
  { q: 'empty-ns.svc.cluster.local. A', rcode: 'NOERROR' },
  { q: 'missing-ns.svc.cluster.local. A', rcode: 'NXDOMAIN' },
  { q: 'svc.cluster.local. A', rcode: 'NOERROR' },
  { q: 'a.b.c.web.default.svc.cluster.local. A', rcode: 'NXDOMAIN' },
  { q: 'other.cluster.local. A', rcode: 'NXDOMAIN' },
  // Headless: one A per ready endpoint; not-ready only with publishNotReadyAddresses.
  {
    q: 'db.default.svc.cluster.local. A',
    rcode: 'NOERROR',
    answer: `db.default.svc.cluster.local. 30 IN A 10.244.1.5
             db.default.svc.cluster.local. 30 IN A 10.244.1.6`,
  },
  { q: 'db.default.svc.cluster.local. AAAA', rcode: 'NOERROR', answer: 'db.default.svc.cluster.local. 30 IN AAAA fd00:244::5' },
  { q: 'nre.default.svc.cluster.local. A', rcode: 'NOERROR', answer: 'nre.default.svc.cluster.local. 30 IN A 10.244.2.5' },
  { q: 'lonely.default.svc.cluster.local. A', rcode: 'NXDOMAIN' },
  // hostname.subdomain records, and the dashed-IP name for endpoints without a hostname.
  {
    q: 'db-0.db.default.svc.cluster.local. A',
    rcode: 'NOERROR',
    answer: 'db-0.db.default.svc.cluster.local. 30 IN A 10.244.1.5',
  },
  { q: 'db-0.db.default.svc.cluster.local. AAAA', rcode: 'NOERROR', answer: 'db-0.db.default.svc.cluster.local. 30 IN AAAA fd00:244::5' },
  { q: '10-244-1-6.db.default.svc.cluster.local. A', rcode: 'NOERROR', answer: '10-244-1-6.db.default.svc.cluster.local. 30 IN A 10.244.1.6' },
  { q: '10-244-1-7.db.default.svc.cluster.local. A', rcode: 'NXDOMAIN' },
  { q: 'db-0.web.default.svc.cluster.local. A', rcode: 'NXDOMAIN' },
  // SRV on named ports, both kinds, with the targets' addresses in additional.
  {
    q: '_http._tcp.web.default.svc.cluster.local. SRV',
    rcode: 'NOERROR',
    answer: '_http._tcp.web.default.svc.cluster.local. 30 IN SRV 0 100 80 web.default.svc.cluster.local.',
    additional: 'web.default.svc.cluster.local. 30 IN A 10.96.0.20',
  },
  { q: '_http._tcp.web.default.svc.cluster.local. A', rcode: 'NOERROR' },
  { q: '_http._udp.web.default.svc.cluster.local. SRV', rcode: 'NXDOMAIN' },
  {
    q: '_pg._tcp.db.default.svc.cluster.local. SRV',
    rcode: 'NOERROR',
    answer: `_pg._tcp.db.default.svc.cluster.local. 30 IN SRV 0 50 5432 db-0.db.default.svc.cluster.local.
             _pg._tcp.db.default.svc.cluster.local. 30 IN SRV 0 50 5432 10-244-1-6.db.default.svc.cluster.local.`,
    additional: `db-0.db.default.svc.cluster.local. 30 IN A 10.244.1.5
                 db-0.db.default.svc.cluster.local. 30 IN AAAA fd00:244::5
                 10-244-1-6.db.default.svc.cluster.local. 30 IN A 10.244.1.6`,
  },
  {
    q: '_dns._udp.kube-dns.kube-system.svc.cluster.local. SRV',
    rcode: 'NOERROR',
    answer: '_dns._udp.kube-dns.kube-system.svc.cluster.local. 30 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local.',
    additional: 'kube-dns.kube-system.svc.cluster.local. 30 IN A 10.96.0.10',
  },
  // ExternalName is a CNAME whatever the type.
  { q: 'ext.default.svc.cluster.local. A', rcode: 'NOERROR', answer: 'ext.default.svc.cluster.local. 30 IN CNAME example.org.' },
  { q: 'ext.default.svc.cluster.local. AAAA', rcode: 'NOERROR', answer: 'ext.default.svc.cluster.local. 30 IN CNAME example.org.' },
  // PTR for ClusterIPs and headless endpoints; unknown addresses inside our CIDRs are NXDOMAIN.
  { q: '20.0.96.10.in-addr.arpa. PTR', rcode: 'NOERROR', answer: '20.0.96.10.in-addr.arpa. 30 IN PTR web.default.svc.cluster.local.' },
  { q: '5.1.244.10.in-addr.arpa. PTR', rcode: 'NOERROR', answer: '5.1.244.10.in-addr.arpa. 30 IN PTR db-0.db.default.svc.cluster.local.' },
  {
    q: '5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.4.2.0.0.0.d.f.ip6.arpa. PTR',
    rcode: 'NOERROR',
    answer: '5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.4.2.0.0.0.d.f.ip6.arpa. 30 IN PTR db-0.db.default.svc.cluster.local.',
  },
  { q: '99.0.96.10.in-addr.arpa. PTR', rcode: 'NXDOMAIN' },
  { q: '20.0.96.10.in-addr.arpa. A', rcode: 'NOERROR' },
  // Pod records, insecure mode: the name is the address.
  { q: '10-244-3-4.default.pod.cluster.local. A', rcode: 'NOERROR', answer: '10-244-3-4.default.pod.cluster.local. 30 IN A 10.244.3.4' },
  { q: 'fd00-244--9.default.pod.cluster.local. AAAA', rcode: 'NOERROR', answer: 'fd00-244--9.default.pod.cluster.local. 30 IN AAAA fd00:244::9' },
  { q: '10-244-3-4.default.pod.cluster.local. AAAA', rcode: 'NOERROR' },
  { q: '10-244-3-999.default.pod.cluster.local. A', rcode: 'NXDOMAIN' },
  { q: 'notanip.default.pod.cluster.local. A', rcode: 'NXDOMAIN' },
  // Zone apex, version, the DNS server's own name.
  { q: 'dns-version.cluster.local. TXT', rcode: 'NOERROR', answer: 'dns-version.cluster.local. 30 IN TXT "1.1.0"' },
  { q: 'cluster.local. NS', rcode: 'NOERROR', answer: 'cluster.local. 30 IN NS ns.dns.cluster.local.', additional: 'ns.dns.cluster.local. 30 IN A 10.96.0.10' },
  { q: 'ns.dns.cluster.local. A', rcode: 'NOERROR', answer: 'ns.dns.cluster.local. 30 IN A 10.96.0.10' },
  { q: 'cluster.local. A', rcode: 'NOERROR' },
];

describe('kubernetes plugin', () => {
  const { plugin } = setup();

  it.each(table)('$q -> $rcode', (row) => {
    const r = ask(plugin, row.q);
    expect(rcodeName(r.rcode)).toBe(row.rcode);
    expect(r.aa).toBe(true);
    expect(rrsText(r.answer).sort()).toEqual(normalizeZone(row.answer ?? '').sort());
    if (row.additional !== undefined) expect(rrsText(r.additional).sort()).toEqual(normalizeZone(row.additional).sort());
    const negative = r.answer.length === 0;
    expect(r.authority.length).toBe(negative ? 1 : 0);
    if (negative) expect(rrsText(r.authority)[0]).toContain(`soa ${SOA_NS} hostmaster.cluster.local.`);
  });

  it('answers the zone SOA', () => {
    const r = ask(plugin, 'cluster.local. SOA');
    expect(r.answer).toHaveLength(1);
    expect(rrsText(r.answer)[0]).toMatch(/^cluster\.local\. 30 in soa ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\. \d+ 7200 1800 86400 30$/);
  });

  it('passes names outside its zones to the next plugin', () => {
    for (const q of ['example.org. A', '8.8.8.8.in-addr.arpa. PTR', '10.in-addr.arpa. PTR']) {
      expect(ask(plugin, q).rcode).toBe(Rcode.REFUSED);
    }
  });
});

describe('kubernetes plugin before sync', () => {
  it('answers SERVFAIL for its zone until services and endpointslices are listed', () => {
    const cache = new MemoryCache();
    const { plugin } = setup(cache);
    expect(ask(plugin, 'web.default.svc.cluster.local. A').rcode).toBe(Rcode.SERVFAIL);
    cache.markSynced('services');
    expect(ask(plugin, 'web.default.svc.cluster.local. A').rcode).toBe(Rcode.SERVFAIL);
    cache.markSynced('endpointslices');
    expect(ask(plugin, 'web.default.svc.cluster.local. A').rcode).toBe(Rcode.NXDOMAIN);
  });
});

describe('kubernetes plugin follows watch events', () => {
  it('adds, changes and removes records as batches arrive', async () => {
    const { plugin, cache, unsub } = setup();
    const flush = () => new Promise((r) => setImmediate(r));
    cache.upsert('services', 'default/new', service('default', 'new', { clusterIPs: ['10.96.0.30'] }));
    await flush();
    expect(rrsText(ask(plugin, 'new.default.svc.cluster.local. A').answer)).toEqual(['new.default.svc.cluster.local. 30 in a 10.96.0.30']);
    expect(ask(plugin, '30.0.96.10.in-addr.arpa. PTR').answer).toHaveLength(1);
    cache.upsert('services', 'default/new', service('default', 'new', { clusterIPs: ['10.96.0.31'] }));
    await flush();
    expect(rrsText(ask(plugin, 'new.default.svc.cluster.local. A').answer)).toEqual(['new.default.svc.cluster.local. 30 in a 10.96.0.31']);
    expect(ask(plugin, '30.0.96.10.in-addr.arpa. PTR').rcode).toBe(Rcode.NXDOMAIN);
    // An address with two owners answers both; back to one, then none.
    cache.upsert('services', 'default/twin', service('default', 'twin', { clusterIPs: ['10.96.0.31'] }));
    await flush();
    expect(rrsText(ask(plugin, '31.0.96.10.in-addr.arpa. PTR').answer).sort()).toEqual(['31.0.96.10.in-addr.arpa. 30 in ptr new.default.svc.cluster.local.', '31.0.96.10.in-addr.arpa. 30 in ptr twin.default.svc.cluster.local.']);
    cache.remove('services', 'default/new');
    await flush();
    expect(rrsText(ask(plugin, '31.0.96.10.in-addr.arpa. PTR').answer)).toEqual(['31.0.96.10.in-addr.arpa. 30 in ptr twin.default.svc.cluster.local.']);
    cache.remove('services', 'default/twin');
    await flush();
    expect(ask(plugin, '31.0.96.10.in-addr.arpa. PTR').rcode).toBe(Rcode.NXDOMAIN);
    cache.upsert('services', 'default/new', service('default', 'new', { clusterIPs: ['10.96.0.31'] }));
    await flush();
    // A slice moving between Services updates both.
    cache.upsert('endpointslices', 'default/db-1', slice('default', 'nre', 'db-1', { endpoints: [endpoint(['10.244.1.5'])] }));
    await flush();
    expect(ask(plugin, 'db.default.svc.cluster.local. A').answer).toHaveLength(0);
    expect(ask(plugin, 'nre.default.svc.cluster.local. A').answer).toHaveLength(2);
    expect(ask(plugin, 'db.default.svc.cluster.local. AAAA').answer).toHaveLength(1);
    // Down to one slice, none, and back.
    cache.remove('endpointslices', 'default/db-1');
    cache.remove('endpointslices', 'default/db-v6');
    await flush();
    expect(ask(plugin, 'nre.default.svc.cluster.local. A').answer).toHaveLength(1);
    expect(ask(plugin, 'db.default.svc.cluster.local. AAAA').answer).toHaveLength(0);
    cache.upsert('endpointslices', 'default/db-v6', slice('default', 'db', 'db-v6', { addressType: 'IPv6', endpoints: [endpoint(['fd00:244::6'])] }));
    await flush();
    expect(rrsText(ask(plugin, 'db.default.svc.cluster.local. AAAA').answer)).toEqual(['db.default.svc.cluster.local. 30 in aaaa fd00:244::6']);
    cache.remove('services', 'default/new');
    await flush();
    expect(ask(plugin, 'new.default.svc.cluster.local. A').rcode).toBe(Rcode.NXDOMAIN);
    unsub();
  });
});
