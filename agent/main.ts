// `skiff agent`: the DaemonSet process. One watch cache feeds every component; each component turns
// the cache into desired state and applies it. This file only wires and supervises.
import { setMaxListeners } from 'node:events';
import { rmSync } from 'node:fs';
import { createCni } from '../cni/index.js';
import { createDns } from '../dns/index.js';
import { dnsThreads } from '../dns/workers/pool.js';
import { createProxy } from '../proxy/index.js';
import { createPolicy } from '../policy/index.js';
import { adminWatchConverters } from '../policy/admin.js';
import { FqdnFeed, netlinkWrite } from '../policy/fqdn.js';
import { netlinkElements } from '../policy/setelem.js';
import { createApiClient } from '../common/api-client.js';
import { KubeConfigLite } from '../common/kubeconfig.js';
import type { AgentDeps, ApiClient } from '../common/agent-deps.js';
import { helpText, parseFlags } from '../common/cli.js';
import type { Component } from '../common/component.js';
import { loadConfig, type Config } from '../common/config.js';
import { ConfigError, UsageError } from '../common/errors.js';
import { Health } from '../common/health.js';
import { healthRoutes, metricsRoutes, startHttp } from '../common/http.js';
import { createLogger, type Logger } from '../common/log.js';
import { heapDumpOnSignal } from '../common/heap-dump.js';
import { trimWhenQuiet } from '../common/malloc-trim.js';
import { reserveDnsCpus } from '../common/cpu-split.js';
import { collectProcessMetrics } from '../common/metrics.js';
import { buildStatus } from '../common/status.js';
import { PodHooks } from '../common/pod-hooks.js';
import { ALL_KINDS, KINDS } from '../common/types.js';
import { registerConverter } from '../common/watch/convert.js';
import { createWatchCache } from '../common/watch/informer.js';
import { MemoryCache } from '../common/watch/store.js';

// How long a failed agent waits for its other components to wind down before exiting regardless.
const FAILED_STOP_GRACE_MS = 5_000;
const FEATURES = ['cni', 'proxy', 'dns', 'policy'] as const;
type Feature = (typeof FEATURES)[number];
/**
 * DNS hands its sockets on across restarts (dns/server/handoff.ts); only the agent does, not tests.
 * FQDN egress: policy publishes which answers feed which of its sets, DNS puts each matching
 * answer's addresses in force through the same object before replying; neither imports the other.
 */
function factories(fqdn: FqdnFeed | undefined): Record<Feature, (deps: AgentDeps) => Component> {
  return { cni: createCni, proxy: createProxy, dns: (d) => createDns(d, { handoff: true, answers: fqdn }), policy: (d) => createPolicy(d, { fqdn }) };
}

/** Only with both components on: the writes go straight over netlink (policy/setelem.ts says why not nft). */
function fqdnFeed(config: Config, log: Logger): FqdnFeed | undefined {
  if (!config.policy.enabled || !config.dns.enabled) return undefined;
  // A DNS reply waits for the write: give up sooner than the applier would.
  const writer = netlinkElements(undefined, { timeoutMs: 2000 });
  return new FqdnFeed({ write: netlinkWrite(writer), minTTL: config.policy.fqdnMinTTL, maxTTL: config.policy.fqdnMaxTTL, log: log.child({ component: 'policy' }) });
}

const OPTIONS = {
  config: { type: 'string' },
  kubeconfig: { type: 'string' },
  'node-name': { type: 'string' },
  'api-server': { type: 'string' },
  'cluster-cidrs': { type: 'string' },
  'service-cidrs': { type: 'string' },
  'cluster-domain': { type: 'string' },
  'dns-service-ips': { type: 'string' },
  'log-level': { type: 'string' },
  'metrics-bind-address': { type: 'string' },
  'healthz-bind-address': { type: 'string' },
  'state-dir': { type: 'string' },
  'run-dir': { type: 'string' },
  'proxy-backend': { type: 'string' },
  disable: { type: 'string' },
  set: { type: 'string', multiple: true },
  cleanup: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const DESCRIPTIONS: Record<string, string> = {
  config: 'YAML/JSON config file (the ConfigMap mount); env SKIFF_CONFIG',
  kubeconfig: 'kubeconfig path; in-cluster config when absent',
  'node-name': 'this node (env NODE_NAME)',
  'api-server': 'host:port of the API server, for clusters with no Service proxy yet',
  'cluster-cidrs': 'pod CIDRs, comma separated (default 10.244.0.0/16)',
  'service-cidrs': 'Service CIDRs, comma separated (default 10.96.0.0/12)',
  'cluster-domain': 'cluster DNS domain (default cluster.local)',
  'dns-service-ips': 'cluster DNS Service IPs (default 10.96.0.10)',
  'log-level': 'trace|debug|info|warn|error',
  'metrics-bind-address': 'host:port for /metrics and /status (default 0.0.0.0:10249)',
  'healthz-bind-address': 'host:port for /healthz, /livez and /readyz (default 0.0.0.0:10256)',
  'state-dir': 'persistent state (default /var/lib/skiff)',
  'run-dir': 'sockets and runtime state (default /run/skiff)',
  'proxy-backend': 'nftables|iptables',
  disable: 'features to turn off (and clean up): cni,proxy,dns,policy',
  set: 'any config key, dotted: --set dns.ttl=5 (repeatable)',
  cleanup: 'remove every rule, link and file skiff made on this node, then exit',
  help: 'show this help',
};

const FLAG_KEYS: Record<string, string> = {
  config: 'configFile',
  kubeconfig: 'kubeconfig',
  'node-name': 'nodeName',
  'api-server': 'apiServer',
  'cluster-cidrs': 'clusterCIDRs',
  'service-cidrs': 'serviceCIDRs',
  'cluster-domain': 'clusterDomain',
  'dns-service-ips': 'dnsServiceIPs',
  'log-level': 'logLevel',
  'metrics-bind-address': 'metricsBindAddress',
  'healthz-bind-address': 'healthzBindAddress',
  'state-dir': 'stateDir',
  'run-dir': 'runDir',
  'proxy-backend': 'proxy.backend',
};

export function configFromArgv(argv: string[], env: NodeJS.ProcessEnv = process.env): { config: Config; cleanup: boolean; help: boolean } {
  const { values } = parseFlags('agent', argv, OPTIONS);
  if (values.help) return { config: undefined as unknown as Config, cleanup: false, help: true };
  const flags: Record<string, string | boolean> = {};
  for (const [flag, key] of Object.entries(FLAG_KEYS)) {
    const v = values[flag as keyof typeof values];
    if (typeof v === 'string') flags[key] = v;
  }
  for (const kv of values.set ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`agent: --set expects key=value, got "${kv}"`);
    flags[kv.slice(0, i)] = kv.slice(i + 1);
  }
  for (const f of (values.disable ?? '').split(',').filter(Boolean)) {
    if (!FEATURES.includes(f as Feature)) throw new UsageError(`agent: --disable: unknown feature "${f}" (${FEATURES.join(', ')})`);
    flags[`${f}.enabled`] = false;
  }
  return { config: loadConfig(flags, env), cleanup: !!values.cleanup, help: false };
}

export function kubeConfigFor(config: Config): KubeConfigLite {
  let kc: KubeConfigLite;
  try {
    kc = config.kubeconfig ? KubeConfigLite.fromFile(config.kubeconfig) : KubeConfigLite.inCluster();
  } catch (e) {
    throw new ConfigError('kubeconfig', `cannot load ${config.kubeconfig ?? 'the in-cluster config'}: ${(e as Error).message}`);
  }
  if (config.apiServer) {
    // Before any Service rule exists the kubernetes Service VIP is unreachable, so the agent talks
    // to a real API server address (Cilium's k8sServiceHost/k8sServicePort).
    const scheme = kc.getCurrentCluster().server.startsWith('http://') ? 'http' : 'https';
    kc.setServer(`${scheme}://${config.apiServer}`);
  }
  return kc;
}

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof configFromArgv>;
  try {
    parsed = configFromArgv(argv);
  } catch (e) {
    process.stderr.write(`skiff agent: ${(e as Error).message}\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(helpText('agent', 'Runs the node agent: overlay CNI, Service proxy, cluster DNS and NetworkPolicy.', OPTIONS, DESCRIPTIONS));
    return 0;
  }
  const { config } = parsed;
  const log = createLogger(config.logLevel, { node: config.nodeName });
  // In a pod the log is all there is: a fatal error goes there as a log line, with its stack,
  // before the exit status the kubelet reports.
  const fatal = (what: string) => (err: unknown) => {
    log.fatal({ err }, what);
    process.exit(1);
  };
  process.on('uncaughtException', fatal('uncaught exception'));
  process.on('unhandledRejection', fatal('unhandled promise rejection'));
  try {
    return await (parsed.cleanup ? cleanupAll(config, log) : runAgent(config, log));
  } catch (err) {
    log.fatal({ err }, parsed.cleanup ? 'cleanup failed' : 'agent failed to start');
    return err instanceof ConfigError ? 2 : 1;
  }
}

function buildComponents(config: Config, log: Logger, deps: Omit<AgentDeps, 'log'>, fqdn?: FqdnFeed): { enabled: Component[]; disabled: Component[] } {
  const enabled: Component[] = [];
  const disabled: Component[] = [];
  const make = factories(fqdn);
  for (const f of FEATURES) {
    // Each component binds its own `component` field on the logger.
    const c = make[f]({ ...deps, log });
    (config[f].enabled ? enabled : disabled).push(c);
  }
  return { enabled, disabled };
}

async function cleanupAll(config: Config, log: Logger): Promise<number> {
  // The API is only needed to drop our Node annotations; without one, the kernel and files are
  // still cleaned and the component says what it could not remove.
  const none = () => Promise.reject(new Error('no API server configured'));
  let api: ApiClient = { patchNodeAnnotations: none, patchNodeCondition: none };
  try {
    api = createApiClient(kubeConfigFor(config));
  } catch (err) {
    log.warn({ err }, 'no usable kubeconfig: Node annotations stay');
  }
  const deps = { config, cache: new MemoryCache(), health: new Health(), api };
  const { enabled, disabled } = buildComponents(config, log, deps);
  let failed = 0;
  for (const c of [...enabled, ...disabled]) {
    try {
      await c.cleanup();
      log.info({ component: c.name }, 'cleaned up');
    } catch (e) {
      failed++;
      log.error({ component: c.name, err: e }, 'cleanup failed');
    }
  }
  if (failed === 0) {
    for (const dir of [config.runDir, config.stateDir]) rmSync(dir, { recursive: true, force: true });
    log.info({ removed: [config.runDir, config.stateDir] }, 'removed state directories');
  }
  return failed ? 1 : 0;
}

async function runAgent(config: Config, log: Logger): Promise<number> {
  // First: every child process started from here on inherits the main thread's CPUs.
  if (config.dns.enabled && config.dns.workers > 0) reserveDnsCpus(config.dns.workers, log);
  collectProcessMetrics();
  heapDumpOnSignal(process.env.SKIFF_HEAP_SNAPSHOT_DIR, dnsThreads, log);
  trimWhenQuiet(log);
  const kubeConfig = kubeConfigFor(config);
  // The network-policy-api kinds are parsed by policy's own converters (common/ imports no component).
  for (const [kind, fn] of Object.entries(adminWatchConverters())) registerConverter(kind as keyof ReturnType<typeof adminWatchConverters>, fn);
  // The cluster-wide pod watch exists for policy only (common/watch/README.md).
  const kinds = config.policy.enabled ? ALL_KINDS : KINDS;
  const watch = createWatchCache({ kubeConfig, nodeName: config.nodeName, log: log.child({ component: 'watch' }), kinds });
  const health = new Health();
  health.addReadiness('watch', () => ({ ok: watch.cache.synced() }));
  const deps = { config, cache: watch.cache, health, api: createApiClient(kubeConfig), podHooks: new PodHooks() };
  const { enabled, disabled } = buildComponents(config, log, deps, fqdnFeed(config, log));

  // A feature turned off removes what an earlier run left behind (kindnet's CleanRules).
  for (const c of disabled) await c.cleanup().catch((err: unknown) => log.warn({ component: c.name, err }, 'cleanup of disabled feature failed'));

  const http = await startHttp([
    { bind: config.metricsBindAddress, routes: metricsRoutes({ '/status': () => buildStatus(config, watch.cache, health) }) },
    { bind: config.healthzBindAddress, routes: healthRoutes(health) },
  ]);
  const stop = new AbortController();
  // Every watch, sync loop and server listens on this one signal.
  setMaxListeners(100, stop.signal);
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    log.info({ signal: sig }, signals === 1 ? 'shutting down' : 'second signal: exiting now');
    if (signals > 1) process.exit(1);
    health.draining = true;
    stop.abort(new Error(`received ${sig}`));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  log.info({ features: enabled.map((c) => c.name), listen: http.addresses() }, 'agent starting');
  // One failed component takes the agent down so the DaemonSet restarts it whole, rather than
  // leaving a node that serves DNS but silently stopped programming Services.
  let failed = false;
  const running = new Set<string>();
  const supervise = (name: string, p: Promise<void>): Promise<void> => {
    running.add(name);
    return p
      .catch((err: unknown) => {
        if (stop.signal.aborted) return;
        failed = true;
        log.error({ component: name, err }, 'component failed; stopping the agent');
        stop.abort(err);
        // The DaemonSet only restarts a process that exits: one component still busy after the
        // abort must not keep a failed agent up.
        setTimeout(() => {
          log.error({ pending: [...running] }, 'components did not stop after a failure; exiting anyway');
          process.exit(1);
        }, FAILED_STOP_GRACE_MS).unref();
      })
      .finally(() => running.delete(name));
  };
  await Promise.all([supervise('watch', watch.start(stop.signal)), ...enabled.map((c) => supervise(c.name, c.run(stop.signal)))]);
  await http.close();
  if (failed) return 1;
  log.info('agent stopped');
  return 0;
}
