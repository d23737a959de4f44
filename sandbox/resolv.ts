// The resolv.conf kubelet writes into a pod, per dnsPolicy. `ip netns exec` bind-mounts
// /etc/netns/<ns>/resolv.conf over /etc/resolv.conf, so the file is the pod's resolver config.
import type { KubeObject } from './apiserver/resources.js';

export interface DnsSettings {
  readonly clusterDNS: readonly string[];
  readonly clusterDomain: string;
  /** The node's resolv.conf text, for dnsPolicy Default. */
  readonly hostResolvConf: string;
}

interface DnsConfig {
  nameservers?: string[];
  searches?: string[];
  options?: { name: string; value?: string }[];
}

const MAX_SEARCH = 32;

export function parseResolvConf(text: string): { nameservers: string[]; searches: string[]; options: string[] } {
  const nameservers: string[] = [];
  let searches: string[] = [];
  const options: string[] = [];
  for (const raw of text.split('\n')) {
    const f = raw.replace(/[#;].*$/, '').trim().split(/\s+/);
    if (f[0] === 'nameserver' && f[1]) nameservers.push(f[1]);
    else if ((f[0] === 'search' || f[0] === 'domain') && f.length > 1) searches = f.slice(1);
    else if (f[0] === 'options') options.push(...f.slice(1));
  }
  return { nameservers, searches, options };
}

/** Options merge by name, later ones winning, as kubelet merges dnsConfig.options. */
function mergeOptions(base: string[], extra: DnsConfig['options']): string[] {
  const m = new Map<string, string>();
  for (const o of base) m.set(o.split(':')[0]!, o);
  for (const o of extra ?? []) m.set(o.name, o.value !== undefined ? `${o.name}:${o.value}` : o.name);
  return [...m.values()];
}

export function podResolvConf(pod: KubeObject, dns: DnsSettings): string {
  /* eslint-disable-next-line @typescript-eslint/no-explicit-any -- raw API JSON, read only */
  const spec = (pod.spec ?? {}) as any;
  const hostNetwork = spec.hostNetwork === true;
  let policy: string = spec.dnsPolicy ?? 'ClusterFirst';
  // ClusterFirst on a host-network pod falls back to the node's resolver, as kubelet does.
  if (policy === 'ClusterFirst' && hostNetwork) policy = 'Default';
  if (policy === 'ClusterFirstWithHostNet') policy = 'ClusterFirst';
  const cfg: DnsConfig = spec.dnsConfig ?? {};
  let nameservers: string[];
  let searches: string[];
  let options: string[];
  if (policy === 'None') {
    nameservers = [];
    searches = [];
    options = [];
  } else if (policy === 'Default') {
    ({ nameservers, searches, options } = parseResolvConf(dns.hostResolvConf));
  } else {
    const ns = pod.metadata.namespace ?? 'default';
    const d = dns.clusterDomain;
    nameservers = [...dns.clusterDNS];
    searches = [`${ns}.svc.${d}`, `svc.${d}`, d, ...parseResolvConf(dns.hostResolvConf).searches];
    options = ['ndots:5'];
  }
  nameservers = [...new Set([...nameservers, ...(cfg.nameservers ?? [])])].slice(0, 3);
  searches = [...new Set([...searches, ...(cfg.searches ?? [])])].slice(0, MAX_SEARCH);
  options = mergeOptions(options, cfg.options);
  const lines = nameservers.map((n) => `nameserver ${n}`);
  if (searches.length) lines.push(`search ${searches.join(' ')}`);
  if (options.length) lines.push(`options ${options.join(' ')}`);
  return lines.join('\n') + '\n';
}
