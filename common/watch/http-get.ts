// A plain GET through the kubeconfig's transport (TLS, token, proxy agent from client-node), used
// for lists: the raw JSON goes straight to convert.ts, with no generated-model round trip that
// would cost time at 10,000 objects and could reject a whole page for one malformed item.
import * as http from 'node:http';
import * as https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
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
export async function createGetter(kc: KubeConfig): Promise<Getter> {
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
