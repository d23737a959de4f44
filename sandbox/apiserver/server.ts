// The HTTP face of the fake API server: the real list/watch/CRUD protocol over a FakeStore, plus
// the fault injection tests need (cut watches, expire them with 410, compact, restart on a port).
import { randomUUID } from 'node:crypto';
import { writeFileSync, renameSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { discovery } from './discovery.js';
import { decodeProtobufObject, isProtobuf } from './protobuf.js';
import { negotiateAs, parseAccept } from './media.js';
import { serveOpenApi } from './openapi.js';
import { parseIncludeObject, toTable, type IncludeObject } from './table.js';
import { ApiError, gone } from './errors.js';
import type { StoreEvent } from './history.js';
import { startStoreControllers } from './store-controllers.js';
import { apiVersionOf, type KubeObject, type ResourceName } from './resources.js';
import { parseRoute, type Route } from './routes.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { FakeStore, type AdmitFn, type FakeStoreOptions } from './store.js';
import { selfSignedCert, type TlsMaterial } from './tls.js';
import { WatchStream } from './watch-stream.js';
import { create, deleteOptions, patch, remove, update, type WriteResult } from './writes.js';

export interface FakeApiServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). Pass a closed server's port to restart it in place. */
  port?: number;
  /** Events kept for watch resumption when a new store is created (default 10000). */
  compactionWindow?: number;
  /** How often watches that asked for bookmarks get one (default 5000 ms; 0 disables). */
  bookmarkIntervalMs?: number;
  /** Reuse a store (e.g. the one of a closed server); a new one is created otherwise. */
  store?: FakeStore;
  /** Passed to a newly created store. */
  seedNamespaces?: FakeStoreOptions['seedNamespaces'];
  /** Serve HTTPS: true makes a self-signed certificate (needs the openssl CLI); or pass key+cert. */
  tls?: boolean | TlsMaterial;
}

export interface RequestRecord {
  readonly method: string;
  /** Path and query string exactly as the client sent them. */
  readonly url: string;
}

export interface FakeApiServer {
  /** http://host:port, or https:// with `tls` */
  readonly url: string;
  /** With `tls`: the key and (self-signed, CA) certificate; pass it back as `opts.tls` to restart with the same one. */
  readonly tls?: TlsMaterial;
  readonly port: number;
  readonly store: FakeStore;
  /** Adds an admission hook (same as store.admit). */
  admit(resource: ResourceName, fn: AdmitFn): () => void;
  /** The kubeconfig text the real client library loads unchanged. */
  kubeconfig(): string;
  /** Writes kubeconfig() to `path` (temp file then rename). */
  writeKubeconfig(path: string): void;
  /** Cuts every open watch connection abruptly; returns how many were open. */
  dropWatches(): number;
  /** Sends every open watch an ERROR 410 event and ends it, as a real server does when it falls behind. */
  expireWatches(): number;
  /** Same as store.compact(rev). */
  compact(rev?: number): void;
  /** Open watch streams, optionally of one resource. */
  watchCount(resource?: ResourceName): number;
  /** The last 2000 requests, oldest first. */
  readonly requests: readonly RequestRecord[];
  /** Stops serving: open watches and keep-alive connections are cut. The store stays usable. */
  close(): Promise<void>;
  /** Serves extra paths (subresources, views) before the generic routes; returns a remover. */
  route(fn: RouteHandler): () => void;
  /** Serves HTTP upgrade requests (pods/exec over WebSocket); returns a remover. */
  upgrade(fn: UpgradeHandler): () => void;
}

/** Handles the request and resolves true, or resolves false to pass it on. Throw ApiError for a Status. */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;
/** Takes over the socket and returns true, or returns false to pass it on. */
export type UpgradeHandler = (req: IncomingMessage, socket: Socket, head: Buffer, url: URL) => boolean;

interface Page {
  readonly items: KubeObject[];
  readonly rv: number;
}

const MAX_PAGES = 64;
const TABLE = [
  { g: 'meta.k8s.io', v: 'v1', as: 'Table' },
  { g: 'meta.k8s.io', v: 'v1beta1', as: 'Table' },
] as const;
const MAX_REQUEST_LOG = 2000;

export async function startFakeApiServer(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
  const host = opts.host ?? '127.0.0.1';
  const store = opts.store ?? new FakeStore({ compactionWindow: opts.compactionWindow, seedNamespaces: opts.seedNamespaces });
  const watches = new Set<WatchStream>();
  const pages = new Map<string, Page>();
  const requests: RequestRecord[] = [];
  const extraRoutes: RouteHandler[] = [];
  const upgrades: UpgradeHandler[] = [];
  let url = '';

  const unsubscribe = store.onEvent((e: StoreEvent) => {
    for (const w of watches) w.send(e);
  });

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '/' });
    if (requests.length > MAX_REQUEST_LOG) requests.splice(0, requests.length - MAX_REQUEST_LOG);
    handle(req, res).catch((e: unknown) => sendError(res, e));
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    if (['/healthz', '/livez', '/readyz'].includes(u.pathname)) return sendText(res, 200, 'ok');
    for (const r of extraRoutes) if (await r(req, res, u)) return;
    if (method === 'GET' && u.pathname.startsWith('/openapi/')) {
      const doc = serveOpenApi(u.pathname, req.headers.accept);
      if (doc) {
        res.writeHead(doc.status, { 'Content-Type': doc.contentType, 'Content-Length': Buffer.byteLength(doc.body) });
        res.end(doc.body);
        return;
      }
    }
    const accept = parseAccept(req.headers.accept);
    const doc = method === 'GET' ? discovery(u.pathname, new URL(url).host, accept) : undefined;
    if (doc !== undefined) return sendJson(res, 200, doc.body, doc.contentType);
    const route = parseRoute(u.pathname);
    if (!route) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    const q = u.searchParams;
    const r = route.def.name;
    switch (method) {
      case 'GET':
      {
        const asTable = negotiateAs(accept, TABLE) !== undefined;
        const include = parseIncludeObject(q.get('includeObject'));
        if (route.name !== undefined) {
          const o = store.get(r, route.name, route.namespace);
          return sendJson(res, 200, asTable ? toTable(route.def, [o], { include, metadata: { resourceVersion: o.metadata.resourceVersion } }) : o);
        }
        if (q.get('watch') === 'true' || q.get('watch') === '1') return watch(route, q, res, asTable ? include : undefined);
        const l = list(route, q);
        return sendJson(res, 200, asTable ? toTable(route.def, l.items, { include, metadata: l.metadata }) : l);
      }
      case 'POST':
        if (route.name !== undefined || route.subresource) throw methodNotAllowed(method);
        return sendWrite(res, create(store, route, q, req.headers, await readJson(req)));
      case 'PUT':
        if (route.name === undefined) throw methodNotAllowed(method);
        return sendWrite(res, update(store, route, q, req.headers, await readJson(req)));
      case 'PATCH':
        if (route.name === undefined) throw methodNotAllowed(method);
        return sendWrite(res, patch(store, route, q, req.headers, await readBody(req)));
      case 'DELETE': {
        if (route.name === undefined || route.subresource) throw methodNotAllowed(method);
        const text = await readBody(req);
        let body: unknown;
        try {
          body = text.trim() === '' ? undefined : JSON.parse(text);
        } catch (e) {
          throw new ApiError(400, 'BadRequest', `the request body is not valid JSON: ${(e as Error).message}`);
        }
        const out = remove(store, route, deleteOptions(q, body));
        return sendJson(res, out.status, out.body);
      }
      default:
        throw methodNotAllowed(method);
    }
  }

  function list(route: Route, q: URLSearchParams): { kind: string; apiVersion: string; metadata: Record<string, unknown>; items: KubeObject[] } {
    const limit = Number(q.get('limit') ?? 0) || 0;
    const token = q.get('continue');
    let page: Page;
    let offset = 0;
    let pageId: string;
    if (token) {
      const t = decodeContinue(token);
      const p = t && pages.get(t.id);
      if (!t || !p || p.rv < store.oldestResumable) {
        throw new ApiError(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      }
      page = p;
      offset = t.offset;
      pageId = t.id;
    } else {
      checkListRv(q.get('resourceVersion'));
      const items = store.select(route.def.name, { namespace: route.namespace, labelSelector: q.get('labelSelector') ?? undefined, fieldSelector: q.get('fieldSelector') ?? undefined });
      page = { items, rv: store.resourceVersion };
      pageId = randomUUID();
    }
    const end = limit > 0 ? Math.min(offset + limit, page.items.length) : page.items.length;
    const metadata: Record<string, unknown> = { resourceVersion: String(page.rv) };
    if (end < page.items.length) {
      // Later pages come from the same snapshot, so a paged list is consistent like an etcd range read.
      if (!pages.has(pageId)) pages.set(pageId, page);
      while (pages.size > MAX_PAGES) pages.delete(pages.keys().next().value!);
      metadata.continue = Buffer.from(JSON.stringify({ id: pageId, offset: end })).toString('base64url');
      metadata.remainingItemCount = page.items.length - end;
    } else pages.delete(pageId);
    return { kind: `${route.def.kind}List`, apiVersion: apiVersionOf(route.def), metadata, items: page.items.slice(offset, end) };
  }

  function checkListRv(rv: string | null): void {
    if (rv === null || rv === '' || rv === '0') return;
    const n = Number(rv);
    if (!Number.isInteger(n) || n < 0) throw new ApiError(400, 'BadRequest', `invalid resourceVersion "${rv}"`);
    if (n < store.oldestResumable) throw gone(n, store.oldestResumable);
    if (n > store.resourceVersion) throw new ApiError(504, 'Timeout', `Too large resource version: ${n}, current: ${store.resourceVersion}`);
  }

  /** `table` set: every event's object becomes a one-row Table, headers in the first one only. */
  function watch(route: Route, q: URLSearchParams, res: ServerResponse, table?: IncludeObject): void {
    const def = route.def;
    const byLabel = parseLabelSelector(q.get('labelSelector') ?? undefined);
    const byField = parseFieldSelector(def, q.get('fieldSelector') ?? undefined);
    const ns = route.namespace;
    const match = (o: KubeObject): boolean => (ns === undefined || o.metadata?.namespace === ns) && byLabel(o) && byField(o);
    const timeoutMs = (Number(q.get('timeoutSeconds') ?? 0) || 1800) * 1000;
    const bookmarks = q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1';
    let headersSent = false;
    const transform = table === undefined ? undefined : (o: object): object => {
      const t = toTable(def, [o as KubeObject], { include: table, noHeaders: headersSent, metadata: { resourceVersion: (o as KubeObject).metadata?.resourceVersion } }) as object;
      headersSent = true;
      return t;
    };
    const w = new WatchStream(def, res, match, bookmarks, timeoutMs, (s) => watches.delete(s), transform);
    const rv = q.get('resourceVersion');
    if (rv === null || rv === '' || rv === '0') {
      // No starting point: synthetic ADDED for the current state, then live events.
      for (const o of store.select(def.name, { namespace: ns })) if (match(o)) w.sendAdded(o);
    } else {
      const n = Number(rv);
      if (!Number.isInteger(n) || n < 0) return w.fail(new ApiError(400, 'BadRequest', `invalid resourceVersion "${rv}"`));
      let backlog: StoreEvent[];
      try {
        backlog = store.eventsSince(n);
      } catch (e) {
        return w.fail(e as ApiError);
      }
      for (const e of backlog) w.send(e);
    }
    // Registered in the same tick as the backlog was read, so no write falls in between.
    if (!w.closed) watches.add(w);
  }

  const bookmarkMs = opts.bookmarkIntervalMs ?? 5000;
  const bookmarkTimer = bookmarkMs > 0 ? setInterval(() => {
    for (const w of watches) w.bookmark(store.resourceVersion);
  }, bookmarkMs) : undefined;
  bookmarkTimer?.unref();

  const tls = opts.tls === true ? selfSignedCert(host) : opts.tls || undefined;
  const server: Server = tls ? createTlsServer({ keepAliveTimeout: 30_000, key: tls.key, cert: tls.cert }, handler) : createServer({ keepAliveTimeout: 30_000 }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const stopControllers = startStoreControllers(store, tls?.cert);
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '/' });
    const u = new URL(req.url ?? '/', 'http://fake');
    for (const h of upgrades) if (h(req, socket, head, u)) return;
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  const port = (server.address() as AddressInfo).port;
  url = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const kubeconfig = (): string =>
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: skiff-fake',
      '  cluster:',
      `    server: ${url}`,
      // client-node refuses plain http unless TLS verification is declared off.
      tls ? `    certificate-authority-data: ${Buffer.from(tls.cert).toString('base64')}` : '    insecure-skip-tls-verify: true',
      'users:',
      '- name: skiff-fake',
      '  user:',
      '    token: skiff-fake-token',
      'contexts:',
      '- name: skiff-fake',
      '  context:',
      '    cluster: skiff-fake',
      '    user: skiff-fake',
      'current-context: skiff-fake',
      '',
    ].join('\n');

  return {
    url,
    port,
    ...(tls && { tls }),
    store,
    requests,
    route(fn) {
      extraRoutes.push(fn);
      return () => extraRoutes.splice(extraRoutes.indexOf(fn) >>> 0, 1);
    },
    upgrade(fn) {
      upgrades.push(fn);
      return () => upgrades.splice(upgrades.indexOf(fn) >>> 0, 1);
    },
    admit: (resource, fn) => store.admit(resource, fn),
    kubeconfig,
    writeKubeconfig(path) {
      const tmp = `${path}.tmp-${process.pid}`;
      writeFileSync(tmp, kubeconfig(), { mode: 0o600 });
      renameSync(tmp, path);
    },
    dropWatches() {
      const n = watches.size;
      for (const w of [...watches]) w.destroy();
      return n;
    },
    expireWatches() {
      const n = watches.size;
      for (const w of [...watches]) w.fail(gone(0, store.oldestResumable));
      return n;
    },
    compact: (rev) => store.compact(rev),
    watchCount: (resource) => [...watches].filter((w) => resource === undefined || w.def.name === resource).length,
    async close() {
      unsubscribe();
      stopControllers();
      if (bookmarkTimer) clearInterval(bookmarkTimer);
      for (const w of [...watches]) w.destroy();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

function methodNotAllowed(method: string): ApiError {
  return new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource: ${method}`);
}

function decodeContinue(token: string): { id: string; offset: number } | undefined {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { id?: unknown; offset?: unknown };
    return typeof t.id === 'string' && typeof t.offset === 'number' ? { id: t.id, offset: t.offset } : undefined;
  } catch {
    return undefined;
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  // Typed clients (kubectl create) send built-in kinds as protobuf.
  if (isProtobuf(req.headers['content-type'])) {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return decodeProtobufObject(Buffer.concat(chunks));
  }
  const text = await readBody(req);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, 'BadRequest', `the request body is not valid JSON: ${(e as Error).message}`);
  }
}

function sendJson(res: ServerResponse, code: number, body: unknown, contentType = 'application/json'): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendWrite(res: ServerResponse, w: WriteResult): void {
  // Warn-level field validation travels as HTTP warnings (RFC 7234 code 299), which kubectl prints.
  if (w.warnings.length > 0) res.setHeader('Warning', w.warnings.map((m) => `299 - ${JSON.stringify(m)}`));
  sendJson(res, w.status, w.body);
}

function sendText(res: ServerResponse, code: number, body: string): void {
  res.writeHead(code, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendError(res: ServerResponse, e: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const err = e instanceof ApiError ? e : new ApiError(500, 'InternalError', `Internal error occurred: ${(e as Error)?.message ?? String(e)}`);
  sendJson(res, err.code, err.toStatus());
}
