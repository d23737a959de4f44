// Conditions for suites that need root or a Debian tool. A suite is skipped only when one is
// missing, and the reason is printed so a skipped run never looks like a passing one.
import { execFileSync } from 'node:child_process';

export const isRoot = process.getuid?.() === 0;

const toolCache = new Map<string, boolean>();
export function hasTool(name: string): boolean {
  let ok = toolCache.get(name);
  if (ok === undefined) {
    try {
      execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
      ok = true;
    } catch {
      ok = false;
    }
    toolCache.set(name, ok);
  }
  return ok;
}

/** Returns why a suite cannot run here, or undefined when it can; prints the reason. */
export function missing(suite: string, needs: { root?: boolean; tools?: readonly string[] }): string | undefined {
  const why: string[] = [];
  if (needs.root && !isRoot) why.push('root');
  for (const t of needs.tools ?? []) if (!hasTool(t)) why.push(t);
  if (why.length === 0) return undefined;
  const reason = `skipping ${suite}: needs ${why.join(', ')}`;
  console.warn(reason);
  return reason;
}
