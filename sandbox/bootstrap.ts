// What `up` puts in a fresh API server: one Node per sandbox node (pod CIDRs carved like the node
// IPAM controller, kept across reruns), the `kubernetes` Service with its hand-made EndpointSlice
// pointing at the API server, the kube-dns Service at its well-known IP, and the namespaces they
// and the system's objects live in.
import type { KubeObject } from './apiserver/resources.js';
import type { FakeStore } from './apiserver/store.js';
import { ensureNamespaces } from './apiserver/namespaces.js';
import { allocatePodCIDRs } from './ipam.js';
import { API_TLS_PORT, CLUSTER_CIDR, DNS_SERVICE_IP, NODE_CIDR_MASK, SERVICE_CIDR, nodeLayouts, type Layout, type NodeLayout } from './names.js';
import { intToIp, parseCidr } from './ipam.js';

export function nodeObject(n: NodeLayout, podCIDR: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      labels: {
        'kubernetes.io/hostname': n.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': process.arch === 'arm64' ? 'arm64' : 'amd64',
        'topology.kubernetes.io/zone': n.zone,
        'skiff.io/sandbox-node': String(n.index),
      },
    },
    spec: { podCIDR, podCIDRs: [podCIDR] },
    status: {
      addresses: [
        { type: 'InternalIP', address: n.ip },
        { type: 'Hostname', address: n.name },
      ],
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'sandbox kubelet stand-in is posting ready status', lastHeartbeatTime: null, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }],
      nodeInfo: { kubeletVersion: 'v1.31.0-skiff-sandbox', operatingSystem: 'linux', architecture: process.arch, containerRuntimeVersion: 'skiff-sandbox://netns' },
    },
  };
}

export const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'] as const;

const podCIDRof = (o: KubeObject): string | undefined => ((o.spec ?? {}) as { podCIDR?: string }).podCIDR;

/** Creates or refreshes the Node objects; a node keeps its pod CIDR for the life of the sandbox. */
export function ensureNodes(store: FakeStore, l: Layout): void {
  const wanted = nodeLayouts(l);
  const existing = new Map(store.select('nodes').map((n) => [n.metadata.name ?? '', n]));
  // Nodes dropped by a rerun with fewer --nodes.
  for (const [name] of existing) if (name.startsWith(`${l.name}-node-`) && !wanted.some((n) => n.name === name)) store.delete('nodes', name);
  const used = [...existing.values()].map(podCIDRof).filter((c): c is string => !!c);
  const missing = wanted.filter((n) => !podCIDRof(existing.get(n.name) ?? { metadata: {} }));
  const fresh = allocatePodCIDRs(CLUSTER_CIDR, NODE_CIDR_MASK, used, missing.length);
  for (const n of wanted) {
    const have = existing.get(n.name);
    const cidr = podCIDRof(have ?? { metadata: {} }) ?? fresh.shift()!;
    const obj = nodeObject(n, cidr);
    if (!have) store.create('nodes', obj);
    else {
      store.update('nodes', { ...obj, metadata: { ...have.metadata, labels: { ...have.metadata.labels, ...obj.metadata.labels } } });
      // Keep the condition's transition time, so a rerun of `up` that changes nothing writes nothing,
      // and the conditions others own (the agent's NetworkUnavailable), as a kubelet does.
      const had = ((have.status ?? {}) as { conditions?: { type: string; lastTransitionTime?: string }[] }).conditions ?? [];
      const was = had.find((c) => c.type === 'Ready');
      const status = obj.status as { conditions: { type: string; lastTransitionTime?: string }[] };
      if (was?.lastTransitionTime) status.conditions[0]!.lastTransitionTime = was.lastTransitionTime;
      status.conditions.push(...had.filter((c) => c.type !== 'Ready'));
      store.update('nodes', { ...store.get('nodes', n.name), status }, { subresource: 'status' });
    }
  }
}

export function ensureSystemServices(store: FakeStore, l: Layout): void {
  // The namespaces every cluster has, even when the store came from an older state file.
  ensureNamespaces(store, ...SYSTEM_NAMESPACES);
  const first = intToIp(parseCidr(SERVICE_CIDR).base + 1);
  const services: KubeObject[] = [
    {
      metadata: { name: 'kubernetes', namespace: 'default', labels: { component: 'apiserver', provider: 'kubernetes' } },
      spec: { type: 'ClusterIP', clusterIP: first, ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: API_TLS_PORT }] },
    },
    {
      // Served by every node's agent on the node itself (node-local DNS), so no pods back it.
      metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns', 'kubernetes.io/name': 'CoreDNS' } },
      spec: {
        type: 'ClusterIP',
        clusterIP: DNS_SERVICE_IP,
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
          { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
        ],
      },
    },
  ];
  for (const s of services) {
    try {
      store.get('services', s.metadata.name!, s.metadata.namespace);
    } catch {
      store.create('services', s);
    }
  }
  // The API server's own endpoints, maintained by the API server in a real cluster.
  const slice: KubeObject = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { 'kubernetes.io/service-name': 'kubernetes', 'endpointslice.kubernetes.io/managed-by': 'skiff-sandbox-apiserver' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [l.hostIP], conditions: { ready: true, serving: true, terminating: false } }],
    ports: [{ name: 'https', port: API_TLS_PORT, protocol: 'TCP' }],
  };
  try {
    const have = store.get('endpointslices', 'kubernetes', 'default');
    // A state from before the HTTPS listener pointed at the plain port.
    store.update('endpointslices', { ...have, endpoints: slice.endpoints, ports: slice.ports });
  } catch {
    store.create('endpointslices', slice);
  }
}
