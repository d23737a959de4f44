// What happens between "the pod has an address" and "ADD returns". The CNI handler calls these
// after the pod's interface is up and before it answers the runtime, so a component that must be
// in force before the pod's first packet (NetworkPolicy) gets the address the API does not know
// yet. The agent creates one PodHooks and hands it to both sides: cni/ never imports the
// components that listen, and a listener that throws fails the ADD (the runtime retries it).

export interface PodAttachment {
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
  /** The addresses the ADD gave the pod, one per family. */
  readonly ips: readonly string[];
}

export interface PodListener {
  /** Resolves once whatever the pod needs before its first packet is in force. */
  attached(pod: PodAttachment): Promise<void>;
  /** The pod's interface is gone (DEL). */
  detached(pod: Omit<PodAttachment, 'ips'>): Promise<void>;
}

export class PodHooks {
  private readonly listeners = new Set<PodListener>();

  /** Returns the function that removes the listener. */
  listen(l: PodListener): () => void {
    this.listeners.add(l);
    return () => void this.listeners.delete(l);
  }

  async attached(pod: PodAttachment): Promise<void> {
    await Promise.all([...this.listeners].map((l) => l.attached(pod)));
  }

  async detached(pod: Omit<PodAttachment, 'ips'>): Promise<void> {
    await Promise.all([...this.listeners].map((l) => l.detached(pod)));
  }
}
