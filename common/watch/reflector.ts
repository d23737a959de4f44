// One kind's list-then-watch loop (client-go's reflector): list in pages, replace the store with
// the result (only true differences reach subscribers), then watch from the list's
// resourceVersion. Bookmarks and events advance the resourceVersion; a broken watch resumes from
// it; 410 Gone relists; every failure backs off with jitter and tries again, forever.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Kind, KindTypes } from '../types.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { convert, ConvertError, describe, rawKey } from './convert.js';
import type { KubeAccess } from '../kubeconfig.js';
import { collectIfGrown } from '../memory.js';
import { ApiRequestError, createGetter, watchStream } from './http-get.js';
import { watchErrors, watchEvents, watchLastSync, watchObjects, watchRelists } from './metrics.js';
import type { MemoryCache } from './store.js';

export const KIND_PATHS: Readonly<Record<Kind, string>> = {
  nodes: '/api/v1/nodes',
  namespaces: '/api/v1/namespaces',
  services: '/api/v1/services',
  pods: '/api/v1/pods',
  endpointslices: '/apis/discovery.k8s.io/v1/endpointslices',
  networkpolicies: '/apis/networking.k8s.io/v1/networkpolicies',
  policypods: '/api/v1/pods',
  clusternetworkpolicies: '/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies',
  adminnetworkpolicies: '/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies',
  baselineadminnetworkpolicies: '/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies',
};

/** How often a kind the API server does not serve (an optional CRD) is asked for again. */
const ABSENT_RECHECK_MS = 60_000;

export interface ReflectorOptions {
  readonly kind: Kind;
  readonly kubeConfig: KubeAccess;
  readonly cache: MemoryCache;
  readonly log: Logger;
  readonly fieldSelector?: string;
  /** Items per list page (default 500, as client-go). */
  readonly pageSize?: number;
  readonly backoff?: BackoffOptions;
  /** A 404 on list means "not installed": the kind is empty (and synced) until it appears. */
  readonly optional?: boolean;
}

type WatchEnd = 'gone' | 'ended';

class GoneError extends Error {}

export class Reflector {
  /** The resourceVersion the next watch resumes from; '' before the first list. */
  resourceVersion = '';
  private lists = 0;
  private absent = false;
  private readonly backoff: Backoff;
  private readonly kind: Kind;
  private readonly log: Logger;

  constructor(private readonly opts: ReflectorOptions) {
    this.kind = opts.kind;
    this.log = opts.log.child({ kind: opts.kind });
    this.backoff = new Backoff(opts.backoff);
  }

  /** Runs until the signal aborts; never rejects because of the API server. */
  async run(signal: AbortSignal): Promise<void> {
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          if (!(await this.list(signal))) {
            await sleep(ABSENT_RECHECK_MS, undefined, { signal }).catch(() => undefined);
            continue;
          }
          needList = false;
        }
        const started = Date.now();
        const end = await this.watch(signal);
        if (end === 'gone') {
          this.log.info({ resourceVersion: this.resourceVersion }, 'watch expired (410 Gone); relisting');
          needList = true;
          continue;
        }
        // A clean end is the server's timeout: resume at once, unless it keeps ending immediately.
        if (Date.now() - started > 1000) this.backoff.reset();
        else await this.pause(signal);
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof GoneError) {
          needList = true;
          continue;
        }
        watchErrors.inc({ kind: this.kind });
        const delay = this.backoff.next();
        this.log.warn({ err: errText(err), retryInMs: delay, phase: needList ? 'list' : 'watch' }, 'watch cache request failed');
        await sleep(delay, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  private async pause(signal: AbortSignal): Promise<void> {
    await sleep(this.backoff.next(), undefined, { signal }).catch(() => undefined);
  }

  /**
   * Lists in pages and applies each page to the cache as it arrives; objects the list no longer
   * has are removed at the end. A relist (410, an API server restart) thus never holds a second
   * copy of the kind: an unchanged object's fresh conversion is dropped at once (the cache keeps
   * the one it has), and only one page of raw JSON is alive at a time. Subscribers see only true
   * differences, as with a whole-list replace. Returns false when an optional kind is not served
   * (it is then empty).
   */
  private async list(signal: AbortSignal): Promise<boolean> {
    const getter = await createGetter(this.opts.kubeConfig);
    const cache = this.opts.cache;
    const seen = new Set<string>();
    let cont = '';
    let rv = '';
    do {
      const q = new URLSearchParams({ limit: String(this.opts.pageSize ?? 500) });
      if (cont) q.set('continue', cont);
      if (this.opts.fieldSelector) q.set('fieldSelector', this.opts.fieldSelector);
      let page: { metadata?: { resourceVersion?: string; continue?: string }; items?: unknown[] };
      try {
        page = (await getter.get(`${KIND_PATHS[this.kind]}?${q}`, signal)) as typeof page;
      } catch (err) {
        // An expired continue token means the snapshot is gone: start the list over.
        if (err instanceof ApiRequestError && err.status === 410) throw new GoneError(err.message);
        if (err instanceof ApiRequestError && err.status === 404 && this.opts.optional) {
          if (!this.absent) this.log.info('not served by the API server (CRD not installed?): empty until it appears');
          this.absent = true;
          this.opts.cache.replace(this.kind, new Map());
          this.backoff.reset();
          return false;
        }
        throw err;
      }
      for (const raw of page.items ?? []) {
        const c = this.convertOrReport(raw);
        if (!c) continue;
        seen.add(c.key);
        cache.upsert(this.kind, c.key, c.value);
      }
      rv = page.metadata?.resourceVersion ?? '';
      cont = page.metadata?.continue ?? '';
      // A relist must not grow the heap by its garbage (common/memory.ts).
      if (this.lists > 0) collectIfGrown();
    } while (cont);
    if (this.lists++ > 0) watchRelists.inc({ kind: this.kind });
    cache.retain(this.kind, seen);
    this.resourceVersion = rv;
    this.backoff.reset();
    watchLastSync.set({ kind: this.kind }, Date.now() / 1000);
    watchObjects.set({ kind: this.kind }, seen.size);
    this.log.debug({ objects: seen.size, resourceVersion: rv }, 'listed');
    this.absent = false;
    return true;
  }

  private watch(signal: AbortSignal): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve, reject) => {
      let settled = false;
      let gone = false;
      let failure: unknown;
      let controller: AbortController | undefined;
      const finish = (err: unknown): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        controller?.abort();
        if (gone) resolve('gone');
        else if (signal.aborted) resolve('ended');
        else if (failure ?? err) reject(failure ?? err);
        else resolve('ended');
      };
      const onAbort = (): void => finish(undefined);
      signal.addEventListener('abort', onAbort, { once: true });
      const params: Record<string, string | boolean | number> = {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        // client-go's spread: 5 to 10 minutes, so a fleet of watches does not expire together.
        timeoutSeconds: Math.floor(300 + Math.random() * 300),
      };
      if (this.opts.fieldSelector) params.fieldSelector = this.opts.fieldSelector;
      const onEvent = (type: string, obj: unknown): void => {
        if (settled) return;
        if (type === 'ERROR') {
          const st = (obj ?? {}) as { code?: number; message?: string };
          watchEvents.inc({ kind: this.kind, type });
          if (st.code === 410) gone = true;
          else failure = new ApiRequestError(st.code ?? 0, '', `watch ${this.kind}: ${st.message ?? 'ERROR event'}`);
          return finish(undefined);
        }
        this.handleEvent(type, obj);
      };
      watchStream(this.opts.kubeConfig, KIND_PATHS[this.kind], params, onEvent, (err: unknown) => {
          if ((err as { statusCode?: number } | null)?.statusCode === 410) gone = true;
          finish(err ?? undefined);
        })
        .then(
          (c) => {
            controller = c;
            if (settled) c.abort();
          },
          (err: unknown) => finish(err),
        );
    });
  }

  private handleEvent(type: string, obj: unknown): void {
    watchEvents.inc({ kind: this.kind, type });
    const rv = (obj as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
    const cache = this.opts.cache;
    switch (type) {
      case 'ADDED':
      case 'MODIFIED': {
        const c = this.convertOrReport(obj);
        if (c) cache.upsert(this.kind, c.key, c.value);
        else {
          // A known object that turned malformed is dropped rather than kept stale, as a relist would.
          const key = rawKey(this.kind, obj);
          if (key !== undefined) cache.remove(this.kind, key);
        }
        break;
      }
      case 'DELETED': {
        const key = rawKey(this.kind, obj);
        if (key !== undefined) cache.remove(this.kind, key);
        break;
      }
      case 'BOOKMARK':
        break;
      default:
        this.log.warn({ type }, 'unknown watch event type');
        return;
    }
    if (typeof rv === 'string' && rv !== '') this.resourceVersion = rv;
    watchLastSync.set({ kind: this.kind }, Date.now() / 1000);
    watchObjects.set({ kind: this.kind }, cache.store(this.kind).size);
  }

  private convertOrReport(raw: unknown): { key: string; value: KindTypes[Kind] } | undefined {
    try {
      return convert(this.kind, raw);
    } catch (err) {
      if (!(err instanceof ConvertError)) throw err;
      watchErrors.inc({ kind: this.kind });
      this.log.warn({ ...describe(raw), field: err.field, reason: err.message }, 'skipping malformed object');
      return undefined;
    }
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
