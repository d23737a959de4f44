// The Table format (meta.k8s.io/v1 Table) that `kubectl get` asks for: per kind the columns
// kube-apiserver's printers define, priority 1 being the extra ones `-o wide` shows, and the cells
// computed the same way (pod STATUS from container states, service PORT(S), node ROLES, AGE).
import type { KubeObject, ResourceDef } from './resources.js';

export interface ColumnDefinition {
  readonly name: string;
  readonly type: 'string' | 'integer' | 'date' | 'number' | 'boolean';
  readonly format: string;
  readonly description: string;
  readonly priority: number;
}

type Cell = string | number | boolean;
interface Printer {
  readonly columns: readonly ColumnDefinition[];
  cells(o: KubeObject, now: number): Cell[];
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): Obj[] => (Array.isArray(v) ? v.map(obj) : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const orNone = (s: string): string => (s === '' ? '<none>' : s);

function col(name: string, type: ColumnDefinition['type'], description: string, priority = 0, format = ''): ColumnDefinition {
  return { name, type, format, description, priority };
}
const NAME = col('Name', 'string', 'Name must be unique within a namespace.', 0, 'name');
const AGE = col('Age', 'string', 'CreationTimestamp is a timestamp representing the server time when this object was created.');

/** kube's duration.HumanDuration: two significant units at most, coarser as the duration grows. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${Math.floor(days / 365)}y` : `${Math.floor(days / 365)}y${days % 365}d`;
  return `${Math.floor(days / 365)}y`;
}

function since(ts: unknown, now: number): string {
  const t = typeof ts === 'string' ? Date.parse(ts) : NaN;
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now - t);
}
const age = (o: KubeObject, now: number): string => since(o.metadata.creationTimestamp, now);

function selectorText(sel: unknown): string {
  const s = obj(sel);
  const parts = Object.entries(obj(s.matchLabels)).map(([k, v]) => `${k}=${str(v)}`);
  for (const e of arr(s.matchExpressions)) {
    const values = (Array.isArray(e.values) ? e.values : []).map(str).join(',');
    const op = str(e.operator);
    if (op === 'In' || op === 'NotIn') parts.push(`${str(e.key)} ${op.toLowerCase()} (${values})`);
    else parts.push(op === 'DoesNotExist' ? `!${str(e.key)}` : str(e.key));
  }
  return parts.join(',');
}

function podStatusReason(o: KubeObject): { ready: string; reason: string; restarts: string } {
  const spec = obj(o.spec);
  const status = obj(o.status);
  let reason = str(status.reason) || str(status.phase);
  let restarts = 0;
  let lastRestart = 0;
  const noteRestart = (cs: Obj): void => {
    restarts += num(cs.restartCount);
    const fin = Date.parse(str(obj(obj(cs.lastState).terminated).finishedAt));
    if (!Number.isNaN(fin) && fin > lastRestart) lastRestart = fin;
  };
  const initSpecs = arr(spec.initContainers);
  let initializing = false;
  arr(status.initContainerStatuses).forEach((cs, i) => {
    noteRestart(cs);
    const st = obj(cs.state);
    const term = obj(st.terminated);
    if (st.terminated && num(term.exitCode) === 0) return;
    initializing = true;
    if (st.terminated) reason = str(term.reason) ? `Init:${str(term.reason)}` : term.signal ? `Init:Signal:${num(term.signal)}` : `Init:ExitCode:${num(term.exitCode)}`;
    else if (st.waiting && str(obj(st.waiting).reason) && str(obj(st.waiting).reason) !== 'PodInitializing') reason = `Init:${str(obj(st.waiting).reason)}`;
    else reason = `Init:${i}/${initSpecs.length}`;
  });
  let readyCount = 0;
  const statuses = arr(status.containerStatuses);
  if (!initializing) {
    let hasRunning = false;
    for (const cs of [...statuses].reverse()) {
      noteRestart(cs);
      const st = obj(cs.state);
      const waiting = obj(st.waiting);
      const term = obj(st.terminated);
      if (str(waiting.reason)) reason = str(waiting.reason);
      else if (st.terminated) reason = str(term.reason) || (term.signal ? `Signal:${num(term.signal)}` : `ExitCode:${num(term.exitCode)}`);
      else if (st.running && cs.ready === true) {
        hasRunning = true;
        readyCount++;
      } else if (st.running) hasRunning = true;
    }
    // A pod whose containers all run but that reports Completed is still running.
    if (reason === 'Completed' && hasRunning) reason = arr(status.conditions).some((c) => c.type === 'Ready' && c.status === 'True') ? 'Running' : 'NotReady';
  } else for (const cs of statuses) noteRestart(cs);
  if (o.metadata.deletionTimestamp) reason = status.reason === 'NodeLost' ? 'Unknown' : 'Terminating';
  const total = arr(spec.containers).length;
  const restartText = restarts > 0 && lastRestart > 0 ? `${restarts} (${humanDuration(Date.now() - lastRestart)} ago)` : String(restarts);
  return { ready: `${readyCount}/${total}`, reason, restarts: restartText };
}

function servicePorts(spec: Obj): string {
  const ports = arr(spec.ports).map((p) => `${num(p.port)}${p.nodePort ? `:${num(p.nodePort)}` : ''}/${str(p.protocol) || 'TCP'}`);
  return ports.length ? ports.join(',') : '<none>';
}

function serviceExternalIp(svc: KubeObject): string {
  const spec = obj(svc.spec);
  const external = (Array.isArray(spec.externalIPs) ? spec.externalIPs : []).map(str);
  const type = str(spec.type) || 'ClusterIP';
  if (type === 'ExternalName') return str(spec.externalName);
  if (type === 'LoadBalancer') {
    const ingress = arr(obj(obj(svc.status).loadBalancer).ingress).map((i) => str(i.ip) || str(i.hostname));
    const all = [...ingress, ...external];
    return all.length ? all.join(',') : '<pending>';
  }
  return external.length ? external.join(',') : '<none>';
}

function containersAndImages(template: unknown): [string, string] {
  const cs = arr(obj(obj(template).spec).containers);
  return [cs.map((c) => str(c.name)).join(','), cs.map((c) => str(c.image)).join(',')];
}

function nodeStatus(o: KubeObject): string {
  const ready = arr(obj(o.status).conditions).find((c) => c.type === 'Ready');
  const parts = [!ready ? 'Unknown' : ready.status === 'True' ? 'Ready' : 'NotReady'];
  if (obj(o.spec).unschedulable === true) parts.push('SchedulingDisabled');
  return parts.join(',');
}

function nodeRoles(o: KubeObject): string {
  const roles: string[] = [];
  for (const [k, v] of Object.entries(o.metadata.labels ?? {})) {
    if (k.startsWith('node-role.kubernetes.io/')) roles.push(k.slice('node-role.kubernetes.io/'.length));
    else if (k === 'kubernetes.io/role' && v) roles.push(v);
  }
  return roles.length ? roles.sort().join(',') : '<none>';
}

function nodeAddress(o: KubeObject, type: string): string {
  return orNone(arr(obj(o.status).addresses).find((a) => a.type === type)?.address as string ?? '');
}

function endpointSliceEndpoints(o: KubeObject): string {
  const addrs = arr(o.endpoints).flatMap((e) => (Array.isArray(e.addresses) ? e.addresses.map(str) : []));
  if (addrs.length === 0) return '<none>';
  return addrs.length > 3 ? `${addrs.slice(0, 3).join(',')} + ${addrs.length - 3} more...` : addrs.join(',');
}

function endpointsText(o: KubeObject): string {
  const out: string[] = [];
  for (const s of arr(o.subsets)) {
    const ports = arr(s.ports);
    for (const a of arr(s.addresses)) {
      if (ports.length === 0) out.push(str(a.ip));
      for (const p of ports) out.push(`${str(a.ip)}:${num(p.port)}`);
    }
  }
  if (out.length === 0) return '<none>';
  return out.length > 3 ? `${out.slice(0, 3).join(',')} + ${out.length - 3} more...` : out.join(',');
}

function eventObject(o: KubeObject): string {
  const io = obj(o.involvedObject ?? o.regarding);
  return `${str(io.kind).toLowerCase()}/${str(io.name)}`;
}

/** Printers by kind; kinds missing here get kube-apiserver's default table (Name, Created At). */
export const PRINTERS: Readonly<Record<string, Printer>> = {
  Pod: {
    columns: [
      NAME,
      col('Ready', 'string', 'The aggregate readiness state of this pod for accepting traffic.'),
      col('Status', 'string', 'The aggregate status of the containers in this pod.'),
      col('Restarts', 'string', 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.'),
      AGE,
      col('IP', 'string', 'The IP address assigned to the pod', 1),
      col('Node', 'string', 'The name of the node that the pod is scheduled to', 1),
      col('Nominated Node', 'string', 'The name of the node this pod is nominated to, if any', 1),
      col('Readiness Gates', 'string', 'The readiness gates of the pod, and how many of them are true', 1),
    ],
    cells(o, now) {
      const { ready, reason, restarts } = podStatusReason(o);
      const spec = obj(o.spec);
      const status = obj(o.status);
      const gates = arr(spec.readinessGates);
      const trueGates = gates.filter((g) => arr(status.conditions).some((c) => c.type === g.conditionType && c.status === 'True')).length;
      return [o.metadata.name ?? '', ready, reason, restarts, age(o, now), orNone(str(status.podIP)), orNone(str(spec.nodeName)), orNone(str(status.nominatedNodeName)), gates.length ? `${trueGates}/${gates.length}` : '<none>'];
    },
  },
  Service: {
    columns: [
      NAME,
      col('Type', 'string', 'type determines how the Service is exposed.'),
      col('Cluster-IP', 'string', 'clusterIP is the IP address of the service.'),
      col('External-IP', 'string', 'externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.'),
      col('Port(s)', 'string', 'The list of ports that are exposed by this service.'),
      AGE,
      col('Selector', 'string', 'Route service traffic to pods with label keys and values matching this selector.', 1),
    ],
    cells(o, now) {
      const spec = obj(o.spec);
      const selector = Object.entries(obj(spec.selector)).map(([k, v]) => `${k}=${str(v)}`).join(',');
      return [o.metadata.name ?? '', str(spec.type) || 'ClusterIP', orNone(str(spec.clusterIP)), serviceExternalIp(o), servicePorts(spec), age(o, now), orNone(selector)];
    },
  },
  Endpoints: {
    columns: [NAME, col('Endpoints', 'string', 'Endpoints of the service'), AGE],
    cells: (o, now) => [o.metadata.name ?? '', endpointsText(o), age(o, now)],
  },
  EndpointSlice: {
    columns: [
      NAME,
      col('AddressType', 'string', 'The IP protocol for this slice'),
      col('Ports', 'string', 'The ports that are exposed by the endpoints of this slice'),
      col('Endpoints', 'string', 'The addresses of the endpoints of this slice'),
      AGE,
    ],
    cells(o, now) {
      const ports = arr(o.ports).map((p) => (p.port === undefined ? '' : String(num(p.port)))).filter((p) => p !== '');
      return [o.metadata.name ?? '', str(o.addressType), ports.length ? ports.join(',') : '<unset>', endpointSliceEndpoints(o), age(o, now)];
    },
  },
  Node: {
    columns: [
      NAME,
      col('Status', 'string', 'The status of the node'),
      col('Roles', 'string', 'The roles of the node'),
      AGE,
      col('Version', 'string', 'Kubelet Version reported by the node.'),
      col('Internal-IP', 'string', 'List of addresses reachable to the node.', 1),
      col('External-IP', 'string', 'List of addresses reachable to the node.', 1),
      col('OS-Image', 'string', 'OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).', 1),
      col('Kernel-Version', 'string', "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
      col('Container-Runtime', 'string', 'ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).', 1),
    ],
    cells(o, now) {
      const info = obj(obj(o.status).nodeInfo);
      const or = (s: string): string => (s === '' ? '<unknown>' : s);
      return [o.metadata.name ?? '', nodeStatus(o), nodeRoles(o), age(o, now), str(info.kubeletVersion), nodeAddress(o, 'InternalIP'), nodeAddress(o, 'ExternalIP'), or(str(info.osImage)), or(str(info.kernelVersion)), or(str(info.containerRuntimeVersion))];
    },
  },
  Namespace: {
    columns: [NAME, col('Status', 'string', 'The status of the namespace'), AGE],
    cells: (o, now) => [o.metadata.name ?? '', str(obj(o.status).phase) || 'Active', age(o, now)],
  },
  Deployment: {
    columns: [
      NAME,
      col('Ready', 'string', 'Number of the pod with ready state'),
      col('Up-to-date', 'integer', 'Total number of non-terminated pods targeted by this deployment that have the desired template spec.'),
      col('Available', 'integer', 'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.'),
      AGE,
      col('Containers', 'string', 'Names of each container in the template.', 1),
      col('Images', 'string', 'Images referenced by each container in the template.', 1),
      col('Selector', 'string', 'Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.', 1),
    ],
    cells(o, now) {
      const spec = obj(o.spec);
      const st = obj(o.status);
      const [containers, images] = containersAndImages(spec.template);
      const desired = spec.replicas === undefined ? 1 : num(spec.replicas);
      return [o.metadata.name ?? '', `${num(st.readyReplicas)}/${desired}`, num(st.updatedReplicas), num(st.availableReplicas), age(o, now), containers, images, orNone(selectorText(spec.selector))];
    },
  },
  ReplicaSet: {
    columns: [
      NAME,
      col('Desired', 'integer', 'Replicas is the number of desired replicas.'),
      col('Current', 'integer', 'Replicas is the most recently observed number of replicas.'),
      col('Ready', 'integer', 'The number of ready replicas for this replica set.'),
      AGE,
      col('Containers', 'string', 'Names of each container in the template.', 1),
      col('Images', 'string', 'Images referenced by each container in the template.', 1),
      col('Selector', 'string', 'Selector is a label query over pods that should match the replica count.', 1),
    ],
    cells(o, now) {
      const spec = obj(o.spec);
      const st = obj(o.status);
      const [containers, images] = containersAndImages(spec.template);
      return [o.metadata.name ?? '', spec.replicas === undefined ? 1 : num(spec.replicas), num(st.replicas), num(st.readyReplicas), age(o, now), containers, images, orNone(selectorText(spec.selector))];
    },
  },
  DaemonSet: {
    columns: [
      NAME,
      col('Desired', 'integer', 'The number of nodes that should be running the daemon pod.'),
      col('Current', 'integer', 'The number of nodes running at least one daemon pod.'),
      col('Ready', 'integer', 'The number of nodes whose daemon pod is ready.'),
      col('Up-to-date', 'integer', 'The number of nodes running the updated daemon pod.'),
      col('Available', 'integer', 'The number of nodes whose daemon pod is available.'),
      col('Node Selector', 'string', 'Labels a node must have to run the daemon pod.'),
      AGE,
      col('Containers', 'string', 'Names of each container in the template.', 1),
      col('Images', 'string', 'Images referenced by each container in the template.', 1),
      col('Selector', 'string', 'Label query over pods that are managed by the daemon set.', 1),
    ],
    cells(o, now) {
      const spec = obj(o.spec);
      const st = obj(o.status);
      const [containers, images] = containersAndImages(spec.template);
      const nodeSelector = Object.entries(obj(obj(obj(spec.template).spec).nodeSelector)).map(([k, v]) => `${k}=${str(v)}`).join(',');
      return [o.metadata.name ?? '', num(st.desiredNumberScheduled), num(st.currentNumberScheduled), num(st.numberReady), num(st.updatedNumberScheduled), num(st.numberAvailable), orNone(nodeSelector), age(o, now), containers, images, orNone(selectorText(spec.selector))];
    },
  },
  Event: {
    columns: [
      col('Last Seen', 'string', 'The time at which the most recent occurrence of this event was recorded.'),
      col('Type', 'string', 'Type of this event (Normal, Warning), new types could be added in the future.'),
      col('Reason', 'string', 'This should be a short, machine understandable string that gives the reason for the transition into the object\'s current status.'),
      col('Object', 'string', 'The object that this event is about.'),
      col('Subobject', 'string', 'The field of the object that this event is about.', 1),
      col('Source', 'string', 'The component reporting this event.', 1),
      col('Message', 'string', 'A human-readable description of the status of this operation.'),
      col('First Seen', 'string', 'The time at which the event was first recorded.', 1),
      col('Count', 'string', 'The number of times this event has occurred.', 1),
      { ...NAME, priority: 1 },
    ],
    cells(o, now) {
      const last = o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp;
      const first = o.firstTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp;
      const count = o.count === undefined ? 1 : num(o.count);
      const src = obj(o.source);
      const source = str(src.component) + (str(src.host) ? `, ${str(src.host)}` : '');
      return [since(last, now), str(o.type), str(o.reason), eventObject(o), str(obj(o.involvedObject).fieldPath), source || str(o.reportingComponent), str(o.message ?? o.note), since(first, now), String(count), o.metadata.name ?? ''];
    },
  },
  ServiceAccount: {
    columns: [NAME, col('Secrets', 'string', 'Secrets is the list of secrets allowed to be used by pods running using this ServiceAccount.'), AGE],
    cells: (o, now) => [o.metadata.name ?? '', Array.isArray(o.secrets) ? o.secrets.length : 0, age(o, now)],
  },
  ConfigMap: {
    columns: [NAME, col('Data', 'integer', 'Data contains the configuration data.'), AGE],
    cells: (o, now) => [o.metadata.name ?? '', Object.keys(obj(o.data)).length + Object.keys(obj(o.binaryData)).length, age(o, now)],
  },
  Secret: {
    columns: [NAME, col('Type', 'string', 'The type of secret'), col('Data', 'integer', 'Data contains the secret data.'), AGE],
    cells: (o, now) => [o.metadata.name ?? '', str(o.type) || 'Opaque', Object.keys(obj(o.data)).length, age(o, now)],
  },
  NetworkPolicy: {
    columns: [NAME, col('Pod-Selector', 'string', 'Backing pod selector.'), AGE],
    cells: (o, now) => [o.metadata.name ?? '', orNone(selectorText(obj(o.spec).podSelector)), age(o, now)],
  },
};

const DEFAULT_PRINTER: Printer = {
  columns: [NAME, col('Created At', 'date', 'CreationTimestamp is a timestamp representing the server time when this object was created.')],
  cells: (o) => [o.metadata.name ?? '', o.metadata.creationTimestamp ?? ''],
};

export function printerFor(def: ResourceDef): Printer {
  return PRINTERS[def.kind] ?? DEFAULT_PRINTER;
}

function rowObject(o: KubeObject, include: IncludeObject): unknown {
  if (include === 'None') return undefined;
  if (include === 'Object') return o;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

export interface TableOptions {
  readonly include: IncludeObject;
  /** Leave out columnDefinitions (watch events after the first, as kube-apiserver does). */
  readonly noHeaders?: boolean;
  readonly now?: number;
  readonly metadata?: Record<string, unknown>;
}

export function toTable(def: ResourceDef, objects: readonly KubeObject[], opts: TableOptions): unknown {
  const printer = printerFor(def);
  const now = opts.now ?? Date.now();
  const rows = objects.map((o) => {
    let cells: Cell[];
    try {
      cells = printer.cells(o, now);
    } catch {
      // A malformed stored object still gets a row: its name and nothing else.
      cells = [o.metadata?.name ?? '', ...printer.columns.slice(1).map(() => '')];
    }
    const object = rowObject(o, opts.include);
    return object === undefined ? { cells } : { cells, object };
  });
  return { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: opts.metadata ?? {}, ...(opts.noHeaders ? {} : { columnDefinitions: printer.columns }), rows };
}

export function parseIncludeObject(v: string | null): IncludeObject {
  if (v === null || v === '') return 'Metadata';
  if (v === 'None' || v === 'Metadata' || v === 'Object') return v;
  return 'Metadata';
}
