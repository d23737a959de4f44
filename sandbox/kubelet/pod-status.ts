// A pod's status as kubelet would report it, computed from what the stand-in knows about the pod:
// a pure function so the condition and container-state rules are unit-tested without a kernel.

export type ContainerState =
  | { readonly kind: 'waiting'; readonly reason: string; readonly message?: string }
  | { readonly kind: 'running'; readonly startedAt: string }
  | { readonly kind: 'terminated'; readonly exitCode: number; readonly reason: string; readonly startedAt: string; readonly finishedAt: string };

export interface ContainerView {
  readonly name: string;
  readonly state: ContainerState;
  readonly restartCount: number;
  readonly ready: boolean;
}

export interface PodView {
  /** Until the network is up every container waits in ContainerCreating. */
  readonly networkReady: boolean;
  readonly networkMessage?: string;
  readonly hostIP: string;
  readonly podIPs: readonly string[];
  readonly startTime: string;
  readonly containers: readonly ContainerView[];
  readonly restartPolicy: 'Always' | 'OnFailure' | 'Never';
  /** When each condition last flipped: the caller keeps these across syncs. */
  readonly transitions: Readonly<Record<string, string>>;
}

export function podPhase(v: PodView): 'Pending' | 'Running' | 'Succeeded' | 'Failed' {
  if (!v.networkReady || v.containers.length === 0) return 'Pending';
  const states = v.containers.map((c) => c.state);
  if (states.some((s) => s.kind === 'running')) return 'Running';
  if (states.every((s) => s.kind === 'terminated')) {
    if (v.restartPolicy === 'Always') return 'Running'; // between restarts
    const failed = states.some((s) => s.kind === 'terminated' && s.exitCode !== 0);
    if (!failed) return 'Succeeded';
    return v.restartPolicy === 'Never' ? 'Failed' : 'Running';
  }
  return states.some((s) => s.kind === 'waiting' && s.reason === 'ContainerCreating') ? 'Pending' : 'Running';
}

function condition(type: string, ok: boolean, v: PodView, reason?: string, message?: string): Record<string, unknown> {
  return {
    type,
    status: ok ? 'True' : 'False',
    lastProbeTime: null,
    lastTransitionTime: v.transitions[`${type}=${ok}`] ?? v.startTime,
    ...(reason ? { reason } : {}),
    ...(message ? { message } : {}),
  };
}

export function podStatus(v: PodView): Record<string, unknown> {
  const phase = podPhase(v);
  const allReady = v.networkReady && v.containers.length > 0 && v.containers.every((c) => c.ready);
  const notReady = v.containers.filter((c) => !c.ready).map((c) => c.name);
  const notReadyMsg = v.networkReady ? `containers with unready status: [${notReady.join(' ')}]` : v.networkMessage;
  const ready = allReady && phase === 'Running';
  return {
    phase,
    hostIP: v.hostIP,
    hostIPs: [{ ip: v.hostIP }],
    ...(v.podIPs.length ? { podIP: v.podIPs[0], podIPs: v.podIPs.map((ip) => ({ ip })) } : {}),
    startTime: v.startTime,
    conditions: [
      condition('PodReadyToStartContainers', v.networkReady, v),
      condition('Initialized', true, v),
      condition('Ready', ready, v, ready ? undefined : 'ContainersNotReady', ready ? undefined : notReadyMsg),
      condition('ContainersReady', allReady, v, allReady ? undefined : 'ContainersNotReady', allReady ? undefined : notReadyMsg),
      condition('PodScheduled', true, v),
    ],
    containerStatuses: v.containers.map((c) => ({
      name: c.name,
      ready: c.ready,
      started: c.state.kind === 'running',
      restartCount: c.restartCount,
      image: '',
      imageID: '',
      state:
        c.state.kind === 'waiting'
          ? { waiting: { reason: c.state.reason, ...(c.state.message ? { message: c.state.message } : {}) } }
          : c.state.kind === 'running'
            ? { running: { startedAt: c.state.startedAt } }
            : { terminated: { exitCode: c.state.exitCode, reason: c.state.reason, startedAt: c.state.startedAt, finishedAt: c.state.finishedAt } },
    })),
  };
}
