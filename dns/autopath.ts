// Server-side search path (CoreDNS autopath, without a pod watch of its own): with ndots:5 a pod's
// lookup of "example.org" first asks for example.org.<ns>.svc.<zone>. The agent knows which
// namespace the client pod is in (pods on this node, indexed by IP), so after that first NXDOMAIN
// it walks the rest of the search path itself and answers with a CNAME to the name that exists,
// plus that name's records: one round trip instead of four per address family.
import type { PodInfo } from '../common/types.js';
import type { Store } from '../common/watch/store.js';
import { dnsMetrics } from './metrics.js';
import { isPromise, subRequest, type Next, type Plugin, type Reply, type Request } from './plugin.js';
import { CLASS_IN, Rcode, Type, replyTo } from './wire/types.js';

export const POD_IP_INDEX = 'dns:podIP';

export interface AutopathOptions {
  readonly zone: string;
  readonly pods: Store<PodInfo>;
  readonly server: string;
  readonly enabled: () => boolean;
}

export class AutopathPlugin implements Plugin {
  readonly name = 'autopath';
  private readonly zone: string;

  constructor(private readonly o: AutopathOptions) {
    this.zone = o.zone.toLowerCase();
    o.pods.addIndex(POD_IP_INDEX, (p) => (p.hostNetwork ? [] : p.podIPs));
  }

  private namespaceOf(ip: string): string | undefined {
    const v = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    const pods = this.o.pods.byIndex(POD_IP_INDEX, v);
    return pods.length === 1 ? pods[0]!.namespace.toLowerCase() : undefined;
  }

  serve(req: Request, next: Next): Reply | Promise<Reply> {
    if (!this.o.enabled()) return next(req);
    const ns = this.namespaceOf(req.src);
    if (ns === undefined) return next(req);
    const first = `.${ns}.svc.${this.zone}`;
    if (!req.qname.endsWith(first) || req.qname.length === first.length) return next(req);
    const base = req.q.name.slice(0, req.q.name.length - first.length);
    const r = next(req);
    return isPromise(r) ? r.then((m) => this.walk(req, base, m, next)) : this.walk(req, base, r, next);
  }

  private async walk(req: Request, base: string, firstReply: Reply, next: Next): Promise<Reply> {
    if (firstReply.rcode !== Rcode.NXDOMAIN) return firstReply;
    // Inside our zone only a positive answer ends the walk: NODATA there names an empty
    // non-terminal such as a namespace, which the client's own search would skip past.
    for (const suffix of [`svc.${this.zone}`, this.zone]) {
      const name = `${base}.${suffix}`;
      const r = await next(subRequest(req, name));
      if (r.rcode === Rcode.NOERROR && r.answer.length > 0) return this.cname(req, name, r);
    }
    const r = await next(subRequest(req, base));
    if (r.rcode !== Rcode.NOERROR) return firstReply;
    return this.cname(req, base, r);
  }

  private cname(req: Request, target: string, r: Reply): Reply {
    dnsMetrics.autopath.inc([this.o.server]);
    req.answeredBy = this.name;
    req.uncacheable = true;
    const m = replyTo(req.msg, Rcode.NOERROR);
    m.answer = [{ name: req.q.name, type: Type.CNAME, class: CLASS_IN, ttl: Math.min(30, ...r.answer.map((x) => x.ttl)), data: target }, ...r.answer];
    m.authority = r.answer.length === 0 ? r.authority : [];
    m.additional = r.additional;
    return m;
  }
}
