// Events as the control plane and kubelet record them (core/v1 Event, which events.k8s.io/v1 views):
// one object per (object, reason, message, source), repeated occurrences bump `count` and
// `lastTimestamp` instead of adding objects, as client-go's event correlator does.
import type { Logger } from '../common/log.js';
import type { KubeObject } from './apiserver/resources.js';
import type { FakeStore } from './apiserver/store.js';

export type EventType = 'Normal' | 'Warning';
export type RecordEvent = (obj: KubeObject, type: EventType, reason: string, message: string) => void;

/** Events kept at most; the oldest go first (a real cluster expires them after an hour). */
const MAX_EVENTS = 2000;
const nowIso = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export class EventRecorder {
  private readonly seen = new Map<string, string>();
  private created = 0;

  constructor(
    private readonly store: FakeStore,
    private readonly log: Logger,
  ) {}

  /** A recorder for one component (and host, for the kubelet's events). */
  for(component: string, host?: string): RecordEvent {
    return (obj, type, reason, message) => this.record(component, host, obj, type, reason, message);
  }

  record(component: string, host: string | undefined, obj: KubeObject, type: EventType, reason: string, message: string): void {
    const m = obj.metadata;
    const namespace = m.namespace || 'default';
    const key = [m.uid, reason, message, component, host].join('\u0000');
    const now = nowIso();
    try {
      const existing = this.seen.get(key);
      if (existing) {
        try {
          const ev = this.store.get('events', existing, namespace);
          this.store.patch('events', existing, { count: ((ev.count as number | undefined) ?? 1) + 1, lastTimestamp: now }, { namespace });
          return;
        } catch {
          this.seen.delete(key); // expired or deleted: record it anew
        }
      }
      const name = `${m.name}.${(BigInt(Date.now()) * 1_000_000n + BigInt(this.created % 1_000_000)).toString(16)}`;
      this.store.create('events', {
        metadata: { name, namespace },
        involvedObject: { kind: obj.kind, namespace: m.namespace, name: m.name, uid: m.uid, apiVersion: obj.apiVersion, resourceVersion: m.resourceVersion },
        reason,
        message,
        type,
        source: { component, ...(host ? { host } : {}) },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        eventTime: null,
        reportingComponent: component,
        reportingInstance: host ?? '',
      });
      this.seen.set(key, name);
      if (++this.created % 100 === 0) this.expire();
    } catch (err) {
      // Events are best effort, as in client-go: losing one never fails the work it describes.
      this.log.debug({ err, reason }, 'event not recorded');
    }
  }

  private expire(): void {
    const all = this.store.select('events');
    if (all.length <= MAX_EVENTS) return;
    const oldest = [...all].sort((a, b) => String(a.lastTimestamp).localeCompare(String(b.lastTimestamp))).slice(0, all.length - MAX_EVENTS);
    for (const e of oldest) this.store.delete('events', e.metadata.name!, e.metadata.namespace);
  }
}
