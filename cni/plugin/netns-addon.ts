// Loads cni/native/netns.c's addon, which runs a synchronous function inside another network
// namespace (see the C file for why that is safe). Without it (no C compiler at build time, or a
// load failure) the pod side of an ADD falls back to an `ip -batch` process in the pod's namespace.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NetnsAddon {
  inNetns<T>(path: string, fn: () => T): T;
  /**
   * Sends whole rtnetlink requests (back to back in one buffer) one at a time in the calling
   * thread's namespace, each acknowledged before the next; throws "Request rejected: E…" at the
   * first failure. Absent from an addon built before it existed.
   */
  rtnl?(messages: Buffer): void;
  /** rtnl on a libuv pool thread (in the process's own namespace): the main thread stays free. */
  rtnlAsync?(messages: Buffer): Promise<void>;
  /** if_nametoindex(3) in the calling thread's namespace; 0 when there is no such interface. */
  ifIndex?(name: string): number;
}

const here = dirname(fileURLToPath(import.meta.url));
let loaded: { addon?: NetnsAddon; error?: string } | undefined;

/** Where the build puts it, seen from the sources (cni/plugin) and from dist/cni/plugin. */
function candidates(): string[] {
  const fromEnv = process.env.SKIFF_NETNS_ADDON;
  return [...(fromEnv ? [fromEnv] : []), join(here, '../../native/netns.node'), join(here, '../../dist/native/netns.node')];
}

/** The addon, or undefined with the reason; tried once per process. */
export function loadNetnsAddon(): { addon?: NetnsAddon; error?: string } {
  if (loaded) return loaded;
  const path = candidates().find((p) => existsSync(p));
  if (!path) return (loaded = { error: 'netns.node not built (scripts/build-native.sh)' });
  try {
    loaded = { addon: createRequire(import.meta.url)(path) as NetnsAddon };
  } catch (e) {
    loaded = { error: `${path}: ${(e as Error).message}` };
  }
  return loaded;
}
