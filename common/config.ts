// The agent's settings: defaults < config file (the ConfigMap mount) < SKIFF_* environment < flags.
// One schema validates the merged result, so every source gets the same error: the field and why.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from './errors.js';

const cidr = z.string().refine(isCidr, 'must be a CIDR such as 10.244.0.0/16');
const ip = z.string().refine((s) => isIP(s) !== 0, 'must be an IP address');
const hostPort = z.string().refine(isHostPort, 'must be host:port, e.g. 127.0.0.1:10249');
const duration = z.union([z.number().nonnegative(), z.string()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: 'must be a duration such as 500ms, 30s or 5m' });
    return z.NEVER;
  }
  return ms;
});

export const configSchema = z
  .object({
    nodeName: z.string().min(1, 'is required (set NODE_NAME)'),
    kubeconfig: z.string().optional(),
    /** host:port of the API server, used before any Service rule exists (no kube-proxy yet). */
    apiServer: z.string().optional(),
    clusterCIDRs: z.array(cidr).min(1).default(['10.244.0.0/16']),
    serviceCIDRs: z.array(cidr).min(1).default(['10.96.0.0/12']),
    clusterDomain: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS domain').default('cluster.local'),
    dnsServiceIPs: z.array(ip).min(1).default(['10.96.0.10']),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    // kube-proxy's port, on the node addresses so Prometheus can scrape every node (README "Metrics").
    metricsBindAddress: hostPort.default('0.0.0.0:10249'),
    healthzBindAddress: hostPort.default('0.0.0.0:10256'),
    stateDir: z.string().default('/var/lib/skiff'),
    runDir: z.string().default('/run/skiff'),
    configFile: z.string().optional(),
    cni: z
      .object({
        enabled: z.boolean().default(true),
        confDir: z.string().default('/etc/cni/net.d'),
        binDir: z.string().default('/opt/cni/bin'),
        /** Pod MTU; 0 means detect: underlay MTU minus VXLAN overhead. */
        mtu: z.number().int().min(0).max(65535).default(0),
        vxlanPort: z.number().int().min(1).max(65535).default(8472),
        vni: z.number().int().min(1).max(16777215).default(1),
        masquerade: z.boolean().default(true),
        /** flannel's DirectRouting: plain routes to peers on the same underlay subnet, VXLAN to the rest. */
        directRouting: z.boolean().default(false),
      })
      .prefault({}),
    proxy: z
      .object({
        enabled: z.boolean().default(true),
        backend: z.enum(['nftables', 'iptables']).default('nftables'),
        /** Which iptables the iptables backend drives: the host's (auto, as kube-proxy), legacy or nft. */
        iptablesMode: z.enum(['auto', 'legacy', 'nft']).default('auto'),
        nodePortAddresses: z.array(cidr).default([]),
        syncPeriod: duration.default(30_000),
        minSyncPeriod: duration.default(1_000),
        masqueradeAll: z.boolean().default(false),
      })
      .prefault({}),
    dns: z
      .object({
        enabled: z.boolean().default(true),
        port: z.number().int().min(1).max(65535).default(53),
        /** Extra listen addresses besides the cluster DNS Service IPs. */
        listen: z.array(ip).default([]),
        ttl: z.number().int().min(0).max(3600).default(30),
        upstreams: z.array(z.string()).default([]),
        resolvConf: z.string().default('/etc/resolv.conf'),
        stubDomains: z.record(z.string(), z.array(z.string())).default({}),
        cacheSize: z.number().int().min(0).default(10_000),
        prefetch: z.boolean().default(true),
        serveStale: z.boolean().default(false),
        /** DNS worker threads (its own event loop and heap); 0 serves on the agent's main thread. */
        workers: z.number().int().min(0).max(64).default(1),
        healthPort: z.number().int().min(0).max(65535).default(8080),
        readyPort: z.number().int().min(0).max(65535).default(8181),
        allowedSourceCIDRs: z.array(cidr).default([]),
        /** UDP socket I/O: the batched native addon (dns/native), Node's dgram, or the addon when it loads. */
        udpBackend: z.enum(['auto', 'native', 'dgram']).default('auto'),
      })
      .prefault({}),
    policy: z
      .object({
        /** NetworkPolicy enforcement for this node's pods; also what starts the cluster-wide pod watch. */
        enabled: z.boolean().default(true),
        /** Cut established flows a policy change denies (conntrack entries deleted), as kube-network-policies' strict mode. */
        strictEstablished: z.boolean().default(true),
        /** Log the first packet of denied connections (nft log, rate-limited). */
        logDenied: z.boolean().default(false),
        /**
         * FQDN egress (admin policy domainNames): an answered address stays allowed for the record's
         * TTL, at least fqdnMinTTL and at most fqdnMaxTTL seconds (Cilium's tofqdns-min-ttl).
         */
        fqdnMinTTL: z.number().int().min(1).default(30),
        fqdnMaxTTL: z.number().int().min(1).default(86400),
      })
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** Parses and validates; throws ConfigError naming the first bad field. */
export function parseConfig(input: unknown): Config {
  const r = configSchema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const field = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : '(root)');
  const reason = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message;
  throw new ConfigError(field, reason);
}

/** Reads the optional YAML/JSON config file; a missing file named explicitly is an error. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError('configFile', `cannot read ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ConfigError('configFile', `${path} is not valid YAML: ${(e as Error).message}`);
  }
  if (doc == null) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError('configFile', `${path} must hold a mapping`);
  return doc as Record<string, unknown>;
}

const ENV_KEYS: Record<string, string> = {
  NODE_NAME: 'nodeName',
  KUBECONFIG: 'kubeconfig',
  SKIFF_API_SERVER: 'apiServer',
  SKIFF_CLUSTER_CIDRS: 'clusterCIDRs',
  SKIFF_SERVICE_CIDRS: 'serviceCIDRs',
  SKIFF_CLUSTER_DOMAIN: 'clusterDomain',
  SKIFF_DNS_SERVICE_IPS: 'dnsServiceIPs',
  SKIFF_LOG_LEVEL: 'logLevel',
  SKIFF_METRICS_BIND_ADDRESS: 'metricsBindAddress',
  SKIFF_HEALTHZ_BIND_ADDRESS: 'healthzBindAddress',
  SKIFF_STATE_DIR: 'stateDir',
  SKIFF_RUN_DIR: 'runDir',
  SKIFF_CONFIG: 'configFile',
  SKIFF_CNI_CONF_DIR: 'cni.confDir',
  SKIFF_CNI_BIN_DIR: 'cni.binDir',
  SKIFF_CNI_DIRECT_ROUTING: 'cni.directRouting',
  SKIFF_PROXY_BACKEND: 'proxy.backend',
  SKIFF_DNS_PORT: 'dns.port',
};

/** Values in settings that are lists; "a,b" on the command line or in the environment splits. */
const LIST_KEYS = new Set(['clusterCIDRs', 'serviceCIDRs', 'dnsServiceIPs', 'proxy.nodePortAddresses', 'dns.upstreams', 'dns.listen', 'dns.allowedSourceCIDRs']);

/**
 * Merges the sources. `flags` are dotted keys as given on the command line
 * (`--proxy.backend=iptables`, `--cluster-cidrs=...` is normalised by the caller).
 */
export function loadConfig(flags: Record<string, string | boolean>, env: NodeJS.ProcessEnv = process.env): Config {
  const fromEnv: Record<string, string> = {};
  for (const [envKey, key] of Object.entries(ENV_KEYS)) {
    const v = env[envKey];
    if (v !== undefined && v !== '') fromEnv[key] = v;
  }
  const configFile = (flags.configFile as string | undefined) ?? fromEnv.configFile;
  const merged: Record<string, unknown> = configFile ? readConfigFile(configFile) : {};
  if (configFile) merged.configFile = configFile;
  for (const [k, v] of [...Object.entries(fromEnv), ...Object.entries(flags)]) setPath(merged, k, coerce(k, v));
  return parseConfig(merged);
}

function coerce(key: string, v: string | boolean): unknown {
  if (typeof v === 'boolean') return v;
  if (LIST_KEYS.has(key)) return v === '' ? [] : v.split(',').map((s) => s.trim());
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (/^-?\d+$/.test(v) && !/(^|\.)(nodeName|kubeconfig|apiServer|stateDir|runDir|configFile)$/.test(key)) return Number(v);
  return v;
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof cur[p] !== 'object' || cur[p] === null) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts.at(-1)!] = value;
}

export function isCidr(s: string): boolean {
  const m = /^(.+)\/(\d{1,3})$/.exec(s);
  if (!m) return false;
  const fam = isIP(m[1]!);
  const bits = Number(m[2]);
  return (fam === 4 && bits <= 32) || (fam === 6 && bits <= 128);
}

function isHostPort(s: string): boolean {
  const m = /^(\[[^\]]+\]|[^:]*):(\d{1,5})$/.exec(s);
  return !!m && Number(m[2]) <= 65535;
}

export function parseDuration(v: number | string): number | undefined {
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']);
}
