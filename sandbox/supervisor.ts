// The sandbox's one background daemon: the fake API server (with the Service allocator as an
// admission hook), the scheduler and EndpointSlice controller, one kubelet stand-in per node and one
// `skiff agent` per node. All share the in-process store, so controllers react to a write within
// milliseconds and nothing else needs to be kept in sync.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createLogger, type Logger } from '../common/log.js';
import { eventsV1Route } from './apiserver/events-v1.js';
import { scaleRoute } from './apiserver/scale.js';
import { loadStoreFile, saveStoreFile, startFakeApiServer, type FakeApiServer } from './apiserver/index.js';
import { AgentProcess } from './agents.js';
import { ensureNodes, ensureSystemServices } from './bootstrap.js';
import { admitWorkloads, WorkloadControllers } from './apps/controllers.js';
import { EndpointSliceController, Scheduler } from './controllers.js';
import { EventRecorder } from './events.js';
import { execUpgrade } from './podio/exec.js';
import { logsRoute } from './podio/logs.js';
import type { ContainerLookup } from './podio/target.js';
import { Kubelet } from './kubelet/kubelet.js';
import { API_PORT, API_TLS_PORT, CLUSTER_DOMAIN, INTERNET_IP, DNS_SERVICE_IP, SERVICE_CIDR, layout, nodeLayouts, type Layout, type SandboxSpec } from './names.js';
import { serviceAdmission } from './service-alloc.js';
import { killNetnsProcesses } from './underlay.js';

export function readSpec(specFile: string): SandboxSpec {
  return JSON.parse(readFileSync(specFile, 'utf8')) as SandboxSpec;
}

export interface Supervisor {
  readonly server: FakeApiServer;
  stop(): Promise<void>;
}

export async function startSupervisor(l: Layout, log: Logger, opts: { agents?: boolean } = {}): Promise<Supervisor> {
  const store = loadStoreFile(l.apiStateFile) ?? undefined;
  const server = await startFakeApiServer({ host: l.hostIP, port: API_PORT, ...(store ? { store } : {}) });
  // Pods reach the API server through the `kubernetes` Service over HTTPS, as in a real cluster;
  // the same store behind a second, TLS listener (clients on the host keep the plain one).
  const tlsServer = await startFakeApiServer({ host: l.hostIP, port: API_TLS_PORT, store: server.store, tls: true });
  writeFileSync(l.apiCaFile, tlsServer.tls!.cert);
  server.admit('services', serviceAdmission(() => server.store.select('services'), { serviceCIDR: SERVICE_CIDR }));
  server.writeKubeconfig(l.kubeconfig);
  ensureNodes(server.store, l);
  ensureSystemServices(server.store, l);

  admitWorkloads(server.store);
  const events = new EventRecorder(server.store, log.child({ component: 'events' }));
  const endpointSlices = new EndpointSliceController(server.store, log.child({ component: 'endpointslice-controller' }));
  const scheduler = new Scheduler(server.store, log.child({ component: 'scheduler' }), events.for('default-scheduler'));
  const workloads = new WorkloadControllers(server.store, log.child({ component: 'workload-controllers' }), (c) => events.for(c));
  const hostResolvConf = (() => {
    try {
      return readFileSync('/etc/resolv.conf', 'utf8');
    } catch {
      return '';
    }
  })();
  const kubelets = new Map(
    nodeLayouts(l).map((n) => [
      n.name,
      new Kubelet({ store: server.store, sandbox: l, node: n, dns: { clusterDNS: [DNS_SERVICE_IP], clusterDomain: CLUSTER_DOMAIN, hostResolvConf }, log: log.child({ component: 'kubelet', node: n.name }), events: events.for('kubelet', n.name) }),
    ]),
  );

  // logs and exec reach the kubelet stand-in of the pod's node in process, as the API server
  // proxies them to the node's kubelet.
  const lookup: ContainerLookup = (node, uid, container) => kubelets.get(node)?.container(uid, container);
  for (const srv of [server, tlsServer]) {
    srv.route(logsRoute(server.store, lookup));
    srv.route(scaleRoute(server.store));
    srv.route(eventsV1Route(server.store));
    srv.upgrade(execUpgrade(server.store, lookup));
  }

  let saveTimer: NodeJS.Timeout | undefined;
  const save = (): void => {
    saveTimer = undefined;
    saveStoreFile(server.store, l.apiStateFile);
  };
  server.store.onEvent((e) => {
    endpointSlices.observe(e.resource, e.object);
    scheduler.observe(e.resource);
    workloads.observe(e.resource);
    if (e.resource === 'pods') {
      for (const o of [e.object, e.previous]) {
        const node = (o?.spec as { nodeName?: string } | undefined)?.nodeName;
        if (node) kubelets.get(node)?.kick();
      }
    }
    saveTimer ??= setTimeout(save, 200);
  });
  endpointSlices.loop.kick();
  scheduler.loop.kick();
  workloads.loop.kick();

  const stop = new AbortController();
  // A previous supervisor that crashed left its agents, host-network pods and echo server behind:
  // everything in the node and outside namespaces was started by a supervisor of this sandbox.
  const stale = await killNetnsProcesses([l.extNs, ...nodeLayouts(l).map((n) => n.name)]);
  if (stale.length) log.warn({ killed: stale }, 'killed processes left by an earlier supervisor');
  for (const k of kubelets.values()) await k.recover();
  const kubeletRuns = [...kubelets.values()].map((k) => k.run(stop.signal));
  // Nodes whose agent something else runs (the image e2e runs the DaemonSet's pod there instead).
  const external = new Set((process.env.SKIFF_SANDBOX_EXTERNAL_AGENTS ?? '').split(',').filter(Boolean));
  const agents = opts.agents === false ? [] : nodeLayouts(l).filter((n) => !external.has(n.name)).map((n) => new AgentProcess(l, n, log.child({ component: 'agent-manager' })));
  for (const a of agents) a.start();
  const internet = startInternet(l, log);
  log.info({ url: server.url, nodes: l.nodes }, 'sandbox supervisor ready');

  return {
    server,
    async stop() {
      internet.kill('SIGKILL');
      // Pods first, while the agents still run: a CNI plugin's DEL may need its node's agent.
      stop.abort();
      await Promise.all(kubeletRuns);
      await Promise.all(agents.map((a) => a.stop()));
      endpointSlices.loop.stop();
      scheduler.loop.stop();
      workloads.loop.stop();
      clearTimeout(saveTimer);
      save();
      await tlsServer.close();
      await server.close();
    },
  };
}

/**
 * "The internet": an HTTP echo of the client's address on the outside namespace, so a test can see
 * whether a pod's traffic left its node masqueraded (the node IP comes back) or not (the pod IP).
 */
function startInternet(l: Layout, log: Logger): ChildProcess {
  // A real HTTP server: a socat SYSTEM reply that exits before reading the request sometimes
  // resets the connection before the answer is out.
  const script = `require('http').createServer((q, s) => s.end(q.socket.remoteAddress + '\\n')).listen(80, '${INTERNET_IP}')`;
  const p = spawn('ip', ['netns', 'exec', l.extNs, process.execPath, '-e', script], { stdio: 'ignore' });
  p.on('error', (err) => log.warn({ err }, 'internet echo server failed'));
  return p;
}

/** `skiff sandbox supervise --state-dir DIR`: runs in the background until SIGTERM. */
export async function superviseMain(stateDir: string): Promise<number> {
  const l = layout(readSpec(`${stateDir}/sandbox.json`));
  const log = createLogger('info', { sandbox: l.name });
  const sup = await startSupervisor(l, log);
  writeFileSync(l.pidFile, `${process.pid}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  log.info('stopping');
  await sup.stop();
  rmSync(l.pidFile, { force: true });
  log.info('stopped');
  // Everything it started is stopped; a stray handle must not keep a daemon nobody tracks alive.
  setTimeout(() => process.exit(0), 500).unref();
  return 0;
}
