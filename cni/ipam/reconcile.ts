// Which allocations belong to nothing any more: the host-local "no IP addresses available" leak,
// where a DEL that never arrived (runtime crash, agent down) keeps an address forever. Pure, so the
// rules are unit-tested: an allocation is stale when its network namespace is gone, or when it
// names a pod that no longer exists on this node (or exists with another UID). Young allocations
// are spared: the pod watch may lag behind an ADD that just happened.
import type { PodInfo } from '../../common/types.js';
import type { Allocation } from './store.js';

export const RECONCILE_GRACE_MS = 60_000;

export function staleAllocations(
  allocs: readonly Allocation[],
  podsOnNode: ReadonlyMap<string, PodInfo>,
  netnsExists: (path: string) => boolean,
  nowMs: number,
  graceMs = RECONCILE_GRACE_MS,
): Allocation[] {
  return allocs.filter((a) => {
    if (nowMs - a.createdMs < graceMs) return false;
    if (!a.containerID) return true; // unreadable record
    if (a.netns && !netnsExists(a.netns)) return true;
    if (a.podName && a.podNamespace) {
      const pod = podsOnNode.get(`${a.podNamespace}/${a.podName}`);
      if (!pod) return true;
      if (a.podUID && pod.uid && a.podUID !== pod.uid) return true;
    }
    return false;
  });
}
