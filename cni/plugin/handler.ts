// One request in, one answer out: { exit code, stdout }. The same function serves the C shim's
// requests inside the agent and the `skiff cni` Node fallback, so both paths behave identically.
import { CniCode, CniError, errorJson } from '../spec/errors.js';
import { parseCommand, parseRequest, type CniRequest, type NetConf } from '../spec/request.js';
import { formatResult, type Result, type ResultIP, type ResultInterface } from '../spec/result.js';
import { SUPPORTED_VERSIONS } from '../spec/version.js';
import { formatIP, parseIP, parseRange } from '../ipam/ipnet.js';
import { IpamStore, type Allocation } from '../ipam/store.js';
import type { PodAttachment } from '../../common/pod-hooks.js';
import { mark } from '../trace.js';
import { addPodLink, bridgePorts, checkPodLink, delHostLink, ensureBridge, hostVethName, macForIP, randomMac } from './netdev.js';

export interface Reply {
  readonly code: number;
  readonly stdout: string;
}

export interface HandlerDeps {
  /** The agent's readiness for STATUS; absent in the fallback path, which is ready when its config is. */
  readonly status?: () => { ok: boolean; reason?: string };
  /** True once the agent has built the bridge, which saves a lookup per ADD. */
  readonly bridgeReady?: () => boolean;
  /**
   * The agent's own state directory and bridge. The network config names them too (the Node
   * fallback runs from it alone), but the agent is root in the host: a config naming anything
   * else is refused, so no input makes it write files elsewhere or touch another interface.
   */
  readonly own?: { readonly stateDir: string; readonly bridge: string };
  /**
   * Called once the pod's interface has its addresses and before ADD answers; a throw fails the
   * ADD. The agent passes its PodHooks here, so policy is in force before the pod's first packet.
   */
  readonly attached?: (pod: PodAttachment) => Promise<void>;
  /** Called when DEL removed the pod's interface. */
  readonly detached?: (pod: Omit<PodAttachment, 'ips'>) => Promise<void>;
}

const stores = new Map<string, IpamStore>();
function storeFor(conf: NetConf): IpamStore {
  const key = `${conf.stateDir}\0${conf.name}\0${conf.podCIDRs.join(',')}`;
  let s = stores.get(key);
  if (!s) stores.set(key, (s = new IpamStore(conf.stateDir, conf.name, conf.podCIDRs)));
  return s;
}

export async function handle(env: Readonly<Record<string, string | undefined>>, stdin: string, deps: HandlerDeps = {}): Promise<Reply> {
  let version: string = SUPPORTED_VERSIONS.at(-1)!;
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && v) version = v;
  } catch {
    /* reported by parseRequest */
  }
  try {
    const req = parseRequest(env, stdin);
    mark('parsed');
    version = req.cniVersion;
    const out = await dispatch(req, deps);
    return { code: 0, stdout: out === undefined ? '' : JSON.stringify(out) };
  } catch (e) {
    if (!(e instanceof CniError)) {
      // An unexpected failure still answers in CNI's format, never as a stack trace on stdout.
      return { code: 1, stdout: errorJson(new CniError(CniCode.Internal, (e as Error)?.message ?? String(e)), version) };
    }
    return { code: 1, stdout: errorJson(e, version) };
  }
}

/** Commands that must work without a readable stdin still name a command first. */
export function commandOf(env: Readonly<Record<string, string | undefined>>): string | undefined {
  try {
    return parseCommand(env);
  } catch {
    return undefined;
  }
}

async function dispatch(req: CniRequest, deps: HandlerDeps): Promise<unknown> {
  if (req.conf && deps.own) {
    for (const key of ['stateDir', 'bridge'] as const) {
      if (req.conf[key] !== deps.own[key]) throw new CniError(CniCode.InvalidConfig, `${key} ${JSON.stringify(req.conf[key])} is not this agent's (${deps.own[key]})`, 'use the conflist the agent writes');
    }
  }
  switch (req.command) {
    case 'VERSION':
      return { cniVersion: req.cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
    case 'ADD':
      return formatResult(await add(req, req.conf!, deps), req.cniVersion);
    case 'DEL':
      await del(req, req.conf!, deps);
      return undefined;
    case 'CHECK':
      await check(req, req.conf!);
      return undefined;
    case 'STATUS': {
      const s = deps.status?.() ?? { ok: true };
      if (!s.ok) throw new CniError(CniCode.PluginNotAvailable, 'skiff is not ready to add pods', s.reason ?? '');
      return undefined;
    }
    case 'GC':
      await gc(req.conf!);
      return undefined;
  }
}

function addressesOf(conf: NetConf, allocs: readonly Allocation[]): { cidrs: string[]; gateways: string[] } {
  const cidrs: string[] = [];
  const gateways: string[] = [];
  for (const c of conf.podCIDRs) {
    const r = parseRange(c);
    const a = allocs.find((x) => x.family === r.family);
    if (!a) continue;
    cidrs.push(`${a.ip}/${r.prefix}`);
    gateways.push(formatIP(r.gateway, r.family));
  }
  return { cidrs, gateways };
}

async function add(req: CniRequest, conf: NetConf, deps: HandlerDeps): Promise<Result> {
  const store = storeFor(conf);
  const allocs = await store.allocate({
    containerID: req.containerID,
    ifname: req.ifname,
    netns: req.netns,
    ...(req.args.K8S_POD_NAMESPACE ? { podNamespace: req.args.K8S_POD_NAMESPACE } : {}),
    ...(req.args.K8S_POD_NAME ? { podName: req.args.K8S_POD_NAME } : {}),
    ...(req.args.K8S_POD_UID ? { podUID: req.args.K8S_POD_UID } : {}),
  });
  mark('ipam');
  const fresh = allocs.filter((a) => a.fresh);
  const { cidrs, gateways } = addressesOf(conf, allocs);
  const hostIf = hostVethName(req.containerID, req.ifname);
  const hostMac = randomMac();
  const podMac = macForIP(allocs[0]!.ip);
  try {
    if (!deps.bridgeReady?.()) await ensureBridge(conf.bridge, conf.podCIDRs, conf.mtu);
    mark('bridge');
    await addPodLink({ hostIf, hostMac, podIf: req.ifname, podMac, netns: req.netns, mtu: conf.mtu, bridge: conf.bridge, addresses: cidrs, gateways });
  } catch (e) {
    // Only what this ADD allocated goes back: a repeated ADD must not free a live pod's address.
    if (fresh.length > 0) await store.releaseIPs(fresh.map((a) => a.ip));
    throw e;
  }
  const pod = podOf(req);
  if (pod && deps.attached) {
    try {
      await deps.attached({ ...pod, ips: allocs.map((a) => a.ip) });
    } catch (e) {
      // The pod never runs: its link goes (no packet before policy), and what this ADD allocated.
      await delHostLink(hostIf).catch(() => undefined);
      if (fresh.length > 0) await store.releaseIPs(fresh.map((a) => a.ip));
      throw new CniError(CniCode.TryAgainLater, `pod ${pod.namespace}/${pod.name} is not ready for traffic: ${(e as Error).message}`);
    }
    mark('hooks');
  }
  const prev = conf.prevResult;
  const base = prev?.interfaces.length ?? 0;
  const interfaces: ResultInterface[] = [
    ...(prev?.interfaces ?? []),
    { name: conf.bridge },
    { name: hostIf, mac: hostMac },
    { name: req.ifname, mac: podMac, mtu: conf.mtu, sandbox: req.netns },
  ];
  const ips: ResultIP[] = [
    ...(prev?.ips ?? []),
    ...cidrs.map((address, i) => ({ address, gateway: gateways[i]!, interface: base + 2 })),
  ];
  const routes = [...(prev?.routes ?? []), ...gateways.map((gw) => ({ dst: gw.includes(':') ? '::/0' : '0.0.0.0/0', gw }))];
  return { interfaces, ips, routes, dns: prev?.dns ?? {} };
}

async function del(req: CniRequest, conf: NetConf, deps: HandlerDeps): Promise<void> {
  // The link goes first so an address is never handed out while still configured on a live veth.
  await delHostLink(hostVethName(req.containerID, req.ifname));
  mark('del-link');
  await storeFor(conf).release(req.containerID, req.ifname);
  mark('ipam-release');
  const pod = podOf(req);
  // Listeners log their own failures; a DEL must still succeed so the runtime can move on.
  if (pod && deps.detached) await deps.detached(pod).catch(() => undefined);
}

/** The pod a request is for, from the runtime's CNI_ARGS (absent outside Kubernetes). */
function podOf(req: CniRequest): Omit<PodAttachment, 'ips'> | undefined {
  const { K8S_POD_NAMESPACE: namespace, K8S_POD_NAME: name, K8S_POD_UID: uid } = req.args;
  if (!namespace || !name) return undefined;
  return uid ? { namespace, name, uid } : { namespace, name };
}

async function check(req: CniRequest, conf: NetConf): Promise<void> {
  const prev = conf.prevResult;
  if (!prev) throw new CniError(CniCode.InvalidConfig, 'CHECK needs prevResult');
  const allocs = await storeFor(conf).find(req.containerID, req.ifname);
  if (allocs.length === 0) throw new CniError(CniCode.UnknownContainer, `no addresses are allocated to ${req.containerID}/${req.ifname}`);
  const { cidrs, gateways } = addressesOf(conf, allocs);
  const prevAddrs = new Set(prev.ips.map((i) => canonicalCidr(i.address)));
  for (const c of cidrs) if (!prevAddrs.has(canonicalCidr(c))) throw new CniError(CniCode.Internal, `prevResult does not list allocated address ${c}`);
  await checkPodLink({ hostIf: hostVethName(req.containerID, req.ifname), podIf: req.ifname, netns: req.netns, bridge: conf.bridge, addresses: cidrs, gateways });
}

function canonicalCidr(c: string): string {
  const [a, p] = c.split('/');
  const { family, value } = parseIP(a!);
  return `${formatIP(value, family)}/${p}`;
}

async function gc(conf: NetConf): Promise<void> {
  const valid = new Set((conf.validAttachments ?? []).map((a) => `${a.containerID}\0${a.ifname}`));
  const validIfs = new Set((conf.validAttachments ?? []).map((a) => hostVethName(a.containerID, a.ifname)));
  const store = storeFor(conf);
  const stale = (await store.list()).filter((a) => !valid.has(`${a.containerID}\0${a.ifname}`));
  for (const a of stale) if (a.containerID) await delHostLink(hostVethName(a.containerID, a.ifname));
  await store.releaseIPs(stale.map((a) => a.ip));
  for (const port of await bridgePorts(conf.bridge)) if (!validIfs.has(port)) await delHostLink(port);
}
