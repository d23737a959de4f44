// What the agent needs of a kubeconfig: the current context's server, its TLS settings and the
// user's credentials, applied to node:https request options. Not @kubernetes/client-node's
// KubeConfig: loading that library keeps 14 MB of generated API source in the agent's heap (its
// `gen/` tree comes with the config module), measured with a heap snapshot of the idle agent.
// Supported: certificate-authority(-data), insecure-skip-tls-verify, tls-server-name, token,
// tokenFile (re-read on every request, as bound service account tokens rotate), client
// certificate and key (file or data), basic auth; the in-cluster service account. Exec and
// auth-provider plugins are not: a kubeconfig that needs one is an error that says so.
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { dirname, isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from './errors.js';

/** The part of a kubeconfig the watch and the API client use (client-node's KubeConfig fits it too). */
export interface KubeAccess {
  getCurrentCluster(): { readonly name: string; readonly server: string } | null;
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

interface Cluster {
  name: string;
  server: string;
  ca?: Buffer;
  skipTLSVerify: boolean;
  tlsServerName?: string;
}

interface User {
  token?: string;
  tokenFile?: string;
  cert?: Buffer;
  key?: Buffer;
  username?: string;
  password?: string;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

type Doc = Record<string, unknown>;
const named = (list: unknown, name: string, field: string): Doc | undefined => {
  if (!Array.isArray(list)) return undefined;
  const e = (list as Doc[]).find((x) => x && x.name === name);
  return e && typeof e[field] === 'object' ? (e[field] as Doc) : undefined;
};
const str = (d: Doc | undefined, k: string): string | undefined => (typeof d?.[k] === 'string' && d[k] !== '' ? (d[k] as string) : undefined);

export class KubeConfigLite implements KubeAccess {
  private agent?: http.Agent;

  private constructor(
    private cluster: Cluster,
    private readonly user: User,
  ) {}

  /** Reads a kubeconfig file (its current context); relative file paths are relative to it. */
  static fromFile(path: string): KubeConfigLite {
    let doc: Doc;
    try {
      doc = (parseYaml(readFileSync(path, 'utf8')) ?? {}) as Doc;
    } catch (e) {
      throw new ConfigError('kubeconfig', `cannot read ${path}: ${(e as Error).message}`);
    }
    const base = dirname(path);
    const file = (p: string | undefined): Buffer | undefined => (p ? readFileSync(isAbsolute(p) ? p : join(base, p)) : undefined);
    const data = (b64: string | undefined): Buffer | undefined => (b64 ? Buffer.from(b64, 'base64') : undefined);
    const ctxName = str(doc, 'current-context');
    const ctx = ctxName ? named(doc.contexts, ctxName, 'context') : undefined;
    if (!ctx) throw new ConfigError('kubeconfig', `${path}: no current context`);
    const clusterName = str(ctx, 'cluster') ?? '';
    const c = named(doc.clusters, clusterName, 'cluster');
    const server = str(c, 'server');
    if (!c || !server) throw new ConfigError('kubeconfig', `${path}: cluster "${clusterName}" has no server`);
    const u = named(doc.users, str(ctx, 'user') ?? '', 'user') ?? {};
    if (u.exec || u['auth-provider']) throw new ConfigError('kubeconfig', `${path}: exec and auth-provider credentials are not supported; use a token, a token file or a client certificate`);
    try {
      return new KubeConfigLite(
        { name: clusterName, server, ca: data(str(c, 'certificate-authority-data')) ?? file(str(c, 'certificate-authority')), skipTLSVerify: c['insecure-skip-tls-verify'] === true, tlsServerName: str(c, 'tls-server-name') },
        {
          token: str(u, 'token'),
          tokenFile: str(u, 'tokenFile') && (isAbsolute(str(u, 'tokenFile')!) ? str(u, 'tokenFile') : join(base, str(u, 'tokenFile')!)),
          cert: data(str(u, 'client-certificate-data')) ?? file(str(u, 'client-certificate')),
          key: data(str(u, 'client-key-data')) ?? file(str(u, 'client-key')),
          username: str(u, 'username'),
          password: str(u, 'password'),
        },
      );
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      throw new ConfigError('kubeconfig', `${path}: ${(e as Error).message}`);
    }
  }

  /** The pod's service account, as client-go's rest.InClusterConfig. */
  static inCluster(env: NodeJS.ProcessEnv = process.env): KubeConfigLite {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT;
    if (!host || !port) throw new ConfigError('kubeconfig', 'not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset) and no kubeconfig given');
    let ca: Buffer;
    try {
      ca = readFileSync(join(SA_DIR, 'ca.crt'));
    } catch (e) {
      throw new ConfigError('kubeconfig', `in-cluster CA: ${(e as Error).message}`);
    }
    const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
    return new KubeConfigLite({ name: 'inCluster', server, ca, skipTLSVerify: false }, { tokenFile: join(SA_DIR, 'token') });
  }

  getCurrentCluster(): { readonly name: string; readonly server: string } {
    return this.cluster;
  }

  /** Points at another address of the same API server (the agent's --api-server). */
  setServer(server: string): void {
    this.cluster = { ...this.cluster, server };
    this.agent = undefined;
  }

  async applyToHTTPSOptions(opts: https.RequestOptions): Promise<void> {
    const c = this.cluster;
    const u = this.user;
    const secure = c.server.startsWith('https:');
    const tls = secure ? { ca: c.ca, cert: u.cert, key: u.key, rejectUnauthorized: !c.skipTLSVerify, servername: c.tlsServerName } : {};
    Object.assign(opts, tls);
    // One keep-alive agent for every list and watch, as client-node's.
    this.agent ??= secure ? new https.Agent({ keepAlive: true, ...tls }) : new http.Agent({ keepAlive: true });
    opts.agent = this.agent;
    const headers: Record<string, string> = { ...((opts.headers as Record<string, string> | undefined) ?? {}) };
    const token = u.tokenFile ? readFileSync(u.tokenFile, 'utf8').trim() : u.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    else if (u.username) headers.Authorization = `Basic ${Buffer.from(`${u.username}:${u.password ?? ''}`).toString('base64')}`;
    opts.headers = headers;
  }
}
