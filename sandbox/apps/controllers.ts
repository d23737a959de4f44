// The apps/v1 controllers and the garbage collector, run in the supervisor beside the scheduler:
// one level-triggered loop that, on any change to workloads, pods or nodes, recomputes every
// Deployment, ReplicaSet and DaemonSet from the store (the plans are pure, see deployment.ts,
// replicaset.ts, daemonset.ts) and deletes objects whose controlling owner is gone.
import type { Logger } from '../../common/log.js';
import { RESOURCES, type KubeObject, type ResourceName } from '../apiserver/resources.js';
import type { FakeStore } from '../apiserver/store.js';
import { remove } from '../apiserver/writes.js';
import { SyncLoop } from '../controllers.js';
import type { RecordEvent } from '../events.js';
import { workloadAdmission } from './admission.js';
import { any, ownedBy } from './common.js';
import { DS_HASH_LABEL, planDaemonSet } from './daemonset.js';
import { planDeployment, REVISION } from './deployment.js';
import { planReplicaSet, podFromTemplate } from './replicaset.js';

const WATCHED = new Set<string>(['deployments', 'replicasets', 'daemonsets', 'pods', 'nodes']);
/** Owner kinds the sandbox runs controllers for; dependents of other kinds are left alone. */
const OWNER_KINDS: Readonly<Record<string, ResourceName>> = { Deployment: 'deployments', ReplicaSet: 'replicasets', DaemonSet: 'daemonsets' };

/** Registers defaults, validation and generation for the apps/v1 kinds. */
export function admitWorkloads(store: FakeStore): void {
  store.admit('deployments', workloadAdmission('Deployment'));
  store.admit('replicasets', workloadAdmission('ReplicaSet'));
  store.admit('daemonsets', workloadAdmission('DaemonSet'));
}

export class WorkloadControllers {
  readonly loop: SyncLoop;

  constructor(
    private readonly store: FakeStore,
    private readonly log: Logger,
    private readonly events: (component: string) => RecordEvent = () => () => undefined,
  ) {
    this.loop = new SyncLoop('workloads', () => this.sync(), log);
  }

  observe(resource: string): void {
    if (WATCHED.has(resource)) this.loop.kick();
  }

  sync(): void {
    this.collectGarbage();
    for (const d of this.store.select('deployments')) this.syncDeployment(d);
    for (const rs of this.store.select('replicasets')) this.syncReplicaSet(rs);
    const nodes = this.store.select('nodes');
    for (const ds of this.store.select('daemonsets')) this.syncDaemonSet(ds, nodes);
  }

  /** Background cascading deletion: a dependent whose controlling owner no longer exists goes. */
  collectGarbage(): void {
    const live = new Set<string>();
    for (const r of Object.values(OWNER_KINDS)) for (const o of this.store.select(r)) live.add(o.metadata.uid ?? '');
    for (const r of ['replicasets', 'pods'] as const) {
      for (const o of this.store.select(r)) {
        const refs = (any(o.metadata).ownerReferences ?? []) as { kind?: string; uid?: string }[];
        const modelled = refs.filter((ref) => ref.kind !== undefined && ref.kind in OWNER_KINDS);
        if (modelled.length === 0 || modelled.length !== refs.length || modelled.some((ref) => live.has(ref.uid ?? ''))) continue;
        // Already going (its kubelet stops it); else a DELETE as the real collector sends, so a
        // scheduled pod goes gracefully and its node tears it down before it leaves the store.
        if (o.metadata.deletionTimestamp) continue;
        remove(this.store, { def: RESOURCES[r], name: o.metadata.name!, namespace: o.metadata.namespace! }, { dryRun: false, propagationPolicy: 'Background' });
        this.log.info({ resource: r, name: `${o.metadata.namespace}/${o.metadata.name}` }, 'garbage collected: owner gone');
      }
    }
  }

  private syncDeployment(d: KubeObject): void {
    const ns = d.metadata.namespace!;
    const owned = ownedBy(this.store.select('replicasets', { namespace: ns }), d);
    const plan = planDeployment(d, owned);
    const record = this.events('deployment-controller');
    if (plan.create) {
      const rs = this.store.create('replicasets', plan.create);
      record(d, 'Normal', 'ScalingReplicaSet', `Scaled up replica set ${rs.metadata.name} from 0 to ${any(rs.spec).replicas}`);
    }
    for (const [name, n] of plan.scale) {
      const rs = owned.find((o) => o.metadata.name === name)!;
      const was = Number(any(rs.spec).replicas ?? 0);
      this.store.patch('replicasets', name, { spec: { replicas: n }, metadata: { annotations: { 'deployment.kubernetes.io/desired-replicas': String(any(d.spec).replicas ?? 1) } } }, { namespace: ns });
      record(d, 'Normal', 'ScalingReplicaSet', `Scaled ${n > was ? 'up' : 'down'} replica set ${name} from ${was} to ${n}`);
    }
    for (const name of plan.remove) this.store.delete('replicasets', name, ns);
    if (plan.revision.replicaSet) this.store.patch('replicasets', plan.revision.replicaSet, { metadata: { annotations: { [REVISION]: plan.revision.value } } }, { namespace: ns });
    if (d.metadata.annotations?.[REVISION] !== plan.revision.value) this.store.patch('deployments', d.metadata.name!, { metadata: { annotations: { [REVISION]: plan.revision.value } } }, { namespace: ns });
    this.writeStatus('deployments', d, plan.status);
  }

  private syncReplicaSet(rs: KubeObject): void {
    const ns = rs.metadata.namespace!;
    const owned = ownedBy(this.store.select('pods', { namespace: ns }), rs);
    const plan = planReplicaSet(rs, owned);
    const record = this.events('replicaset-controller');
    for (let i = 0; i < plan.create; i++) {
      const pod = this.store.create('pods', podFromTemplate(rs));
      record(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`);
    }
    for (const p of plan.remove) {
      this.store.delete('pods', p.metadata.name!, ns);
      record(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`);
    }
    this.writeStatus('replicasets', rs, plan.status);
  }

  private syncDaemonSet(ds: KubeObject, nodes: KubeObject[]): void {
    const ns = ds.metadata.namespace!;
    const owned = ownedBy(this.store.select('pods', { namespace: ns }), ds);
    const plan = planDaemonSet(ds, owned, nodes);
    const record = this.events('daemonset-controller');
    for (const p of plan.remove) {
      this.store.delete('pods', p.metadata.name!, ns);
      record(ds, 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`);
    }
    for (const node of plan.create) {
      const pod = this.store.create('pods', podFromTemplate(ds, { [DS_HASH_LABEL]: plan.hash }, node));
      record(ds, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`);
    }
    this.writeStatus('daemonsets', ds, plan.status);
  }

  private writeStatus(resource: ResourceName, obj: KubeObject, status: Record<string, unknown>): void {
    const current = this.store.get(resource, obj.metadata.name!, obj.metadata.namespace);
    this.store.update(resource, { ...current, status }, { subresource: 'status' });
  }
}
