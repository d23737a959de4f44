// The kubelet stand-in of one sandbox node: for every pod bound to the node it creates the pod's
// network namespace, calls the node's CNI config exactly as containerd would, starts the containers'
// commands in that namespace, runs readiness probes and reports status. Level-triggered: each sync
// compares the pods in the store with what runs and fixes the difference, so a missed event only
// delays work until the next tick.
import type { ChildProcess } from 'node:child_process';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../common/log.js';
import type { KubeObject } from '../apiserver/resources.js';
import type { FakeStore } from '../apiserver/store.js';
import { cniAdd, cniDel, execInNetns, loadNetConfList, resultIPs, type NetConfList } from '../cni-exec.js';
import type { RecordEvent } from '../events.js';
import { podContainerId, podNetns, type Layout, type NodeLayout } from '../names.js';
import { podResolvConf, type DnsSettings } from '../resolv.js';
import { run, tryRun } from '../sh.js';
import { containerEnv, startContainer, stopProcessGroup, type ContainerSpec } from './containers.js';
import { podStatus, type ContainerState } from './pod-status.js';
import { ReadinessTracker, runProbe, type Probe } from './probes.js';
import { untilAborted } from '../../common/component.js';

export interface KubeletOptions {
  readonly store: FakeStore;
  readonly sandbox: Layout;
  readonly node: NodeLayout;
  readonly dns: DnsSettings;
  readonly log: Logger;
  /** Extra plugin directories after the node's own bin dir (Debian's reference plugins). */
  readonly extraCniBinDirs?: readonly string[];
  readonly tickMs?: number;
  /** Records Events about pods (Created, Started, Killing, BackOff, …); none by default. */
  readonly events?: RecordEvent;
}

/** Where a running container can be reached, for logs and exec. */
export interface ContainerTarget {
  readonly netns: string;
  readonly env: Record<string, string>;
  readonly cwd: string;
  readonly logFile: string;
  readonly running: boolean;
}

interface Container {
  readonly spec: ContainerSpec;
  proc?: ChildProcess;
  exited?: Promise<void>;
  state: ContainerState;
  restartCount: number;
  backoffMs: number;
  nextStart: number;
  readiness?: ReadinessTracker;
  nextProbe: number;
  probing: boolean;
}

interface PodRuntime {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly netns: string;
  readonly hostNetwork: boolean;
  readonly containerId: string;
  readonly startTime: string;
  pod: KubeObject;
  networkReady: boolean;
  networkMessage: string;
  cniList?: NetConfList;
  cniResult?: unknown;
  ips: string[];
  containers: Container[];
  transitions: Record<string, string>;
  lastStatus: string;
}

/** What survives a supervisor restart, so the next one can undo it. */
interface PodRecord {
  uid: string;
  namespace: string;
  name: string;
  netns: string;
  hostNetwork: boolean;
  containerId: string;
  cniList?: NetConfList;
  cniResult?: unknown;
  pgids: number[];
  portMappings?: PortMapping[];
}

interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: string;
  hostIP?: string;
}

/** The portMappings capability of a pod, as containerd builds it from the containers' hostPorts. */
export function portMappings(pod: KubeObject): PortMapping[] {
  const out: PortMapping[] = [];
  for (const c of (specOf(pod).containers ?? []) as ContainerSpec[]) {
    for (const p of (c.ports ?? []) as { containerPort: number; hostPort?: number; protocol?: string; hostIP?: string }[]) {
      if (!p.hostPort) continue;
      out.push({ hostPort: p.hostPort, containerPort: p.containerPort, protocol: (p.protocol ?? 'TCP').toLowerCase(), ...(p.hostIP ? { hostIP: p.hostIP } : {}) });
    }
  }
  return out;
}

/* eslint-disable-next-line @typescript-eslint/no-explicit-any -- raw API JSON, read only */
const specOf = (o: KubeObject): any => (o.spec ?? {}) as any;
const nowIso = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export class Kubelet {
  private readonly runtimes = new Map<string, PodRuntime>();
  private readonly recordDir: string;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly event: RecordEvent;

  constructor(private readonly o: KubeletOptions) {
    this.recordDir = join(o.node.dir, 'pods');
    this.event = o.events ?? (() => undefined);
  }

  /** One directory per pod, like /var/log/pods/<ns>_<name>_<uid>: a recreated pod starts empty. */
  private logDir(rt: { namespace: string; name: string; uid: string }): string {
    return join(this.o.node.dir, 'logs', `${rt.namespace}_${rt.name}_${rt.uid}`);
  }

  /** A container of a pod this kubelet runs, or undefined when the pod or container is not here. */
  container(uid: string, name: string): ContainerTarget | undefined {
    const rt = this.runtimes.get(uid);
    const c = rt?.containers.find((x) => x.spec.name === name);
    if (!rt || !c) return undefined;
    return {
      netns: rt.netns,
      env: containerEnv(c.spec, rt.pod, rt.ips[0] ?? '', this.o.node.ip),
      cwd: c.spec.workingDir || '/',
      logFile: join(this.logDir(rt), `${c.spec.name}.log`),
      running: c.proc !== undefined,
    };
  }

  get nodeName(): string {
    return this.o.node.name;
  }

  /** Undoes whatever an earlier supervisor left: its processes, CNI attachments and namespaces. */
  async recover(): Promise<void> {
    await mkdir(this.recordDir, { recursive: true });
    for (const f of await readdir(this.recordDir)) {
      if (!f.endsWith('.json')) continue;
      try {
        const rec = JSON.parse(await readFile(join(this.recordDir, f), 'utf8')) as PodRecord;
        for (const pgid of rec.pgids) {
          try {
            process.kill(-pgid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        await this.releaseNetwork(rec);
      } catch (err) {
        this.o.log.warn({ err, file: f }, 'could not recover pod record');
      }
      await rm(join(this.recordDir, f), { force: true });
    }
  }

  /** Runs sync on every kick and every tick until the signal aborts, then stops every pod. */
  async run(signal: AbortSignal): Promise<void> {
    const tick = setInterval(() => this.kick(), this.o.tickMs ?? 500);
    this.kick();
    await untilAborted(signal);
    clearInterval(tick);
    // No sync may start after this point, or an exiting container would bring its pod back.
    this.stopped = true;
    await this.running;
    await Promise.all([...this.runtimes.values()].map((rt) => this.teardown(rt)));
  }

  /** Coalesces: at most one sync runs, and one more follows if kicked meanwhile. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.sync()
      .catch((err: unknown) => this.o.log.error({ err }, 'kubelet sync failed'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  async sync(): Promise<void> {
    const pods = this.o.store.select('pods', { fieldSelector: `spec.nodeName=${this.o.node.name}` });
    const seen = new Set<string>();
    const terminating: KubeObject[] = [];
    for (const pod of pods) {
      const uid = pod.metadata.uid ?? '';
      if (pod.metadata.deletionTimestamp) {
        terminating.push(pod);
        continue;
      }
      seen.add(uid);
      let rt = this.runtimes.get(uid);
      if (!rt) {
        rt = this.newRuntime(pod);
        this.runtimes.set(uid, rt);
      }
      rt.pod = pod;
      try {
        await this.step(rt);
      } catch (err) {
        this.o.log.error({ err, pod: `${rt.namespace}/${rt.name}` }, 'pod sync failed');
      }
      this.writeStatus(rt);
    }
    for (const rt of [...this.runtimes.values()]) if (!seen.has(rt.uid)) await this.teardown(rt);
    // The kubelet's half of graceful deletion: the containers are stopped, so the pod may go now.
    for (const pod of terminating) this.confirmDeletion(pod);
  }

  private confirmDeletion(pod: KubeObject): void {
    const { name = '', namespace = 'default', uid } = pod.metadata;
    try {
      if (this.o.store.get('pods', name, namespace).metadata.uid === uid) this.o.store.delete('pods', name, namespace);
    } catch {
      // Already gone.
    }
  }

  private newRuntime(pod: KubeObject): PodRuntime {
    const uid = pod.metadata.uid ?? '';
    const hostNetwork = specOf(pod).hostNetwork === true;
    const containers: ContainerSpec[] = specOf(pod).containers ?? [];
    return {
      uid,
      namespace: pod.metadata.namespace ?? 'default',
      name: pod.metadata.name ?? '',
      netns: hostNetwork ? this.o.node.name : podNetns(this.o.sandbox.name, uid),
      hostNetwork,
      containerId: podContainerId(uid),
      startTime: nowIso(),
      pod,
      networkReady: false,
      networkMessage: 'waiting for the pod network',
      ips: [],
      containers: containers.map((spec) => ({
        spec,
        state: { kind: 'waiting', reason: 'ContainerCreating' },
        restartCount: 0,
        backoffMs: 1000,
        nextStart: 0,
        nextProbe: 0,
        probing: false,
        ...(spec.readinessProbe ? { readiness: new ReadinessTracker(spec.readinessProbe as Probe) } : {}),
      })),
      transitions: {},
      lastStatus: '',
    };
  }

  private async step(rt: PodRuntime): Promise<void> {
    if (!rt.networkReady) {
      await this.setUpNetwork(rt);
      if (!rt.networkReady) return;
    }
    const now = Date.now();
    const policy = specOf(rt.pod).restartPolicy ?? 'Always';
    for (const c of rt.containers) {
      const t = c.state;
      const restart = t.kind === 'waiting' || (t.kind === 'terminated' && (policy === 'Always' || (policy === 'OnFailure' && t.exitCode !== 0)));
      if (!c.proc && restart && now >= c.nextStart) await this.start(rt, c);
      if (c.proc && c.readiness && !c.probing && now >= c.nextProbe) this.probe(rt, c);
    }
  }

  private async setUpNetwork(rt: PodRuntime): Promise<void> {
    if (rt.hostNetwork) {
      rt.ips = [this.o.node.ip];
      this.markNetwork(rt, true, '');
      await this.saveRecord(rt);
      return;
    }
    const list = await loadNetConfList(this.o.node.cniConfDir);
    if (!list) {
      this.markNetwork(rt, false, `network is not ready: no CNI configuration file in ${this.o.node.cniConfDir} (the node's skiff agent writes it)`);
      return;
    }
    if ((await tryRun('ip', ['netns', 'exec', rt.netns, 'true'])) === undefined) {
      await run('ip', ['netns', 'add', rt.netns]);
      await run('ip', ['netns', 'exec', rt.netns, 'ip', 'link', 'set', 'lo', 'up']);
    }
    await mkdir(`/etc/netns/${rt.netns}`, { recursive: true });
    await writeFile(`/etc/netns/${rt.netns}/resolv.conf`, podResolvConf(rt.pod, this.o.dns));
    rt.cniList = list;
    await this.saveRecord(rt);
    try {
      rt.cniResult = await cniAdd(list, this.cniCall(this.record(rt)));
    } catch (err) {
      // Undo the partial ADD, as the runtime does, before the next attempt.
      await cniDel(list, this.cniCall(this.record(rt)), undefined).catch(() => undefined);
      this.markNetwork(rt, false, `failed to set up the pod network (${list.file}): ${(err as Error).message}`);
      return;
    }
    rt.ips = resultIPs(rt.cniResult).filter((ip) => !ip.includes(':'));
    this.markNetwork(rt, true, '');
    await this.saveRecord(rt);
    this.o.log.info({ pod: `${rt.namespace}/${rt.name}`, ips: rt.ips, netns: rt.netns }, 'pod network ready');
  }

  private markNetwork(rt: PodRuntime, ready: boolean, message: string): void {
    // Once per distinct failure: the kubelet retries every tick and would flood the events.
    if (!ready && message !== rt.networkMessage && !rt.hostNetwork) this.event(rt.pod, 'Warning', 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${message}`);
    rt.networkReady = ready;
    rt.networkMessage = message;
    if (!ready) for (const c of rt.containers) c.state = { kind: 'waiting', reason: 'ContainerCreating', message };
  }

  private cniCall(rec: { netns: string; containerId: string; namespace: string; name: string; portMappings?: PortMapping[] }) {
    return {
      ...(rec.portMappings?.length ? { capabilityArgs: { portMappings: rec.portMappings } } : {}),
      containerId: rec.containerId,
      netnsPath: `/var/run/netns/${rec.netns}`,
      ifName: 'eth0',
      podNamespace: rec.namespace,
      podName: rec.name,
      binDirs: [this.o.node.cniBinDir, ...(this.o.extraCniBinDirs ?? ['/usr/lib/cni'])],
      exec: execInNetns(this.o.node.name),
    };
  }

  private async start(rt: PodRuntime, c: Container): Promise<void> {
    const logFile = join(this.logDir(rt), `${c.spec.name}.log`);
    await mkdir(this.logDir(rt), { recursive: true });
    const image = (c.spec as { image?: string }).image ?? '';
    this.event(rt.pod, 'Normal', 'Pulled', `Container image "${image}" already present on machine`);
    const proc = startContainer(rt.netns, c.spec, containerEnv(c.spec, rt.pod, rt.ips[0] ?? '', this.o.node.ip), logFile);
    this.event(rt.pod, 'Normal', 'Created', `Created container: ${c.spec.name}`);
    this.event(rt.pod, 'Normal', 'Started', `Started container ${c.spec.name}`);
    const startedAt = nowIso();
    const restarted = c.state.kind === 'terminated';
    c.proc = proc;
    c.state = { kind: 'running', startedAt };
    if (restarted) c.restartCount++;
    c.nextProbe = Date.now() + ((c.spec.readinessProbe as Probe | undefined)?.initialDelaySeconds ?? 0) * 1000;
    c.exited = new Promise((resolve) => {
      proc.on('error', (err) => {
        this.o.log.warn({ err, pod: rt.name, container: c.spec.name }, 'container failed to start');
        this.event(rt.pod, 'Warning', 'Failed', `Error: ${err.message}`);
      });
      proc.on('exit', (code, sig) => {
        if (c.proc !== proc) return resolve();
        c.proc = undefined;
        c.state = { kind: 'terminated', exitCode: code ?? 128 + (sig ? 9 : 0), reason: code === 0 ? 'Completed' : 'Error', startedAt, finishedAt: nowIso() };
        if (c.readiness) c.readiness.ready = false;
        // CrashLoopBackOff: double the wait after each quick exit, up to 30s.
        c.nextStart = Date.now() + c.backoffMs;
        c.backoffMs = Math.min(c.backoffMs * 2, 30_000);
        const policy = specOf(rt.pod).restartPolicy ?? 'Always';
        if (!this.stopped && this.runtimes.has(rt.uid) && (policy === 'Always' || (policy === 'OnFailure' && code !== 0))) {
          this.event(rt.pod, 'Warning', 'BackOff', `Back-off restarting failed container ${c.spec.name} in pod ${rt.name}_${rt.namespace}(${rt.uid})`);
        }
        resolve();
        this.kick();
      });
    });
    await this.saveRecord(rt);
  }

  private probe(rt: PodRuntime, c: Container): void {
    const probe = c.spec.readinessProbe as Probe;
    c.probing = true;
    const ports = new Map((c.spec.ports ?? []).filter((p) => p.name).map((p) => [p.name!, p.containerPort]));
    void runProbe(probe, { nodeNetns: this.o.node.name, podNetns: rt.netns, podIP: rt.ips[0] ?? '', ports })
      .then((ok) => {
        const was = c.readiness!.ready;
        const now = c.proc ? c.readiness!.record(ok) : false;
        if (!ok && c.proc && was) this.event(rt.pod, 'Warning', 'Unhealthy', `Readiness probe failed: ${c.spec.name} did not answer its ${Object.keys(probe).find((k) => k !== 'periodSeconds' && k !== 'initialDelaySeconds' && k !== 'timeoutSeconds' && k !== 'failureThreshold' && k !== 'successThreshold') ?? ''} probe`);
        // Until the first success probe quickly, so a pod turns ready soon after it listens.
        c.nextProbe = Date.now() + (now ? (probe.periodSeconds ?? 10) * 1000 : Math.min(1000, (probe.periodSeconds ?? 10) * 1000));
        if (was !== now) this.kick();
      })
      .finally(() => (c.probing = false));
  }

  private containerReady(c: Container): boolean {
    return c.state.kind === 'running' && (c.readiness ? c.readiness.ready : true);
  }

  private writeStatus(rt: PodRuntime): void {
    const restartPolicy = specOf(rt.pod).restartPolicy ?? 'Always';
    const view = {
      networkReady: rt.networkReady,
      networkMessage: rt.networkMessage,
      hostIP: this.o.node.ip,
      podIPs: rt.ips,
      startTime: rt.startTime,
      containers: rt.containers.map((c) => ({ name: c.spec.name, state: c.state, restartCount: c.restartCount, ready: this.containerReady(c) })),
      restartPolicy,
      transitions: rt.transitions,
    };
    let status = podStatus(view);
    // Keep each condition's transition time stable while it holds.
    for (const cond of status.conditions as { type: string; status: string }[]) {
      const key = `${cond.type}=${cond.status === 'True'}`;
      if (!rt.transitions[key]) {
        rt.transitions[key] = nowIso();
        delete rt.transitions[`${cond.type}=${cond.status !== 'True'}`];
      }
    }
    status = podStatus(view);
    const text = JSON.stringify(status);
    if (text === rt.lastStatus) return;
    let current: KubeObject;
    try {
      current = this.o.store.get('pods', rt.name, rt.namespace);
    } catch {
      return;
    }
    if (current.metadata.uid !== rt.uid) return;
    this.o.store.update('pods', { ...current, status }, { subresource: 'status' });
    rt.lastStatus = text;
  }

  private async teardown(rt: PodRuntime): Promise<void> {
    this.runtimes.delete(rt.uid);
    const graceMs = Math.min(5, specOf(rt.pod).terminationGracePeriodSeconds ?? 30) * 1000;
    for (const c of rt.containers) if (c.proc) this.event(rt.pod, 'Normal', 'Killing', `Stopping container ${c.spec.name}`);
    await Promise.all(rt.containers.filter((c) => c.proc?.pid).map((c) => stopProcessGroup(c.proc!.pid!, graceMs, c.exited)));
    await this.releaseNetwork(this.record(rt));
    await rm(join(this.recordDir, `${rt.uid}.json`), { force: true });
    await rm(this.logDir(rt), { recursive: true, force: true });
    this.o.log.info({ pod: `${rt.namespace}/${rt.name}` }, 'pod stopped');
  }

  private async releaseNetwork(rec: PodRecord): Promise<void> {
    if (rec.hostNetwork) return;
    if (rec.cniList) {
      await cniDel(rec.cniList, this.cniCall(rec), rec.cniResult).catch((err: unknown) => this.o.log.warn({ err, pod: `${rec.namespace}/${rec.name}` }, 'CNI DEL failed'));
    }
    await tryRun('ip', ['netns', 'del', rec.netns]);
    await rm(`/etc/netns/${rec.netns}`, { recursive: true, force: true });
  }

  private record(rt: PodRuntime): PodRecord {
    return {
      uid: rt.uid,
      namespace: rt.namespace,
      name: rt.name,
      netns: rt.netns,
      hostNetwork: rt.hostNetwork,
      containerId: rt.containerId,
      ...(rt.cniList ? { cniList: rt.cniList } : {}),
      ...(rt.cniResult !== undefined ? { cniResult: rt.cniResult } : {}),
      pgids: rt.containers.map((c) => c.proc?.pid).filter((p): p is number => p !== undefined),
      portMappings: portMappings(rt.pod),
    };
  }

  private async saveRecord(rt: PodRuntime): Promise<void> {
    await mkdir(this.recordDir, { recursive: true });
    const file = join(this.recordDir, `${rt.uid}.json`);
    await writeFile(`${file}.tmp`, JSON.stringify(this.record(rt)));
    await rename(`${file}.tmp`, file);
  }

  /** For `status`: pods this kubelet runs and their IPs. */
  snapshot(): { name: string; ips: string[]; ready: boolean }[] {
    return [...this.runtimes.values()].map((rt) => ({ name: `${rt.namespace}/${rt.name}`, ips: rt.ips, ready: rt.containers.every((c) => this.containerReady(c)) }));
  }
}
