// Shared fixtures for the watch cache suites: a fake API server with a kubeconfig file that the
// agent's own loader reads, a log that tests can read, and a waiter that polls instead of sleeping.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfigLite } from '../kubeconfig.js';
import { pino, type Logger } from 'pino';
import { startFakeApiServer, type FakeApiServer, type FakeApiServerOptions } from '../../sandbox/apiserver/index.js';
import type { ChangeBatch } from './store.js';

export interface Fixture {
  api: FakeApiServer;
  kubeConfig: KubeConfigLite;
  kubeconfigPath: string;
  logs: Record<string, unknown>[];
  log: Logger;
  dispose(): Promise<void>;
}

export async function fixture(opts: FakeApiServerOptions = {}): Promise<Fixture> {
  const api = await startFakeApiServer({ seedNamespaces: false, ...opts });
  const dir = mkdtempSync(join(tmpdir(), 'skiff-watch-'));
  const kubeconfigPath = join(dir, 'kubeconfig');
  api.writeKubeconfig(kubeconfigPath);
  const kubeConfig = KubeConfigLite.fromFile(kubeconfigPath);
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const fx: Fixture = {
    api,
    kubeConfig,
    kubeconfigPath,
    logs,
    log,
    async dispose() {
      // Tests that restart the server replace fx.api; the current one is closed.
      await fx.api.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fx;
}

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Change batches reduced to comparable text: "kind key: prev-version -> cur-version". */
export function summarise(batches: readonly ChangeBatch[], version: (o: unknown) => string = (o) => (o === undefined ? '-' : 'obj')): string[] {
  return batches.flatMap((b) => b.changes.map((c) => `${c.kind} ${c.key}: ${version(c.previous)} -> ${version(c.current)}`));
}
