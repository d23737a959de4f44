// Zone-file presentation of records, so tests (and debug logs) read like `dig` output:
//   web.default.svc.cluster.local. 30 IN A 10.96.0.20
import { Type, fqdn, typeName, type HINFOData, type MXData, type RR, type SOAData, type SRVData } from './types.js';

function rdataText(rr: RR): string {
  const d = rr.data;
  switch (rr.type) {
    case Type.A:
    case Type.AAAA:
      return d as string;
    case Type.NS:
    case Type.CNAME:
    case Type.PTR:
      return fqdn(d as string);
    case Type.MX:
      return `${(d as MXData).preference} ${fqdn((d as MXData).exchange)}`;
    case Type.SRV: {
      const s = d as SRVData;
      return `${s.priority} ${s.weight} ${s.port} ${fqdn(s.target)}`;
    }
    case Type.SOA: {
      const s = d as SOAData;
      return `${fqdn(s.mname)} ${fqdn(s.rname)} ${s.serial} ${s.refresh} ${s.retry} ${s.expire} ${s.minimum}`;
    }
    case Type.TXT:
      return (d as readonly string[]).map((s) => JSON.stringify(s)).join(' ');
    case Type.HINFO:
      return `${JSON.stringify((d as HINFOData).cpu)} ${JSON.stringify((d as HINFOData).os)}`;
    default:
      return `\\# ${(d as Uint8Array).length} ${Buffer.from(d as Uint8Array).toString('hex')}`;
  }
}

export function rrText(rr: RR): string {
  return `${fqdn(rr.name)} ${rr.ttl} ${rr.class === 1 ? 'IN' : `CLASS${rr.class}`} ${typeName(rr.type)} ${rdataText(rr)}`;
}

/** Normalises zone text for comparison: one record a line, single spaces, lowercase outside quotes. */
export function normalizeZone(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/;.*$/, '').trim())
    .filter(Boolean)
    .map((l) =>
      l
        .split(/("[^"]*")/)
        .map((part) => (part.startsWith('"') ? part : part.toLowerCase().replace(/\s+/g, ' ')))
        .join(''),
    );
}

export function rrsText(rrs: readonly RR[]): string[] {
  return normalizeZone(rrs.map(rrText).join('\n'));
}
