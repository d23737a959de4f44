// apply, get, delete, exec and status: thin CLI verbs over the sandbox's API server.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { stringify as toYaml } from 'yaml';
import { SkiffError, UsageError } from '../common/errors.js';
import { RESOURCES, type KubeObject, type ResourceName } from './apiserver/resources.js';
import { applyObject, SandboxClient } from './client.js';
import { LABEL_SERVICE_NAME, podIPs } from './endpointslices.js';
import { agentHealthy } from './lifecycle.js';
import { parseManifests, resourceFor } from './manifest.js';
import { podNetns, type Layout } from './names.js';
import { getTable, internalIP, nodeReady, podStatusText, table } from './output.js';

export type Out = (s: string) => void;

export async function applyCmd(c: SandboxClient, file: string, namespace: string | undefined, out: Out): Promise<number> {
  const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  const objects = parseManifests(text, file === '-' ? 'stdin' : file);
  let failed = 0;
  // Namespaces first so objects in a new namespace land in one apply, as kubectl users expect.
  const ordered = [...objects.filter((o) => o.resource === 'namespaces'), ...objects.filter((o) => o.resource !== 'namespaces')];
  for (const { resource, object } of ordered) {
    const what = `${RESOURCES[resource].kind.toLowerCase()}/${object.metadata.name ?? object.metadata.generateName}`;
    try {
      out(`${what} ${await applyObject(c, resource, object, namespace)}`);
    } catch (e) {
      failed++;
      process.stderr.write(`error: ${what}: ${(e as Error).message}\n`);
    }
  }
  return failed ? 1 : 0;
}

export async function getCmd(c: SandboxClient, kind: string, name: string | undefined, o: { namespace?: string; allNamespaces: boolean; output?: string }, out: Out): Promise<number> {
  const resource = resourceFor(kind);
  const def = RESOURCES[resource];
  const all = o.allNamespaces && def.namespaced;
  const ns = def.namespaced && !all ? (o.namespace ?? 'default') : undefined;
  const items = name ? [await c.get(resource, name, ns)] : (await c.list(resource, ns)).items;
  if (o.output === 'json' || o.output === 'yaml') {
    const doc = name ? items[0] : { apiVersion: 'v1', kind: 'List', items };
    out(o.output === 'json' ? JSON.stringify(doc, null, 2) + '\n' : toYaml(doc));
    return 0;
  }
  if (o.output !== undefined && o.output !== 'wide') throw new UsageError(`get: -o must be json, yaml or wide, not "${o.output}"`);
  const text = getTable(resource, items, o.output === 'wide', all);
  out(text || `No resources found${ns ? ` in ${ns} namespace` : ''}.\n`);
  return 0;
}

export async function deleteCmd(c: SandboxClient, kind: string, names: string[], namespace: string | undefined, out: Out): Promise<number> {
  const resource = resourceFor(kind);
  const ns = RESOURCES[resource].namespaced ? (namespace ?? 'default') : undefined;
  for (const name of names) {
    await c.delete(resource, name, ns);
    out(`${RESOURCES[resource].kind.toLowerCase()} "${name}" deleted\n`);
  }
  return 0;
}

/** Runs a command in a pod's (or node's) namespace with the terminal attached; its exit status is returned. */
export async function execCmd(c: SandboxClient, l: Layout, target: { pod?: string; node?: string; namespace?: string }, argv: string[]): Promise<number> {
  if (argv.length === 0) throw new UsageError('exec: give a command after --');
  let netns: string;
  if (target.node) {
    const node = await c.get('nodes', target.node);
    netns = node.metadata.name!;
    if (!netns.startsWith(`${l.name}-node-`)) throw new UsageError(`exec: ${netns} is not a node of sandbox ${l.name}`);
  } else {
    const pod = await c.get('pods', target.pod!, target.namespace ?? 'default');
    const spec = (pod.spec ?? {}) as { hostNetwork?: boolean; nodeName?: string };
    if (spec.hostNetwork) netns = spec.nodeName ?? '';
    else netns = podNetns(l.name, pod.metadata.uid ?? '');
    if (!podIPs(pod).length && !spec.hostNetwork) throw new SkiffError('ERR_SANDBOX_POD', `pod ${target.pod} is ${podStatusText(pod)}: it has no network namespace ready yet`);
  }
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 + 9 : 1)));
  });
}

export async function statusCmd(c: SandboxClient, l: Layout, out: Out): Promise<number> {
  const [nodes, pods, services, slices] = await Promise.all([c.list('nodes'), c.list('pods'), c.list('services'), c.list('endpointslices')]);
  const health = await Promise.all(nodes.items.map((n) => agentHealthy(internalIP(n), 800)));
  out(`sandbox ${l.name}: API server ${l.apiServer}, kubeconfig ${l.kubeconfig}\n\nNODES\n`);
  out(table([['NAME', 'IP', 'POD-CIDR', 'ZONE', 'AGENT', 'READY'], ...nodes.items.map((n, i) => [n.metadata.name ?? '', internalIP(n), ((n.spec ?? {}) as { podCIDR?: string }).podCIDR ?? '', n.metadata.labels?.['topology.kubernetes.io/zone'] ?? '', health[i] ? 'up' : 'down', nodeReady(n) ? 'Ready' : 'NotReady'])]));
  out('\nPODS\n');
  out(pods.items.length ? table([['NAMESPACE', 'NAME', 'NODE', 'IP', 'STATUS', 'READY'], ...pods.items.map((p) => [p.metadata.namespace ?? '', p.metadata.name ?? '', ((p.spec ?? {}) as { nodeName?: string }).nodeName ?? '<none>', podIPs(p)[0] ?? '<none>', podStatusText(p), readyText(p)])]) : '(none)\n');
  out('\nSERVICES\n');
  const epCount = new Map<string, number>();
  for (const s of slices.items) {
    const key = `${s.metadata.namespace}/${s.metadata.labels?.[LABEL_SERVICE_NAME] ?? ''}`;
    const ready = ((s.endpoints as { conditions?: { ready?: boolean } }[] | undefined) ?? []).filter((e) => e.conditions?.ready !== false).length;
    epCount.set(key, (epCount.get(key) ?? 0) + ready);
  }
  out(table([['NAMESPACE', 'NAME', 'TYPE', 'CLUSTER-IP', 'PORTS', 'READY-ENDPOINTS'], ...services.items.map((s) => svcRow(s, epCount))]));
  return 0;
}

function readyText(p: KubeObject): string {
  const c = ((p.status ?? {}) as { conditions?: { type: string; status: string }[] }).conditions?.find((x) => x.type === 'Ready');
  return c?.status === 'True' ? 'yes' : 'no';
}

function svcRow(s: KubeObject, epCount: Map<string, number>): string[] {
  const sp = (s.spec ?? {}) as { type?: string; clusterIP?: string; ports?: { port: number; nodePort?: number; protocol?: string }[] };
  const ports = (sp.ports ?? []).map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`).join(',');
  return [s.metadata.namespace ?? '', s.metadata.name ?? '', sp.type ?? '', sp.clusterIP ?? '', ports, String(epCount.get(`${s.metadata.namespace}/${s.metadata.name}`) ?? 0)];
}

export type { ResourceName };
