// The defaults kube-apiserver fills in that clients can observe in what they read back: protocol
// TCP on every port of a list keyed by protocol (so server-side apply sees the same keys a real
// cluster does: ports[port=80,protocol="TCP"]), a Service's type and targetPort, a new Pod's
// phase Pending.
import type { KubeObject, ResourceDef } from './resources.js';
import { STRUCTS, type Node } from './schema.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Sets protocol: TCP on list-map items keyed by protocol, anywhere in `value` (in place). */
export function defaultKeys(value: unknown, node: Node | undefined): void {
  if (!node || !isObj(value)) return;
  if (node.kind === 'map') {
    for (const v of Object.values(value)) defaultKeys(v, node.values);
    return;
  }
  if (node.kind !== 'ref') return;
  const s = STRUCTS.get(node.name);
  if (!s) return;
  for (const [k, f] of s.fields) {
    const v = value[k];
    if (f.node.kind === 'list' && Array.isArray(v)) {
      for (const item of v) {
        if (!isObj(item)) continue;
        if (f.node.keys.includes('protocol') && item.protocol === undefined) item.protocol = 'TCP';
        defaultKeys(item, f.node.items);
      }
    } else defaultKeys(v, f.node);
  }
}

/** Defaults of a whole object on create and update (in place). */
export function applyDefaults(def: ResourceDef, obj: KubeObject, node: Node | undefined, creating: boolean): void {
  defaultKeys(obj, node);
  if (def.kind === 'Service' && isObj(obj.spec)) {
    const spec = obj.spec;
    spec.type ??= 'ClusterIP';
    if (spec.type !== 'ExternalName') spec.sessionAffinity ??= 'None';
    if (Array.isArray(spec.ports)) for (const p of spec.ports) if (isObj(p) && p.targetPort === undefined && p.port !== undefined) p.targetPort = p.port;
  }
  if (def.kind === 'Secret') {
    // stringData is write-only: merged into data (base64) and never stored, as upstream's strategy does.
    obj.type ??= 'Opaque';
    if (isObj(obj.stringData)) {
      const data = isObj(obj.data) ? obj.data : {};
      for (const [k, v] of Object.entries(obj.stringData)) data[k] = Buffer.from(String(v), 'utf8').toString('base64');
      obj.data = data;
    }
    delete obj.stringData;
  }
  if (def.kind === 'Pod' && creating) {
    const status = isObj(obj.status) ? obj.status : {};
    status.phase ??= 'Pending';
    obj.status = status;
  }
}
