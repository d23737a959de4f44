// The Kubernetes DNS-Based Service Discovery spec (schema 1.1.0) over the zone index. Every query
// is answered synchronously. A name "exists" when it owns any record; a query for an existing name
// with no record of the asked type is NODATA, otherwise NXDOMAIN, both with the SOA in authority,
// matching CoreDNS so clients cache negatives the same way.
import { isIPv4, isIPv6 } from 'node:net';
import { normalizeIP, reverseToIP, type PrefixSet } from '../cidr.js';
import type { Next, Plugin, Reply, Request } from '../plugin.js';
import { CLASS_IN, Rcode, Type, replyTo, type RR, type SOAData } from '../wire/types.js';
import type { EndpointEntry, ServiceEntry, ZoneIndex } from './zone-index.js';

export const SCHEMA_VERSION = '1.1.0';

export interface KubernetesOptions {
  readonly zone: string;
  readonly index: ZoneIndex;
  readonly dnsIPs: readonly string[];
  /** Service and pod CIDRs: reverse names inside them are ours even when unknown (NXDOMAIN, no forward). */
  readonly ownedReverse: PrefixSet;
  readonly ttl: () => number;
  /** False until services and endpointslices completed their first list: answers would be wrong. */
  readonly synced: () => boolean;
}

interface Result {
  rcode: number;
  answer: RR[];
  additional: RR[];
  /** Owner of the SOA for a negative answer. */
  soaZone: string;
}

export class KubernetesPlugin implements Plugin {
  readonly name = 'kubernetes';
  private readonly zone: string;
  private readonly suffix: string;

  constructor(private readonly o: KubernetesOptions) {
    this.zone = o.zone.toLowerCase().replace(/\.$/, '');
    this.suffix = `.${this.zone}`;
  }

  /** True for names this plugin is authoritative for (the zone; reverse names are decided per IP). */
  inZone(qname: string): boolean {
    return qname === this.zone || qname.endsWith(this.suffix);
  }

  serve(req: Request, next: Next): Reply | Promise<Reply> {
    const qname = req.qname;
    let r: Result | undefined;
    if (this.inZone(qname)) {
      if (!this.o.synced()) return this.fail(req);
      r = this.forward(req);
    } else if (qname.endsWith('.arpa')) {
      const ip = reverseToIP(qname);
      if (ip === undefined) return next(req);
      const owners = this.o.index.ptr(ip);
      if (!owners && !this.o.ownedReverse.has(ip)) return next(req);
      if (!this.o.synced()) return this.fail(req);
      r = this.reverse(req, owners, qname.endsWith('.in-addr.arpa') ? 'in-addr.arpa' : 'ip6.arpa');
    } else return next(req);
    req.answeredBy = this.name;
    const m = replyTo(req.msg, r.rcode);
    m.aa = true;
    m.answer = r.answer;
    m.additional = r.additional;
    if (r.answer.length === 0 && (r.rcode === Rcode.NOERROR || r.rcode === Rcode.NXDOMAIN)) m.authority = [this.soa(r.soaZone)];
    return m;
  }

  private fail(req: Request): Reply {
    req.answeredBy = this.name;
    return replyTo(req.msg, Rcode.SERVFAIL);
  }

  soa(zone: string = this.zone): RR {
    const ttl = this.o.ttl();
    const data: SOAData = {
      mname: `ns.dns.${this.zone}`,
      rname: `hostmaster.${this.zone}`,
      serial: this.o.index.serial,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: ttl,
    };
    return { name: zone, type: Type.SOA, class: CLASS_IN, ttl, data };
  }

  private rr(name: string, type: number, data: RR['data']): RR {
    return { name, type, class: CLASS_IN, ttl: this.o.ttl(), data };
  }

  private result(rcode: number, answer: RR[] = [], additional: RR[] = []): Result {
    return { rcode, answer, additional, soaZone: this.zone };
  }

  private nx(): Result {
    return this.result(Rcode.NXDOMAIN);
  }
  private nodata(): Result {
    return this.result(Rcode.NOERROR);
  }

  private forward(req: Request): Result {
    const qn = req.qname;
    const rest = qn === this.zone ? '' : qn.slice(0, qn.length - this.suffix.length);
    const labels = rest === '' ? [] : rest.split('.');
    const last = labels[labels.length - 1];
    const t = req.q.type;
    if (labels.length === 0) return this.apex(req);
    if (rest === 'dns-version') return t === Type.TXT ? this.result(0, [this.rr(req.q.name, Type.TXT, [SCHEMA_VERSION])]) : this.nodata();
    if (rest === 'dns') return this.nodata();
    if (rest === 'ns.dns') return this.addresses(req.q.name, t, this.o.dnsIPs.map(normalizeIP));
    if (last === 'svc') return this.svc(req, labels.slice(0, -1));
    if (last === 'pod') return this.pod(req, labels.slice(0, -1));
    return this.nx();
  }

  private apex(req: Request): Result {
    const t = req.q.type;
    if (t === Type.SOA) return this.result(0, [this.soa()]);
    if (t === Type.NS) {
      const ns = `ns.dns.${this.zone}`;
      const glue = this.addressRRs(ns, Type.A, this.o.dnsIPs).concat(this.addressRRs(ns, Type.AAAA, this.o.dnsIPs.map(normalizeIP)));
      return this.result(0, [this.rr(req.q.name, Type.NS, ns)], glue);
    }
    return this.nodata();
  }

  private addressRRs(name: string, type: number, ips: readonly string[]): RR[] {
    const want6 = type === Type.AAAA;
    const out: RR[] = [];
    for (const ip of ips) if (ip.includes(':') === want6) out.push(this.rr(name, type, ip));
    return out;
  }

  /** A/AAAA for a name that exists because it owns `ips`; other types are NODATA. */
  private addresses(name: string, type: number, ips: readonly string[]): Result {
    if (ips.length === 0) return this.nx();
    if (type !== Type.A && type !== Type.AAAA) return this.nodata();
    return this.result(0, this.addressRRs(name, type, ips));
  }

  private svc(req: Request, labels: string[]): Result {
    const t = req.q.type;
    switch (labels.length) {
      case 0:
        return this.nodata();
      case 1:
        return this.o.index.namespaceExists(labels[0]!) ? this.nodata() : this.nx();
      case 2: {
        req.dependsOn = `${labels[1]}/${labels[0]}`;
        const e = this.o.index.service(labels[0]!, labels[1]!);
        return e ? this.service(req, e) : this.nx();
      }
      case 3: {
        req.dependsOn = `${labels[2]}/${labels[1]}`;
        const e = this.o.index.service(labels[1]!, labels[2]!);
        const eps = e?.kind === 'headless' ? e.byHost.get(labels[0]!) : undefined;
        if (!eps) return this.nx();
        return this.addresses(req.q.name, t, eps.map((x) => x.ip));
      }
      case 4: {
        if (!labels[0]!.startsWith('_') || !labels[1]!.startsWith('_')) return this.nx();
        req.dependsOn = `${labels[3]}/${labels[2]}`;
        const e = this.o.index.service(labels[2]!, labels[3]!);
        if (!e) return this.nx();
        const r = this.srv(req.q.name, e, `${labels[0]}.${labels[1]}`);
        if (r.answer.length === 0) return this.nx();
        return t === Type.SRV ? r : this.nodata();
      }
      default:
        return this.nx();
    }
  }

  private service(req: Request, e: ServiceEntry): Result {
    const t = req.q.type;
    const name = req.q.name;
    if (e.kind === 'external') {
      if (!e.externalName) return this.nx();
      return this.result(0, [this.rr(name, Type.CNAME, e.externalName.replace(/\.$/, ''))]);
    }
    if (e.kind === 'headless' && e.endpoints.length === 0) return this.nx();
    if (t === Type.SRV) return this.srv(name, e, undefined);
    if (t !== Type.A && t !== Type.AAAA) return this.nodata();
    const ips = e.kind === 'cluster' ? (t === Type.A ? e.v4 : e.v6) : e.endpoints.filter((x) => x.v6 === (t === Type.AAAA)).map((x) => x.ip);
    return this.result(0, ips.map((ip) => this.rr(name, t, ip)));
  }

  /** SRV for one named port (portKey "_name._proto") or, with none, for every named port. */
  private srv(owner: string, e: ServiceEntry, portKey: string | undefined): Result {
    // One SRV per (target, port): a dual-stack endpoint appears in two slices under one name.
    const byTarget = new Map<string, { target: string; port: number; ips: string[] }>();
    const add = (target: string, port: number, ips: readonly string[]): void => {
      const k = `${target}/${port}`;
      const t = byTarget.get(k);
      if (t) t.ips.push(...ips);
      else byTarget.set(k, { target, port, ips: [...ips] });
    };
    if (e.kind === 'cluster') {
      for (const p of e.ports) if (portKey === undefined || p.key === portKey) add(e.fqdn, p.port, [...e.v4, ...e.v6]);
    } else if (e.kind === 'headless') {
      for (const ep of e.endpoints as EndpointEntry[]) {
        for (const p of ep.ports) if (portKey === undefined || p.key === portKey) add(`${ep.host}.${e.fqdn}`, p.port, [ep.ip]);
      }
    }
    const targets = [...byTarget.values()];
    const weight = targets.length > 0 ? Math.max(1, Math.floor(100 / targets.length)) : 0;
    const answer = targets.map((x) => this.rr(owner, Type.SRV, { priority: 0, weight, port: x.port, target: x.target }));
    const additional: RR[] = [];
    const done = new Set<string>();
    for (const x of targets) {
      for (const ip of x.ips) {
        if (done.has(`${x.target}/${ip}`)) continue;
        done.add(`${x.target}/${ip}`);
        additional.push(this.rr(x.target, ip.includes(':') ? Type.AAAA : Type.A, ip));
      }
    }
    return this.result(0, answer, additional);
  }

  private pod(req: Request, labels: string[]): Result {
    if (labels.length < 2) return this.nodata();
    if (labels.length > 2) return this.nx();
    const d = labels[0]!;
    let ip: string | undefined;
    if (/^\d{1,3}(-\d{1,3}){3}$/.test(d) && isIPv4(d.replace(/-/g, '.'))) ip = d.replace(/-/g, '.');
    else if (d.includes('-') && isIPv6(d.replace(/-/g, ':'))) ip = normalizeIP(d.replace(/-/g, ':'));
    if (ip === undefined) return this.nx();
    return this.addresses(req.q.name, req.q.type, [ip]);
  }

  private reverse(req: Request, owners: ReadonlySet<string> | undefined, zone: string): Result {
    if (!owners || owners.size === 0) return { ...this.nx(), soaZone: zone };
    if (req.q.type !== Type.PTR) return { ...this.nodata(), soaZone: zone };
    return this.result(0, [...owners].sort().map((o) => this.rr(req.q.name, Type.PTR, o)));
  }
}
