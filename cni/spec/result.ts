// The result in the shape the requested spec version expects. Internally one 1.1-like shape is
// kept; formatting drops what an older reader would reject (interface mtu before 1.1.0) and adds
// what it needs (ips[].version before 1.0.0).
import { isIP } from 'node:net';
import { atLeast } from './version.js';

export interface ResultInterface {
  readonly name: string;
  readonly mac?: string;
  readonly mtu?: number;
  readonly sandbox?: string;
}
export interface ResultIP {
  /** CIDR notation: the address with the subnet's prefix length. */
  readonly address: string;
  readonly gateway?: string;
  readonly interface?: number;
}
export interface ResultRoute {
  readonly dst: string;
  readonly gw?: string;
}
export interface ResultDNS {
  readonly nameservers?: readonly string[];
  readonly domain?: string;
  readonly search?: readonly string[];
  readonly options?: readonly string[];
}
export interface Result {
  readonly interfaces: readonly ResultInterface[];
  readonly ips: readonly ResultIP[];
  readonly routes: readonly ResultRoute[];
  readonly dns: ResultDNS;
}

export function formatResult(r: Result, cniVersion: string): Record<string, unknown> {
  const v1 = atLeast(cniVersion, '1.0.0');
  const v11 = atLeast(cniVersion, '1.1.0');
  return {
    cniVersion,
    interfaces: r.interfaces.map((i) => ({
      name: i.name,
      ...(i.mac ? { mac: i.mac } : {}),
      ...(v11 && i.mtu ? { mtu: i.mtu } : {}),
      ...(i.sandbox !== undefined ? { sandbox: i.sandbox } : {}),
    })),
    ips: r.ips.map((ip) => ({
      ...(v1 ? {} : { version: isIP(ip.address.split('/')[0]!) === 6 ? '6' : '4' }),
      address: ip.address,
      ...(ip.gateway ? { gateway: ip.gateway } : {}),
      ...(ip.interface !== undefined ? { interface: ip.interface } : {}),
    })),
    routes: r.routes.map((rt) => ({ dst: rt.dst, ...(rt.gw ? { gw: rt.gw } : {}) })),
    dns: { ...r.dns },
  };
}

/** Reads a prevResult of any supported version into the internal shape; throws on nonsense. */
export function parsePrevResult(raw: unknown): Result {
  if (typeof raw !== 'object' || raw === null) throw new Error('prevResult must be an object');
  const o = raw as Record<string, unknown>;
  const list = (k: string): Record<string, unknown>[] => {
    const v = o[k];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new Error(`prevResult.${k} must be a list`);
    return v as Record<string, unknown>[];
  };
  const interfaces = list('interfaces').map((i) => {
    if (typeof i.name !== 'string') throw new Error('prevResult interface without a name');
    return {
      name: i.name,
      ...(typeof i.mac === 'string' ? { mac: i.mac } : {}),
      ...(typeof i.mtu === 'number' ? { mtu: i.mtu } : {}),
      ...(typeof i.sandbox === 'string' ? { sandbox: i.sandbox } : {}),
    };
  });
  const ips = list('ips').map((ip) => {
    if (typeof ip.address !== 'string') throw new Error('prevResult ip without an address');
    return {
      address: ip.address,
      ...(typeof ip.gateway === 'string' ? { gateway: ip.gateway } : {}),
      ...(typeof ip.interface === 'number' ? { interface: ip.interface } : {}),
    };
  });
  const routes = list('routes').map((rt) => {
    if (typeof rt.dst !== 'string') throw new Error('prevResult route without dst');
    return { dst: rt.dst, ...(typeof rt.gw === 'string' ? { gw: rt.gw } : {}) };
  });
  const dns = typeof o.dns === 'object' && o.dns !== null ? (o.dns as ResultDNS) : {};
  return { interfaces, ips, routes, dns };
}
