// The agent's few writes to the API server, on client-node's generated API. Node annotations go
// as a JSON merge patch: it touches only the keys given, and a null value removes a key.
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { ApiClient } from './agent-deps.js';

export function createApiClient(kubeConfig: KubeConfig): ApiClient {
  let core: CoreV1Api | undefined;
  return {
    async patchNodeAnnotations(name, annotations) {
      // Built on first use, so an agent with no API server (cleanup) never needs a valid kubeconfig.
      core ??= kubeConfig.makeApiClient(CoreV1Api);
      await core.patchNode({ name, body: { metadata: { annotations } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    },
  };
}
