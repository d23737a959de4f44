// The kubernetes plugin's lookup tables, kept current from watch batches: Services by name,
// EndpointSlices grouped per Service, namespaces, and a reverse map from IP to owner names. A
// change rebuilds only the Service it touches, and a query is a handful of Map lookups.
import type { ChangeBatch, WatchCache } from '../../common/watch/store.js';
import type { EndpointSliceInfo, ServiceInfo } from '../../common/types.js';
import { normalizeIP } from '../cidr.js';

export interface PortEntry {
  /** "_name._proto", lowercased, for SRV lookups. */
  readonly key: string;
  readonly port: number;
}

export interface EndpointEntry {
  /** The endpoint's DNS label: its hostname, else its address with dashes. */
  readonly host: string;
  readonly ip: string;
  readonly v6: boolean;
  readonly ports: readonly PortEntry[];
}

export interface ServiceEntry {
  readonly namespace: string;
  readonly name: string;
  /** "name.namespace.svc.zone" lowercased. */
  readonly fqdn: string;
  readonly kind: 'cluster' | 'headless' | 'external';
  readonly v4: readonly string[];
  readonly v6: readonly string[];
  readonly externalName?: string;
  readonly ports: readonly PortEntry[];
  readonly endpoints: readonly EndpointEntry[];
  readonly byHost: ReadonlyMap<string, readonly EndpointEntry[]>;
}

export function dashed(ip: string): string {
  return ip.replace(/[.:]/g, '-').toLowerCase();
}

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function portKey(name: string, protocol: string): string {
  return `_${name}._${protocol}`.toLowerCase();
}

const NONE: readonly string[] = Object.freeze([]);
const NO_PORTS: readonly PortEntry[] = Object.freeze([]);
const NO_ENDPOINTS: readonly EndpointEntry[] = Object.freeze([]);
const NO_HOSTS: ReadonlyMap<string, readonly EndpointEntry[]> = new Map();

/**
 * A ClusterIP Service's SRV ports, one copy per distinct list: most Services share one or a few
 * ("_http._tcp" 80), and a list per Service was ~130 bytes each. Bounded like the watch cache's
 * interning: when full it starts over, and lists already shared stay correct.
 */
const portLists = new Map<string, readonly PortEntry[]>();
function sharedPorts(ports: readonly { name: string; protocol: string; port: number }[]): readonly PortEntry[] {
  let id = '';
  for (const p of ports) if (p.name !== '') id += `${p.name}/${p.protocol}/${p.port},`;
  if (id === '') return NO_PORTS;
  const hit = portLists.get(id);
  if (hit) return hit;
  if (portLists.size >= 10_000) portLists.clear();
  const list = ports.filter((p) => p.name !== '').map((p) => ({ key: portKey(p.name, p.protocol), port: p.port }));
  portLists.set(id, list);
  return list;
}

export class ZoneIndex {
  private readonly services = new Map<string, ServiceEntry>();
  private readonly svcObjects = new Map<string, ServiceInfo>();
  /** Service key -> its one slice, or its slices by name (a Map per Service was 2.9 MB at 10,000). */
  private readonly slices = new Map<string, EndpointSliceInfo | Map<string, EndpointSliceInfo>>();
  private readonly namespaces = new Set<string>();
  private readonly svcPerNamespace = new Map<string, number>();
  /** IP -> its owner name, or names when several: a Set per IP was ~150 bytes each. */
  private readonly reverse = new Map<string, string | Set<string>>();
  /** Changes on every rebuild; the SOA serial. */
  serial = Math.floor(Date.now() / 1000) >>> 0;

  constructor(readonly zone: string) {}

  /** Loads everything already in the cache; call once, right before subscribing. */
  load(cache: WatchCache): void {
    for (const ns of cache.store('namespaces').values()) this.namespaces.add(ns.name);
    for (const s of cache.store('endpointslices').values()) this.putSlice(s);
    for (const s of cache.store('services').values()) this.svcObjects.set(`${s.namespace}/${s.name}`, s);
    const keys = new Set([...this.svcObjects.keys(), ...this.slices.keys()]);
    for (const k of keys) this.rebuild(k);
  }

  /** Applies a batch; returns the Services ("namespace/name") whose names may now answer differently. */
  apply(batch: ChangeBatch): ReadonlySet<string> {
    const dirty = new Set<string>();
    for (const c of batch.changes) {
      if (c.kind === 'services') {
        const o = (c.current ?? c.previous) as ServiceInfo;
        const key = `${o.namespace}/${o.name}`;
        if (c.current) this.svcObjects.set(key, c.current as ServiceInfo);
        else this.svcObjects.delete(key);
        dirty.add(key);
      } else if (c.kind === 'endpointslices') {
        const prev = c.previous as EndpointSliceInfo | undefined;
        const cur = c.current as EndpointSliceInfo | undefined;
        if (prev) {
          this.dropSlice(prev);
          dirty.add(`${prev.namespace}/${prev.serviceName}`);
        }
        if (cur) {
          this.putSlice(cur);
          dirty.add(`${cur.namespace}/${cur.serviceName}`);
        }
      } else if (c.kind === 'namespaces') {
        const name = (c.current ?? c.previous)!.name as string;
        if (c.current) this.namespaces.add(name);
        else this.namespaces.delete(name);
      }
    }
    for (const k of dirty) this.rebuild(k);
    if (dirty.size > 0) this.serial = (this.serial + 1) >>> 0;
    return dirty;
  }

  service(name: string, namespace: string): ServiceEntry | undefined {
    return this.services.get(`${namespace}/${name}`);
  }

  namespaceExists(ns: string): boolean {
    return this.namespaces.has(ns) || (this.svcPerNamespace.get(ns) ?? 0) > 0;
  }

  /** Owner names (no trailing dot) of an IP: Service ClusterIPs and headless endpoints. */
  ptr(ip: string): ReadonlySet<string> | undefined {
    const r = this.reverse.get(ip);
    return typeof r === 'string' ? new Set([r]) : r;
  }

  get size(): number {
    return this.services.size;
  }

  private putSlice(s: EndpointSliceInfo): void {
    if (!s.serviceName) return;
    const key = `${s.namespace}/${s.serviceName}`;
    const m = this.slices.get(key);
    if (m === undefined || (!(m instanceof Map) && m.name === s.name)) this.slices.set(key, s);
    else if (m instanceof Map) m.set(s.name, s);
    else this.slices.set(key, new Map([[m.name, m], [s.name, s]]));
  }

  private dropSlice(s: EndpointSliceInfo): void {
    const key = `${s.namespace}/${s.serviceName}`;
    const m = this.slices.get(key);
    if (m === undefined) return;
    if (!(m instanceof Map)) {
      if (m.name === s.name) this.slices.delete(key);
      return;
    }
    m.delete(s.name);
    if (m.size === 1) this.slices.set(key, m.values().next().value!);
  }

  private rebuild(key: string): void {
    const old = this.services.get(key);
    if (old) {
      this.unindexReverse(old);
      this.services.delete(key);
      this.countNs(old.namespace, -1);
    }
    const svc = this.svcObjects.get(key);
    if (!svc) return;
    const entry = this.entryFor(svc, this.slices.get(key));
    this.services.set(key, entry);
    this.countNs(entry.namespace, 1);
    this.indexReverse(entry);
  }

  private countNs(ns: string, d: number): void {
    const n = (this.svcPerNamespace.get(ns) ?? 0) + d;
    if (n <= 0) this.svcPerNamespace.delete(ns);
    else this.svcPerNamespace.set(ns, n);
  }

  private entryFor(svc: ServiceInfo, held: EndpointSliceInfo | Map<string, EndpointSliceInfo> | undefined): ServiceEntry {
    const fqdn = `${svc.name}.${svc.namespace}.svc.${this.zone}`.toLowerCase();
    const namespace = svc.namespace.toLowerCase();
    const name = svc.name.toLowerCase();
    // Entries are written out whole as literals, and ClusterIP Services (nearly all of them) share
    // their empty lists and map: at 10,000 Services spreading a base object and a Map each cost
    // about 1 KB per entry.
    if (svc.type === 'ExternalName') {
      return { namespace, name, fqdn, kind: 'external', v4: NONE, v6: NONE, externalName: svc.externalName ?? '', ports: NO_PORTS, endpoints: NO_ENDPOINTS, byHost: NO_HOSTS };
    }
    if (!svc.headless) {
      const v6 = svc.clusterIPs.some((ip) => ip.includes(':'));
      return {
        namespace,
        name,
        fqdn,
        kind: 'cluster',
        v4: v6 ? svc.clusterIPs.filter((ip) => !ip.includes(':')) : svc.clusterIPs,
        v6: v6 ? svc.clusterIPs.filter((ip) => ip.includes(':')).map(normalizeIP) : NONE,
        ports: sharedPorts(svc.ports),
        endpoints: NO_ENDPOINTS,
        byHost: NO_HOSTS,
      };
    }
    const base = { namespace, name, fqdn };
    const endpoints: EndpointEntry[] = [];
    const seen = new Set<string>();
    const byHost = new Map<string, EndpointEntry[]>();
    const allPorts = new Map<string, PortEntry>();
    // Slices in name order so answers do not depend on event order.
    const slices = held === undefined ? [] : held instanceof Map ? [...held.values()] : [held];
    for (const s of slices.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (s.addressType === 'FQDN') continue;
      const ports = s.ports.filter((p) => p.name !== '').map((p) => ({ key: portKey(p.name, p.protocol), port: p.port }));
      for (const p of ports) allPorts.set(`${p.key}/${p.port}`, p);
      for (const ep of s.endpoints) {
        if (!ep.ready && !svc.publishNotReadyAddresses) continue;
        for (const raw of ep.addresses) {
          const ip = normalizeIP(raw);
          if (seen.has(ip)) continue;
          seen.add(ip);
          const hn = ep.hostname?.toLowerCase();
          const e: EndpointEntry = { host: hn && LABEL.test(hn) ? hn : dashed(ip), ip, v6: ip.includes(':'), ports };
          endpoints.push(e);
          const list = byHost.get(e.host);
          if (list) list.push(e);
          else byHost.set(e.host, [e]);
        }
      }
    }
    return { ...base, kind: 'headless', v4: [], v6: [], ports: [...allPorts.values()], endpoints, byHost };
  }

  private reverseNames(e: ServiceEntry): [string, string][] {
    const out: [string, string][] = [];
    for (const ip of [...e.v4, ...e.v6]) out.push([ip, e.fqdn]);
    for (const ep of e.endpoints) out.push([ep.ip, `${ep.host}.${e.fqdn}`]);
    return out;
  }

  private indexReverse(e: ServiceEntry): void {
    for (const [ip, name] of this.reverseNames(e)) {
      const r = this.reverse.get(ip);
      if (r === undefined) this.reverse.set(ip, name);
      else if (typeof r !== 'string') r.add(name);
      else if (r !== name) this.reverse.set(ip, new Set([r, name]));
    }
  }

  private unindexReverse(e: ServiceEntry): void {
    for (const [ip, name] of this.reverseNames(e)) {
      const r = this.reverse.get(ip);
      if (r === undefined) continue;
      if (typeof r === 'string') {
        if (r === name) this.reverse.delete(ip);
        continue;
      }
      r.delete(name);
      if (r.size === 1) this.reverse.set(ip, r.values().next().value!);
    }
  }
}
