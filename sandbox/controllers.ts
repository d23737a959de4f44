// The control-plane stand-ins that run in the supervisor next to the API server: the scheduler and
// the EndpointSlice controller. Both are level-triggered loops over the in-process store: an event
// only kicks a sync, and each sync recomputes the desired state from scratch (kindnet's
// resync-don't-diff); the writes are the difference.
import type { Logger } from '../common/log.js';
import type { KubeObject } from './apiserver/resources.js';
import type { FakeStore } from './apiserver/store.js';
import { LABEL_MANAGED_BY, LABEL_SERVICE_NAME, MANAGED_BY, desiredSlices, planSlices } from './endpointslices.js';
import type { RecordEvent } from './events.js';
import { schedule } from './scheduler.js';

/** Runs `sync` once per burst of kicks, never two at a time. */
export class SyncLoop {
  private running = false;
  private pending = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly name: string,
    private readonly sync: () => void,
    private readonly log: Logger,
    private readonly delayMs = 5,
  ) {}

  kick(): void {
    if (this.timer) return;
    // A short delay lets a burst of events (an `apply` of many objects) collapse into one sync.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.running) {
        this.pending = true;
        return;
      }
      this.running = true;
      try {
        this.sync();
      } catch (err) {
        this.log.error({ err, loop: this.name }, 'sync failed; retrying');
        setTimeout(() => this.kick(), 1000).unref();
      } finally {
        this.running = false;
      }
      if (this.pending) {
        this.pending = false;
        this.kick();
      }
    }, this.delayMs);
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

const nowIso = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export class EndpointSliceController {
  /** Namespace -> time of the first change not yet reflected in slices (the trigger time). */
  private readonly dirtySince = new Map<string, string>();
  readonly loop: SyncLoop;

  constructor(
    private readonly store: FakeStore,
    private readonly log: Logger,
  ) {
    this.loop = new SyncLoop('endpointslices', () => this.sync(), log);
  }

  /** Feed every store event here. */
  observe(resource: string, obj: KubeObject): void {
    if (resource !== 'pods' && resource !== 'services' && resource !== 'nodes' && resource !== 'endpointslices') return;
    const ns = resource === 'nodes' ? '*' : (obj.metadata.namespace ?? '');
    if (resource !== 'endpointslices' && !this.dirtySince.has(ns)) this.dirtySince.set(ns, nowIso());
    this.loop.kick();
  }

  sync(): void {
    const nodes = this.store.select('nodes');
    const services = this.store.select('services');
    const wanted = new Set<string>();
    for (const svc of services) {
      const ns = svc.metadata.namespace ?? 'default';
      const trigger = this.dirtySince.get(ns) ?? this.dirtySince.get('*') ?? nowIso();
      const desired = desiredSlices(svc, this.store.select('pods', { namespace: ns }), nodes, trigger);
      if (desired.length === 0) continue; // no selector: slices are the user's business
      wanted.add(`${ns}/${svc.metadata.name}`);
      const existing = this.store.select('endpointslices', { namespace: ns, labelSelector: `${LABEL_SERVICE_NAME}=${svc.metadata.name},${LABEL_MANAGED_BY}=${MANAGED_BY}` });
      this.apply(ns, planSlices(desired, existing));
    }
    // Managed slices whose Service is gone or lost its selector.
    for (const s of this.store.select('endpointslices', { labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY}` })) {
      const ns = s.metadata.namespace ?? '';
      if (!wanted.has(`${ns}/${s.metadata.labels?.[LABEL_SERVICE_NAME] ?? ''}`)) this.apply(ns, { create: [], update: [], delete: [s] });
    }
    this.dirtySince.clear();
  }

  private apply(ns: string, plan: ReturnType<typeof planSlices>): void {
    for (const s of plan.create) this.store.create('endpointslices', s, { namespace: ns });
    for (const s of plan.update) this.store.update('endpointslices', s, { namespace: ns });
    for (const s of plan.delete) this.store.delete('endpointslices', s.metadata.name ?? '', ns);
    const n = plan.create.length + plan.update.length + plan.delete.length;
    if (n) this.log.debug({ namespace: ns, created: plan.create.length, updated: plan.update.length, deleted: plan.delete.length }, 'endpointslices synced');
  }
}

export class Scheduler {
  private turn = 0;
  private readonly unschedulable = new Set<string>();
  readonly loop: SyncLoop;

  constructor(
    private readonly store: FakeStore,
    private readonly log: Logger,
    private readonly record: RecordEvent = () => undefined,
  ) {
    this.loop = new SyncLoop('scheduler', () => this.sync(), log);
  }

  observe(resource: string): void {
    if (resource === 'pods' || resource === 'nodes') this.loop.kick();
  }

  sync(): void {
    const pending = this.store.select('pods', { fieldSelector: 'spec.nodeName=' });
    if (pending.length === 0) return;
    const all = this.store.select('pods');
    const bindings = schedule(all, this.store.select('nodes'), this.turn);
    this.turn += bindings.size;
    for (const [key, node] of bindings) {
      const [ns, name] = key.split('/') as [string, string];
      const pod = this.store.patch('pods', name, { spec: { nodeName: node } }, { namespace: ns });
      this.unschedulable.delete(pod.metadata.uid ?? '');
      this.record(pod, 'Normal', 'Scheduled', `Successfully assigned ${key} to ${node}`);
      this.log.info({ pod: key, node }, 'pod bound');
    }
    const nodes = this.store.select('nodes').length;
    for (const p of pending) {
      const key = `${p.metadata.namespace}/${p.metadata.name}`;
      if (bindings.has(key) || p.metadata.deletionTimestamp || this.unschedulable.has(p.metadata.uid ?? '')) continue;
      this.unschedulable.add(p.metadata.uid ?? '');
      this.record(p, 'Warning', 'FailedScheduling', `0/${nodes} nodes are available: ${nodes} node(s) didn't match Pod's node affinity/selector.`);
    }
  }
}
