// Watch cache metrics on the agent's registry: whether each kind's reflector keeps up with the
// API server (events, relists, errors), how fresh it is and how big it is.
import { Counter, Gauge } from 'prom-client';
import { registry } from '../metrics.js';

export const watchEvents = new Counter({
  name: 'skiff_watch_events_total',
  help: 'Watch events received, by kind and event type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR).',
  labelNames: ['kind', 'type'] as const,
  registers: [registry],
});

export const watchRelists = new Counter({
  name: 'skiff_watch_relists_total',
  help: 'Lists after the initial one (410 Gone, or a watch that could not resume).',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export const watchErrors = new Counter({
  name: 'skiff_watch_errors_total',
  help: 'Failed list or watch requests and malformed objects, by kind.',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export const watchLastSync = new Gauge({
  name: 'skiff_watch_last_sync_timestamp_seconds',
  help: 'When the kind was last known current: a completed list, or a watch event or bookmark.',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export const watchObjects = new Gauge({
  name: 'skiff_watch_objects',
  help: 'Objects of the kind in the watch cache.',
  labelNames: ['kind'] as const,
  registers: [registry],
});
