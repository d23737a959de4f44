// A fake Kubernetes API server for tests and the sandbox: real HTTP, the real list/watch protocol,
// in-process store access and fault injection. See README.md for the exact surface.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FakeStore, type StoreSnapshot } from './store.js';
import { startFakeApiServer } from './server.js';

export { startFakeApiServer } from './server.js';
export type { FakeApiServer, FakeApiServerOptions, RequestRecord, RouteHandler, UpgradeHandler } from './server.js';
export { FakeStore, mergePatch } from './store.js';
export type { AdmitFn, AdmitOp, FakeStoreOptions, ListOptions, ListResult, StoreSnapshot, WriteOptions } from './store.js';
export { ApiError } from './errors.js';
export { ensureNamespaces } from './namespaces.js';
export type { Status, StatusReason } from './errors.js';
export type { StoreEvent, EventType } from './history.js';
export { RESOURCES, RESOURCE_NAMES } from './resources.js';
export type { KubeObject, ObjectMeta, ResourceDef, ResourceName } from './resources.js';
export type { TlsMaterial } from './tls.js';

/** Loads a store saved by `--state`, or undefined when the file does not exist yet. */
export function loadStoreFile(path: string, compactionWindow?: number): FakeStore | undefined {
  if (!existsSync(path)) return undefined;
  const snapshot = JSON.parse(readFileSync(path, 'utf8')) as StoreSnapshot;
  return new FakeStore({ snapshot, compactionWindow });
}

export function saveStoreFile(store: FakeStore, path: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(store.snapshot()));
  renameSync(tmp, path);
}

const USAGE = 'usage: fake-apiserver [--host 127.0.0.1] [--port 0] [--kubeconfig-out FILE] [--state FILE | --seed FILE] [--tls] [--compaction-window N] [--bookmark-interval-ms N]';

/**
 * Runs the server as its own process until SIGINT/SIGTERM. Prints one JSON line
 * {"url":…,"port":…} on stdout once listening. With --state the store is loaded from FILE at start
 * and saved to it (temp + rename, at most every 200 ms) after changes and at exit; --seed FILE
 * only loads it.
 */
export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '0' },
        'kubeconfig-out': { type: 'string' },
        state: { type: 'string' },
        seed: { type: 'string' },
        tls: { type: 'boolean' },
        'compaction-window': { type: 'string' },
        'bookmark-interval-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`fake-apiserver: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const window = num(values['compaction-window']);
  const statePath = values.state;
  if (statePath && values.seed) {
    process.stderr.write(`fake-apiserver: --state and --seed exclude each other\n${USAGE}\n`);
    return 2;
  }
  // --seed loads a snapshot once and never writes it back (benches); --state persists.
  const loadFrom = statePath ?? values.seed;
  const store = loadFrom ? loadStoreFile(loadFrom, window) : undefined;
  if (values.seed && !store) {
    process.stderr.write(`fake-apiserver: --seed ${values.seed}: no such file\n`);
    return 2;
  }
  const server = await startFakeApiServer({
    host: values.host,
    port: num(values.port),
    compactionWindow: window,
    bookmarkIntervalMs: num(values['bookmark-interval-ms']),
    store,
    tls: values.tls,
  });
  if (values['kubeconfig-out']) server.writeKubeconfig(values['kubeconfig-out']);

  let saveTimer: NodeJS.Timeout | undefined;
  const save = (): void => {
    saveTimer = undefined;
    if (statePath) saveStoreFile(server.store, statePath);
  };
  if (statePath) {
    save();
    server.store.onEvent(() => {
      saveTimer ??= setTimeout(save, 200);
    });
  }
  process.stdout.write(`${JSON.stringify({ url: server.url, port: server.port })}\n`);

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  if (saveTimer) {
    clearTimeout(saveTimer);
    save();
  }
  await server.close();
  return 0;
}

// Run directly: `tsx sandbox/apiserver/index.ts --port 6443 ...`
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
