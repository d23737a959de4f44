// Kernel work goes through iproute2 batches: one process per network namespace touched, because a
// netlink socket is bound to the namespace it was opened in and Node cannot setns(2). nsenter
// enters a pod namespace given by any other path (iproute2 6.1's `ip -n` takes only names).
import { CommandError, runCommand } from '../../common/exec.js';

export { CommandError };

export function run(argv: readonly string[], input?: string): Promise<string> {
  return runCommand(argv, { input, errorCode: 'ERR_CNI_COMMAND' });
}

/**
 * argv for `ip` in the namespace at netnsPath. Runtimes usually pin namespaces under /run/netns,
 * which `ip -n <name>` opens itself: one exec instead of nsenter's two.
 */
export function ipIn(netnsPath: string | undefined, args: readonly string[]): string[] {
  if (!netnsPath) return ['ip', ...args];
  const m = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(netnsPath);
  if (m) return ['ip', '-n', m[1]!, ...args];
  return ['nsenter', `--net=${netnsPath}`, '--', 'ip', ...args];
}

/** Runs `ip -batch -` in the current namespace, or in the one at netnsPath. */
export function ipBatch(lines: readonly string[], netnsPath?: string): Promise<string> {
  return run(ipIn(netnsPath, ['-batch', '-']), lines.join('\n') + '\n');
}

export function ipJson<T>(args: readonly string[], netnsPath?: string): Promise<T> {
  return run(ipIn(netnsPath, ['-j', ...args])).then((s) => (s.trim() ? (JSON.parse(s) as T) : ([] as T)));
}

export function isNotFound(e: unknown): boolean {
  return e instanceof CommandError && /Cannot find device|does not exist|No such device|No such process/i.test(e.stderr);
}
