// The first full sync after an agent start runs cold: at 10,000 Services much of it executes in
// V8's interpreter and baseline tiers and grows the heap as it goes. Measured on one core, the
// JS of that sync took ~660 ms cold and ~530 ms after a full sync of 2,000 other Services in the
// same process (`npm run bench -- proxy` shows the same gap on two cores). The agent waits for
// its caches to fill anyway, so in the meantime it runs the very same code (conversion of API
// objects, desired state, bounds, render, mirror, the staged chunks' netlink messages) over a
// synthetic cluster into a backend that throws them away. Nothing reaches the kernel, the metrics or the log.
// Then it runs the partial syncs of endpoints coming and going the same way: cold, the first
// update after a start spent ~5 ms in the render and mirror diff alone at 50,000 Services, where
// a warm one takes ~0.5 ms (timestamps around each step of the agent's sync).
import type { EndpointSliceInfo, ServiceInfo } from '../common/types.js';
import { convert } from '../common/watch/convert.js';
import { boundsOfObjects } from './bounds.js';
import { ComputedServices } from './computed-services.js';
import { desiredService } from './desired.js';
import type { NodeContext } from './model.js';
import type { NftBackend } from './nft/backend.js';
import { NftDataplane } from './nft/dataplane.js';

/** Enough for V8 to optimise the hot functions; ~150 ms of CPU at agent start. */
export const WARM_UP_SERVICES = 2000;
/** Endpoint changes after the full sync, one Service each, as the agent's partial syncs get them: ~0.1-0.2 s more. */
export const WARM_UP_UPDATES = 100;
const ENDPOINTS = 10;

const DISCARD: NftBackend = {
  apply: async () => undefined,
  list: async () => undefined,
  chains: async () => [],
  remove: async () => undefined,
  // The element-only path encodes netlink messages (nft/elements.ts); they are built, then dropped.
  commit: async (build) => void build(() => 0),
};

// The benchmarking range (RFC 2544); these addresses only ever exist as text here.
const serviceIP = (i: number): string => `198.19.${(i >> 8) & 255}.${i & 255}`;
const podIP = (n: number): string => `198.18.${(n >> 8) & 255}.${n & 255}`;

/** A Service as the API server sends it; every fourth one a NodePort with externalTrafficPolicy Local. */
function rawService(i: number): unknown {
  const nodePort = i % 4 === 0;
  return {
    metadata: { name: `warm-${i}`, namespace: `warm-${i % 50}`, uid: `warm-${i}` },
    spec: {
      type: nodePort ? 'NodePort' : 'ClusterIP',
      clusterIP: serviceIP(i),
      clusterIPs: [serviceIP(i)],
      ipFamilies: ['IPv4'],
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, ...(nodePort ? { nodePort: 30000 + (i % 2000) } : {}) }],
      selector: { app: `warm-${i}` },
      sessionAffinity: 'None',
      ...(nodePort ? { externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 + (i >> 2) } : {}),
    },
    status: { loadBalancer: {} },
  };
}

/** `count` endpoints from pod number `first` on; the first of them on this node. */
function rawSlice(i: number, nodeName: string, first = i * ENDPOINTS, count = ENDPOINTS): unknown {
  return {
    metadata: { name: `warm-${i}-abcde`, namespace: `warm-${i % 50}`, labels: { 'kubernetes.io/service-name': `warm-${i}` } },
    addressType: 'IPv4',
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    endpoints: Array.from({ length: count }, (_, e) => ({
      addresses: [podIP(first + e)],
      conditions: { ready: true, serving: true, terminating: false },
      // One endpoint in ten on this node, so the node-local paths run too.
      nodeName: e === 0 ? nodeName : `warm-node-${e}`,
      targetRef: { kind: 'Pod', namespace: `warm-${i % 50}`, name: `warm-${i}-${e}` },
    })),
  };
}

/** One full sync of a synthetic cluster of `services` Services, then `updates` partial syncs, into a discarding backend (tests pass their own). */
export async function warmUp(ctx: NodeContext, services = WARM_UP_SERVICES, backend: NftBackend = DISCARD, updates = WARM_UP_UPDATES): Promise<void> {
  const svcs = new Map<string, ServiceInfo>();
  const slices = new Map<string, EndpointSliceInfo>();
  const keys: string[] = [];
  for (let i = 0; i < services; i++) {
    const s = convert('services', rawService(i));
    keys.push(s.key);
    svcs.set(s.key, s.value);
    slices.set(s.key, convert('endpointslices', rawSlice(i, ctx.nodeName)).value);
  }
  const computed = new ComputedServices(svcs.keys(), (key) => desiredService(svcs.get(key)!, [slices.get(key)!], ctx).ports);
  const dataplane = new NftDataplane(backend, [4]);
  await dataplane.full(computed, ctx, { bounds: () => boundsOfObjects(svcs.values(), slices.values()) });
  // Endpoints replaced and rescaled (1 to 10, fresh addresses) and now and then a Service gone:
  // element changes mostly, as in a live cluster.
  let next = services * ENDPOINTS;
  for (let k = 0; k < Math.min(updates, services); k++) {
    const i = (k * 7) % services;
    const key = keys[i]!;
    const gone = k % 20 === 19;
    const count = 1 + (k % ENDPOINTS);
    const slice = convert('endpointslices', rawSlice(i, ctx.nodeName, next, count)).value;
    next += count;
    const ports = gone ? [] : desiredService(svcs.get(key)!, [slice], ctx).ports;
    await dataplane.partial([{ key, ports }], ctx);
  }
}
