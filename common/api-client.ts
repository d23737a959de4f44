// The agent's few writes to the API server, as plain requests (common/kubeconfig.ts has why not
// client-node). Node annotations go as a JSON merge patch: it touches only the keys given, and a
// null value removes a key. A Node condition goes as a strategic merge patch of the status
// subresource: conditions merge by type there, so the kubelet's own (Ready, ...) are kept.
import type { ApiClient } from './agent-deps.js';
import type { KubeAccess } from './kubeconfig.js';
import { apiRequest } from './watch/http-get.js';

export function createApiClient(kubeConfig: KubeAccess | (() => KubeAccess)): ApiClient {
  // Resolved on first use, so an agent with no API server (cleanup) never needs a valid kubeconfig.
  let kc: KubeAccess | undefined;
  return {
    async patchNodeAnnotations(name, annotations) {
      kc ??= typeof kubeConfig === 'function' ? kubeConfig() : kubeConfig;
      await apiRequest(kc, 'PATCH', `/api/v1/nodes/${encodeURIComponent(name)}`, { metadata: { annotations } }, 'application/merge-patch+json');
    },
    async patchNodeCondition(name, condition) {
      kc ??= typeof kubeConfig === 'function' ? kubeConfig() : kubeConfig;
      const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      const body = { status: { conditions: [{ ...condition, lastHeartbeatTime: now, lastTransitionTime: now }] } };
      await apiRequest(kc, 'PATCH', `/api/v1/nodes/${encodeURIComponent(name)}/status`, body, 'application/strategic-merge-patch+json');
    },
  };
}
