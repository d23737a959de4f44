// The node overlay, run by `skiff agent`: serves the CNI shim, prepares the node (bridge, VXLAN,
// forwarding), keeps one set of VXLAN entries per peer node, masquerades traffic leaving the
// cluster, writes the conflist once the node has a podCIDR, and releases leaked addresses.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { dirname, join } from 'node:path';
import { isIP } from 'node:net';
import type { AgentDeps } from '../common/agent-deps.js';
import { type Component, untilAborted } from '../common/component.js';
import type { PodAttachment } from '../common/pod-hooks.js';
import type { NodeInfo, PodInfo } from '../common/types.js';
import { BRIDGE, buildConflist, CONFLIST_NAME, NETWORK_NAME } from './conflist.js';
import { IpamStore } from './ipam/store.js';
import { staleAllocations } from './ipam/reconcile.js';
import { deleteMasq } from './overlay/masq.js';
import { chainVersion, internalIPv4, setupNode, type NodeSetup } from './overlay/node-setup.js';
import { DIRECT_ROUTING_ANNOTATION, type DirectRouting } from './overlay/direct.js';
import { PeerSync } from './overlay/peer-sync.js';
import { detectUnderlay } from './overlay/underlay.js';
import { PUBLIC_IP_ANNOTATION, VTEP_MAC_ANNOTATION } from './overlay/peers.js';
import { deleteLink, VXLAN_DEV } from './overlay/vxlan.js';
import { run } from './plugin/exec.js';
import { bridgePorts, delHostLink, hostVethName } from './plugin/netdev.js';
import { listenCni } from './server.js';
import { installShim, SHIM_BUILD_PATH } from './install.js';
import { ipamReleased, overlayPeers, overlaySyncErrors } from './metrics.js';

const POD_NODE_INDEX = 'cni.nodeName';
const RECONCILE_EVERY_MS = 5 * 60_000;

export function createCni(deps: AgentDeps): Component {
  const { config, cache, log: rootLog, health, api } = deps;
  const log = rootLog.child({ component: 'cni' });
  const socketPath = join(config.runDir, 'cni.sock');
  const confPath = join(config.cni.confDir, CONFLIST_NAME);
  let setup: NodeSetup | undefined;
  /** The underlay direct routing decides by, while cni.directRouting is on. */
  let underlay: DirectRouting | undefined;
  let ready = false;
  let notReady = 'waiting for the Node object';
  let lastSyncOk = 0;
  let conditionPosted = false;
  const peerSync = new PeerSync(config.nodeName, { clusterCIDRs: config.clusterCIDRs, vxlanPort: config.cni.vxlanPort, masquerade: config.cni.masquerade });
  // Nodes named by watch batches since the last sync; `fullNext` asks for a recompute of all.
  let pending = new Set<string>();
  let fullNext = true;
  health.addReadiness('cni', () => ({ ok: ready, ...(ready ? {} : { detail: { reason: notReady } }) }));

  const selfNode = (): NodeInfo | undefined => cache.store('nodes').get(config.nodeName);

  async function sync(): Promise<void> {
    const names = pending;
    const full = fullNext || !setup || names.has(config.nodeName);
    pending = new Set();
    fullNext = false;
    try {
      if (full) await fullSync();
      else await peersSync(names);
    } catch (e) {
      fullNext = true;
      throw e;
    }
  }

  function notReadyBecause(reason: string): void {
    if (ready) log.warn({ reason }, 'cni not ready');
    ready = false;
    notReady = reason;
  }

  /** Another node changed: only its entries and addresses, nothing that depends on this node. */
  async function peersSync(names: ReadonlySet<string>): Promise<void> {
    const nodes = cache.store('nodes');
    const changed = await peerSync.changed(names, (n) => nodes.get(n), () => nodes.values());
    overlayPeers.set(peerSync.peers);
    if (changed) log.debug({ changed, nodes: names.size }, 'vxlan peer entries updated');
    lastSyncOk = Date.now();
  }

  async function fullSync(): Promise<void> {
    const self = selfNode();
    // Not ready again (STATUS answers 50) when the Node went away or lost its podCIDR. A failed
    // sync after that leaves ready as it is: pods still get addresses and links.
    if (!self) return notReadyBecause(`node ${config.nodeName} not found`);
    if (self.podCIDRs.length === 0) return notReadyBecause(`node ${config.nodeName} has no podCIDR yet`);
    const fresh = !setup || setup.podCIDRs.join(',') !== self.podCIDRs.join(',');
    if (!fresh && config.cni.directRouting) await refreshUnderlay(internalIPv4(self)!);
    if (!setup || fresh) {
      peerSync.invalidate();
      setup = await setupNode(self, {
        mtu: config.cni.mtu,
        vni: config.cni.vni,
        port: config.cni.vxlanPort,
        ipv6: config.clusterCIDRs.some((c) => isIP(c.split('/')[0]!) === 6),
        directRouting: config.cni.directRouting,
      });
      underlay = config.cni.directRouting ? { dev: setup.underlay.ifname, subnets: setup.underlay.subnets } : undefined;
      peerSync.setDirect(underlay);
      log.info({ underlay: setup.underlay.ifname, mtu: setup.mtu, vtepMac: setup.vtepMac }, 'node overlay set up');
      if (setup.forwardingOff.length) log.error({ sysctls: setup.forwardingOff }, 'forwarding is off and /proc/sys is not writable: pods cannot leave this node');
      if (setup.rpFilterUnset.length) log.warn({ sysctls: setup.rpFilterUnset }, 'cannot set loose rp_filter: direct pod traffic may be dropped while a peer switches between VXLAN and direct');
      if (!setup.checksumWorkaround) log.warn('kernel older than 5.7 and no ethtool: VXLAN tx checksum offload stays on (flannel #1279); install ethtool');
    }
    const publicIP = internalIPv4(self)!;
    const direct = config.cni.directRouting ? 'true' : undefined;
    if (self.annotations[VTEP_MAC_ANNOTATION] !== setup.vtepMac || self.annotations[PUBLIC_IP_ANNOTATION] !== publicIP || self.annotations[DIRECT_ROUTING_ANNOTATION] !== direct) {
      await api.patchNodeAnnotations(self.name, { [VTEP_MAC_ANNOTATION]: setup.vtepMac, [PUBLIC_IP_ANNOTATION]: publicIP, [DIRECT_ROUTING_ANNOTATION]: direct ?? null });
    }
    // The masq table is skipped when unchanged; the periodic resync invalidates, so a table or an
    // entry removed behind our back returns.
    const changed = await peerSync.full(cache.store('nodes').values());
    overlayPeers.set(peerSync.peers);
    if (changed) log.debug({ changed }, 'vxlan peer entries updated');
    if (!shimInstalled) {
      // Best effort: the DaemonSet's init container normally installs it and mounts binDir read-only.
      try {
        const r = installShim(config.cni.binDir);
        if (r === 'missing') log.info({ path: SHIM_BUILD_PATH }, 'no compiled CNI shim in this build; not installing <binDir>/skiff');
        else log.info({ binDir: config.cni.binDir, result: r }, 'CNI shim');
      } catch (e) {
        log.warn({ err: e, binDir: config.cni.binDir }, 'cannot install the CNI shim; expecting the init container to have done it');
      }
      shimInstalled = true;
    }
    const { chain, cniVersion } = await chains();
    const text = buildConflist(self, { cniVersion, mtu: setup.mtu, stateDir: config.stateDir, agentSocket: socketPath, chain });
    if (text) writeIfChanged(confPath, text);
    ready = true;
    lastSyncOk = Date.now();
    if (!conditionPosted) {
      // NetworkUnavailable=False, as Calico and Cilium post it: the node lifecycle controller
      // taints a node while it is True (cloud route controllers set it until routes exist), and
      // `kubectl describe node` shows which network plugin brought the node's pod network up.
      // Once per agent start; a failure (an older ClusterRole without nodes/status) is retried
      // by the next full sync and does not make the node unready.
      try {
        await api.patchNodeCondition(self.name, { type: 'NetworkUnavailable', status: 'False', reason: 'SkiffIsUp', message: 'skiff set up the pod network on this node' });
        conditionPosted = true;
      } catch (err) {
        log.warn({ err }, 'cannot set the NetworkUnavailable condition on the Node');
      }
    }
  }

  /**
   * A node's addresses can change without a new podCIDR (renumbered, a second subnet added): each
   * full sync reads the underlay again, and the direct routes follow in the same sync.
   */
  async function refreshUnderlay(nodeIP: string): Promise<void> {
    const u = await detectUnderlay(nodeIP);
    if (!u) return;
    if (u.ifname === underlay?.dev && u.subnets.join() === underlay.subnets.join()) return;
    underlay = { dev: u.ifname, subnets: u.subnets };
    peerSync.setDirect(underlay);
    log.info({ underlay: u.ifname, subnets: u.subnets }, 'underlay addresses changed; direct routes follow');
  }

  let shimInstalled = false;
  let chainCache: Promise<{ chain: ('portmap' | 'bandwidth')[]; cniVersion: string }> | undefined;
  const chains = () => (chainCache ??= chainVersion(config.cni.binDir));

  async function reconcileIpam(): Promise<void> {
    if (!setup) return;
    const pods = cache.store('pods');
    pods.addIndex(POD_NODE_INDEX, (p: PodInfo) => [p.nodeName]);
    const onNode = new Map(pods.byIndex(POD_NODE_INDEX, config.nodeName).map((p) => [`${p.namespace}/${p.name}`, p]));
    const store = new IpamStore(config.stateDir, NETWORK_NAME, setup.podCIDRs);
    const stale = staleAllocations(await store.list(), onNode, existsSync, Date.now());
    if (stale.length === 0) return;
    for (const a of stale) {
      if (a.containerID) await delHostLink(hostVethName(a.containerID, a.ifname));
    }
    await store.releaseIPs(stale.map((a) => a.ip));
    ipamReleased.inc(stale.length);
    log.info({ released: stale.map((a) => a.ip) }, 'released leaked pod addresses');
  }

  return {
    name: 'cni',
    async run(signal: AbortSignal): Promise<void> {
      health.addLiveness('cni', () => ({ ok: !ready || Date.now() - lastSyncOk < 10 * 60_000 }));
      const own = { stateDir: config.stateDir, bridge: BRIDGE };
      const hooks = deps.podHooks;
      const handlerDeps = {
        status: () => ({ ok: ready, reason: notReady }),
        bridgeReady: () => ready,
        own,
        ...(hooks ? { attached: (p: PodAttachment) => hooks.attached(p), detached: (p: Omit<PodAttachment, 'ips'>) => hooks.detached(p) } : {}),
      };
      const server: Server = await listenCni(socketPath, handlerDeps, (e) => log.warn({ err: e }, 'cni request failed'));
      let timer: NodeJS.Timeout | undefined;
      let running: Promise<void> | undefined;
      let again = false;
      let backoff = 500;
      const kick = (): void => {
        if (signal.aborted) return;
        if (running) return void (again = true);
        clearTimeout(timer);
        running = sync()
          .then(() => void (backoff = 500))
          .catch((e) => {
            notReady = (e as Error).message;
            overlaySyncErrors.inc();
            log.error({ err: e }, 'cni sync failed; retrying');
            timer = setTimeout(kick, backoff);
            backoff = Math.min(backoff * 2, 30_000);
          })
          .finally(() => {
            running = undefined;
            if (again) {
              again = false;
              kick();
            }
          });
      };
      try {
        await cache.waitForSync(['nodes'], signal);
        const unsubscribe = cache.subscribe(['nodes'], (b) => {
          for (const c of b.changes) pending.add(c.key);
          if (b.synced.length) fullNext = true;
          kick();
        });
        kick();
        const reconcile = async (): Promise<void> => {
          try {
            await cache.waitForSync(['pods'], signal);
            while (!setup && !signal.aborted) await new Promise((r) => setTimeout(r, 200));
            await reconcileIpam();
          } catch (e) {
            if (!signal.aborted) log.warn({ err: e }, 'IPAM reconcile failed');
          }
        };
        void reconcile();
        const periodic = setInterval(() => {
          peerSync.invalidate();
          fullNext = true;
          kick();
          void reconcile();
        }, RECONCILE_EVERY_MS);
        await untilAborted(signal);
        unsubscribe();
        clearInterval(periodic);
      } catch (e) {
        if (!signal.aborted) throw e;
      } finally {
        clearTimeout(timer);
        await running;
        await new Promise<void>((r) => server.close(() => r()));
        rmSync(socketPath, { force: true });
      }
    },
    async cleanup(): Promise<void> {
      rmSync(confPath, { force: true });
      for (const port of await bridgePorts(BRIDGE)) await delHostLink(port);
      await deleteLink(VXLAN_DEV);
      await deleteLink(BRIDGE);
      await run(['nft', '-f', '-'], deleteMasq()).catch(() => undefined);
      rmSync(socketPath, { force: true });
      // Uninstall leaves nothing of ours on the node: allocations, the plugin binary, our annotations.
      rmSync(join(config.stateDir, 'ipam'), { recursive: true, force: true });
      rmSync(join(config.cni.binDir, 'skiff'), { force: true });
      await withTimeout(api.patchNodeAnnotations(config.nodeName, { [VTEP_MAC_ANNOTATION]: null, [PUBLIC_IP_ANNOTATION]: null, [DIRECT_ROUTING_ANNOTATION]: null }), 5000).catch((err: unknown) =>
        log.warn({ err }, 'could not remove the Node annotations; remove skiff.io/* by hand'),
      );
      ready = false;
      setup = undefined;
      fullNext = true;
      peerSync.invalidate();
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

function writeIfChanged(path: string, text: string): void {
  try {
    if (readFileSync(path, 'utf8') === text) return;
  } catch {
    /* not written yet */
  }
  mkdirSync(dirname(path), { recursive: true });
  // A name the runtime ignores (it loads *.conf, *.conflist, *.json), then an atomic rename.
  const tmp = `${path}.skiff-tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}
