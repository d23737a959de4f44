// kubectl-style tables for `get` and `status`, from raw API objects. Pure, so the columns are tested.
import type { KubeObject, ResourceName } from './apiserver/resources.js';
import { podIPs, podReady } from './endpointslices.js';

/* eslint-disable-next-line @typescript-eslint/no-explicit-any -- raw API JSON, read only */
const any = (v: unknown): any => v ?? {};

export function table(rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd()).join('\n') + '\n';
}

export function age(ts: string | undefined, now = Date.now()): string {
  if (!ts) return '<unknown>';
  const s = Math.max(0, Math.floor((now - Date.parse(ts)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** kubectl's STATUS column: a waiting reason (ContainerCreating, CrashLoopBackOff) beats the phase. */
export function podStatusText(p: KubeObject): string {
  if (p.metadata.deletionTimestamp) return 'Terminating';
  for (const c of any(p.status).containerStatuses ?? []) {
    const w = c.state?.waiting?.reason;
    if (w) return w;
  }
  if (!any(p.spec).nodeName) return 'Pending';
  return any(p.status).phase ?? 'Pending';
}

function svcPorts(s: KubeObject): string {
  return (any(s.spec).ports ?? []).map((p: { port: number; nodePort?: number; protocol?: string }) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`).join(',') || '<none>';
}

function selectorText(sel: Record<string, string> | undefined): string {
  return sel && Object.keys(sel).length ? Object.entries(sel).map(([k, v]) => `${k}=${v}`).join(',') : '<none>';
}

/** metav1.FormatLabelSelector: "a=b,k in (x,y),!gone", "<none>" for the empty selector (which selects everything). */
export function labelSelectorText(sel: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] } | undefined): string {
  const terms = Object.entries(sel?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel?.matchExpressions ?? []) {
    const vals = `(${(e.values ?? []).join(',')})`;
    if (e.operator === 'In') terms.push(`${e.key} in ${vals}`);
    else if (e.operator === 'NotIn') terms.push(`${e.key} notin ${vals}`);
    else if (e.operator === 'Exists') terms.push(e.key);
    else if (e.operator === 'DoesNotExist') terms.push(`!${e.key}`);
  }
  return terms.join(',') || '<none>';
}

export function nodeReady(n: KubeObject): boolean {
  return (any(n.status).conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
}

export function internalIP(n: KubeObject): string {
  return (any(n.status).addresses ?? []).find((a: { type: string }) => a.type === 'InternalIP')?.address ?? '';
}

export function getTable(resource: ResourceName, items: readonly KubeObject[], wide: boolean, allNamespaces: boolean, now = Date.now()): string {
  const rows: string[][] = [];
  const ns = (o: KubeObject): string[] => (allNamespaces ? [o.metadata.namespace ?? ''] : []);
  const nsHead = allNamespaces ? ['NAMESPACE'] : [];
  switch (resource) {
    case 'pods':
      rows.push([...nsHead, 'NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', ...(wide ? ['IP', 'NODE'] : [])]);
      for (const p of items) {
        const cs: { ready?: boolean; restartCount?: number }[] = any(p.status).containerStatuses ?? [];
        const total = (any(p.spec).containers ?? []).length;
        const restarts = cs.reduce((a, c) => a + (c.restartCount ?? 0), 0);
        rows.push([...ns(p), p.metadata.name ?? '', `${cs.filter((c) => c.ready).length}/${total}`, podStatusText(p), String(restarts), age(p.metadata.creationTimestamp, now), ...(wide ? [podIPs(p)[0] ?? '<none>', any(p.spec).nodeName || '<none>'] : [])]);
      }
      break;
    case 'services':
      rows.push([...nsHead, 'NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE', ...(wide ? ['SELECTOR'] : [])]);
      for (const s of items) {
        const sp = any(s.spec);
        const ext = sp.type === 'ExternalName' ? sp.externalName : (sp.externalIPs ?? []).join(',') || (sp.type === 'LoadBalancer' ? '<pending>' : '<none>');
        rows.push([...ns(s), s.metadata.name ?? '', sp.type ?? 'ClusterIP', sp.clusterIP || '<none>', ext, svcPorts(s), age(s.metadata.creationTimestamp, now), ...(wide ? [selectorText(sp.selector)] : [])]);
      }
      break;
    case 'endpointslices':
      rows.push([...nsHead, 'NAME', 'ADDRESSTYPE', 'PORTS', 'ENDPOINTS', 'AGE']);
      for (const s of items) {
        const eps = (any(s).endpoints ?? []).flatMap((e: { addresses: string[] }) => e.addresses);
        const ports = (any(s).ports ?? []).map((p: { port: number }) => p.port).join(',') || '<unset>';
        const shown = eps.length > 3 ? `${eps.slice(0, 3).join(',')} + ${eps.length - 3} more...` : eps.join(',') || '<unset>';
        rows.push([...ns(s), s.metadata.name ?? '', String(any(s).addressType ?? ''), ports, shown, age(s.metadata.creationTimestamp, now)]);
      }
      break;
    case 'nodes':
      rows.push(['NAME', 'STATUS', 'AGE', ...(wide ? ['INTERNAL-IP', 'POD-CIDR', 'ZONE'] : [])]);
      for (const n of items) {
        rows.push([n.metadata.name ?? '', nodeReady(n) ? 'Ready' : 'NotReady', age(n.metadata.creationTimestamp, now), ...(wide ? [internalIP(n), any(n.spec).podCIDR ?? '<none>', n.metadata.labels?.['topology.kubernetes.io/zone'] ?? '<none>'] : [])]);
      }
      break;
    case 'namespaces':
      rows.push(['NAME', 'STATUS', 'AGE']);
      for (const n of items) rows.push([n.metadata.name ?? '', any(n.status).phase ?? 'Active', age(n.metadata.creationTimestamp, now)]);
      break;
    case 'networkpolicies':
      rows.push([...nsHead, 'NAME', 'POD-SELECTOR', 'AGE']);
      for (const p of items) rows.push([...ns(p), p.metadata.name ?? '', labelSelectorText(any(p.spec).podSelector), age(p.metadata.creationTimestamp, now)]);
      break;
    case 'clusternetworkpolicies':
      rows.push(['NAME', 'TIER', 'PRIORITY', 'AGE']);
      for (const p of items) rows.push([p.metadata.name ?? '', String(any(p.spec).tier ?? ''), String(any(p.spec).priority ?? ''), age(p.metadata.creationTimestamp, now)]);
      break;
    case 'adminnetworkpolicies':
      rows.push(['NAME', 'PRIORITY', 'AGE']);
      for (const p of items) rows.push([p.metadata.name ?? '', String(any(p.spec).priority ?? ''), age(p.metadata.creationTimestamp, now)]);
      break;
    case 'baselineadminnetworkpolicies':
      rows.push(['NAME', 'AGE']);
      for (const p of items) rows.push([p.metadata.name ?? '', age(p.metadata.creationTimestamp, now)]);
      break;
    default:
      // kubectl is the full client; the shortcut names what exists.
      rows.push([...nsHead, 'NAME', 'AGE']);
      for (const o of items) rows.push([...ns(o), o.metadata.name ?? '', age(o.metadata.creationTimestamp, now)]);
  }
  return rows.length > 1 ? table(rows) : '';
}

export { podReady };
