// Defaults and validation for apps/v1 workloads, as the API server's registry strategies do: a
// selector that does not select its own template is a 422 like a real server's.
import { isDeepStrictEqual } from 'node:util';
import { ApiError } from '../apiserver/errors.js';
import type { KubeObject } from '../apiserver/resources.js';
import type { AdmitFn } from '../apiserver/store.js';
import { any, selects, type LabelSelector } from './common.js';

type Kind = 'Deployment' | 'ReplicaSet' | 'DaemonSet';

function invalid(kind: Kind, name: string, field: string, msg: string): ApiError {
  const e = new ApiError(422, 'Invalid', `${kind}.apps "${name}" is invalid: ${field}: ${msg}`);
  return e;
}

function defaults(kind: Kind, spec: Record<string, unknown>): void {
  if (kind !== 'DaemonSet' && spec.replicas === undefined) spec.replicas = 1;
  spec.revisionHistoryLimit ??= 10;
  if (kind === 'Deployment') {
    spec.progressDeadlineSeconds ??= 600;
    const strategy = (spec.strategy ??= {}) as Record<string, unknown>;
    strategy.type ??= 'RollingUpdate';
    if (strategy.type === 'RollingUpdate') strategy.rollingUpdate = { maxSurge: '25%', maxUnavailable: '25%', ...any(strategy.rollingUpdate) };
  }
  if (kind === 'DaemonSet') {
    const strategy = (spec.updateStrategy ??= {}) as Record<string, unknown>;
    strategy.type ??= 'RollingUpdate';
    if (strategy.type === 'RollingUpdate') strategy.rollingUpdate = { maxUnavailable: 1, maxSurge: 0, ...any(strategy.rollingUpdate) };
  }
  const tspec = any(any(spec.template).spec);
  if (spec.template && typeof spec.template === 'object') {
    tspec.restartPolicy ??= 'Always';
    tspec.terminationGracePeriodSeconds ??= 30;
    tspec.dnsPolicy ??= 'ClusterFirst';
    tspec.schedulerName ??= 'default-scheduler';
    // The container defaults kube-apiserver fills in, so a template read back and sent again
    // (rollout undo) hashes as it did.
    for (const c of Array.isArray(tspec.containers) ? tspec.containers : []) {
      if (!c || typeof c !== 'object') continue;
      c.imagePullPolicy ??= typeof c.image === 'string' && (c.image.endsWith(':latest') || !/:[^/]+$/.test(c.image)) ? 'Always' : 'IfNotPresent';
      c.terminationMessagePath ??= '/dev/termination-log';
      c.terminationMessagePolicy ??= 'File';
      for (const p of Array.isArray(c.ports) ? c.ports : []) if (p && typeof p === 'object') p.protocol ??= 'TCP';
    }
  }
}

function validate(kind: Kind, obj: KubeObject): void {
  const name = obj.metadata.name ?? '';
  const spec = any(obj.spec);
  const sel = spec.selector as LabelSelector | undefined;
  if (!sel || (!Object.keys(sel.matchLabels ?? {}).length && !(sel.matchExpressions ?? []).length)) throw invalid(kind, name, 'spec.selector', 'Required value');
  const template = any(spec.template);
  if (!selects(sel, { metadata: { labels: any(template.metadata).labels ?? {} } })) {
    throw invalid(kind, name, 'spec.template.metadata.labels', `Invalid value: ${JSON.stringify(any(template.metadata).labels ?? {})}: \`selector\` does not match template \`labels\``);
  }
  const containers = any(template.spec).containers;
  if (!Array.isArray(containers) || containers.length === 0) throw invalid(kind, name, 'spec.template.spec.containers', 'Required value');
  for (const [i, c] of containers.entries()) if (!c || typeof c.name !== 'string' || !c.name) throw invalid(kind, name, `spec.template.spec.containers[${i}].name`, 'Required value');
  if (spec.replicas !== undefined && (!Number.isInteger(spec.replicas) || spec.replicas < 0)) throw invalid(kind, name, 'spec.replicas', `Invalid value: ${JSON.stringify(spec.replicas)}: must be greater than or equal to 0`);
}

/** The admission hook for one apps/v1 kind. */
export function workloadAdmission(kind: Kind): AdmitFn {
  return (op, obj, old) => {
    if (op === 'DELETE') return;
    const spec = (obj.spec ??= {}) as Record<string, unknown>;
    defaults(kind, spec);
    validate(kind, obj);
    // metadata.generation is the store's (it counts changes of everything but metadata and status).
    if (op === 'UPDATE' && old && kind !== 'ReplicaSet' && any(old.spec).selector && !isDeepStrictEqual(any(old.spec).selector, spec.selector)) {
      throw invalid(kind, obj.metadata.name ?? '', 'spec.selector', 'Invalid value: field is immutable');
    }
    return obj;
  };
}
