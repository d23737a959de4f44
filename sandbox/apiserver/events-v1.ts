// events.k8s.io/v1 as a read-only view of the core/v1 Events in the store (a real API server keeps
// one object behind both): get and list, the fields renamed as that API names them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './errors.js';
import type { KubeObject } from './resources.js';
import type { RouteHandler } from './server.js';
import type { FakeStore } from './store.js';

const PATH = /^\/apis\/events\.k8s\.io\/v1\/(?:namespaces\/([^/]+)\/)?events(?:\/([^/]+))?\/?$/;

export function toEventsV1(e: KubeObject): KubeObject {
  const { involvedObject, source, firstTimestamp, lastTimestamp, count, message, reportingComponent, reportingInstance, reason, type, eventTime } = e as Record<string, unknown> & KubeObject;
  const src = (source ?? {}) as { component?: string; host?: string };
  return {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: e.metadata,
    eventTime: eventTime ?? null,
    reportingController: reportingComponent || src.component || '',
    reportingInstance: reportingInstance || src.host || '',
    action: reason,
    reason,
    regarding: involvedObject,
    note: message,
    type,
    deprecatedSource: source,
    deprecatedFirstTimestamp: firstTimestamp,
    deprecatedLastTimestamp: lastTimestamp,
    deprecatedCount: count,
  };
}

export function eventsV1Route(store: FakeStore): RouteHandler {
  return (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const m = PATH.exec(url.pathname);
    if (!m) return false;
    if (req.method !== 'GET' || url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') {
      throw new ApiError(405, 'MethodNotAllowed', 'events.k8s.io/v1 is served read-only (get, list) in the sandbox; watch and write core/v1 events');
    }
    const [, ns, name] = m;
    let body: unknown;
    if (name !== undefined) {
      if (ns === undefined) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      body = toEventsV1(store.get('events', decodeURIComponent(name), decodeURIComponent(ns)));
    } else {
      const r = store.list('events', { namespace: ns && decodeURIComponent(ns), labelSelector: url.searchParams.get('labelSelector') ?? undefined });
      body = { apiVersion: 'events.k8s.io/v1', kind: 'EventList', metadata: { resourceVersion: r.resourceVersion }, items: r.items.map(toEventsV1) };
    }
    const text = JSON.stringify(body);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
    return true;
  };
}
