// Plain requests through the kubeconfig's transport (TLS, token; common/kubeconfig.ts): GETs for
// lists (the raw JSON goes straight to convert.ts, with no generated-model round trip that would
// cost time at 10,000 objects and could reject a whole page for one malformed item), the watch
// stream, and the agent's few writes.
import * as http from 'node:http';
import * as https from 'node:https';
import type { KubeAccess } from '../kubeconfig.js';
import { SkiffError } from '../errors.js';

export class ApiRequestError extends SkiffError {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super('ERR_API_REQUEST', message);
    this.name = 'ApiRequestError';
  }
}

export interface Getter {
  get(path: string, signal?: AbortSignal): Promise<unknown>;
}

/** Prepares the transport once (agent, headers) and reuses it for every page of a list. */
export async function createGetter(kc: KubeAccess): Promise<Getter> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new SkiffError('ERR_KUBECONFIG', 'kubeconfig has no current cluster');
  const base: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(base);
  const secure = cluster.server.startsWith('https:');
  return {
    get(path, signal) {
      const url = new URL(cluster.server.replace(/\/+$/, '') + path);
      const opts: https.RequestOptions = { ...base, method: 'GET', headers: { ...(base.headers ?? {}), Accept: 'application/json' }, signal };
      return new Promise((resolve, reject) => {
        const done = (res: http.IncomingMessage): void => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown;
            try {
              body = JSON.parse(text);
            } catch {
              body = undefined;
            }
            if (res.statusCode === 200 && body !== undefined) return resolve(body);
            const st = (body ?? {}) as { reason?: string; message?: string };
            const status = res.statusCode ?? 0;
            reject(new ApiRequestError(status, st.reason ?? '', `GET ${path}: ${status} ${st.message ?? text.slice(0, 200)}`));
          });
        };
        const req = secure ? https.request(url, opts, done) : http.request(url, opts as http.RequestOptions, done);
        req.on('error', reject);
        req.end();
      });
    },
  };
}

/** One request with a JSON body; resolves with the parsed answer, rejects with ApiRequestError. */
export async function apiRequest(kc: KubeAccess, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new SkiffError('ERR_KUBECONFIG', 'kubeconfig has no current cluster');
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  opts.method = method;
  opts.headers = { ...(opts.headers ?? {}), Accept: 'application/json', ...(payload ? { 'Content-Type': contentType, 'Content-Length': String(payload.length) } : {}) };
  const url = new URL(cluster.server.replace(/\/+$/, '') + path);
  return new Promise((resolve, reject) => {
    const done = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = undefined;
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(parsed);
        const st = (parsed ?? {}) as { reason?: string; message?: string };
        reject(new ApiRequestError(status, st.reason ?? '', `${method} ${path}: ${status} ${st.message ?? text.slice(0, 200)}`));
      });
    };
    const req = url.protocol === 'https:' ? https.request(url, opts, done) : http.request(url, opts as http.RequestOptions, done);
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A watch: `GET path?watch=true&...`, one JSON event per line. `onEvent` gets each event's type and
 * object; `done` is called once, with null when the server ended the stream, or the error (an
 * answer other than 200 carries its `statusCode`). The returned controller ends the watch.
 */
export async function watchStream(
  kc: KubeAccess,
  path: string,
  params: Record<string, string | number | boolean>,
  onEvent: (type: string, obj: unknown) => void,
  done: (err: unknown) => void,
): Promise<AbortController> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new SkiffError('ERR_KUBECONFIG', 'kubeconfig has no current cluster');
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  const ac = new AbortController();
  const url = new URL(cluster.server.replace(/\/+$/, '') + path);
  url.searchParams.set('watch', 'true');
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v));
  opts.method = 'GET';
  opts.headers = { ...(opts.headers ?? {}), Accept: 'application/json' };
  let ended = false;
  const end = (err: unknown): void => {
    if (ended) return;
    ended = true;
    done(err);
  };
  const onResponse = (res: http.IncomingMessage): void => {
    if (res.statusCode !== 200) {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        end(Object.assign(new Error(`watch ${path}: ${res.statusCode} ${text.slice(0, 200)}`), { statusCode: res.statusCode }));
      });
      res.on('error', end);
      return;
    }
    let rest = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl).trim();
        rest = rest.slice(nl + 1);
        if (!line) continue;
        let ev: { type?: string; object?: unknown };
        try {
          ev = JSON.parse(line) as typeof ev;
        } catch (e) {
          res.destroy();
          return end(new Error(`watch ${path}: unparsable event: ${(e as Error).message}`));
        }
        if (typeof ev.type === 'string') onEvent(ev.type, ev.object);
      }
    });
    res.on('end', () => end(null));
    res.on('error', (e) => end(ac.signal.aborted ? null : e));
    res.on('close', () => end(null));
  };
  const req = url.protocol === 'https:' ? https.request(url, opts, onResponse) : http.request(url, opts as http.RequestOptions, onResponse);
  req.on('error', (e) => end(ac.signal.aborted ? null : e));
  // Destroyed without an error: an aborted watch is a normal end, not one to report.
  ac.signal.addEventListener('abort', () => {
    req.destroy();
    end(null);
  }, { once: true });
  req.end();
  return ac;
}
