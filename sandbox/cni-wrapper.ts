// The skiff agent installs its compiled CNI shim into <binDir>/skiff when the build has one. A
// sandbox run from TypeScript sources has none, so `up` puts a script there that starts
// `skiff cni` the same way the sandbox starts everything else; the agent replaces it with the real
// shim whenever it finds one (its install compares bytes).
import { chmodSync, existsSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot, skiffCommand } from '../common/self.js';

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export function cniWrapperScript(): string {
  return `#!/bin/sh\n# written by skiff sandbox up: runs the skiff CNI plugin from this source tree\ncd ${quote(projectRoot)} || exit 1\nexec ${skiffCommand().map(quote).join(' ')} cni "$@"\n`;
}

/**
 * Links the reference plugins a node usually has beside its network plugin (portmap for hostPort,
 * bandwidth) from where the distribution installs them, so the agent chains them as on a real node.
 */
export function linkChainedPlugins(binDir: string, from: readonly string[] = ['/usr/lib/cni', '/opt/cni/bin']): string[] {
  const linked: string[] = [];
  mkdirSync(binDir, { recursive: true });
  for (const p of ['portmap', 'bandwidth']) {
    const src = from.map((d) => join(d, p)).find((f) => existsSync(f));
    const target = join(binDir, p);
    if (!src || existsSync(target)) continue;
    symlinkSync(src, target);
    linked.push(p);
  }
  return linked;
}

/** Installs the wrapper unless a plugin is already there; returns whether it wrote one. */
export function ensureCniWrapper(binDir: string): boolean {
  const target = join(binDir, 'skiff');
  if (existsSync(target)) return false;
  mkdirSync(binDir, { recursive: true });
  const tmp = join(binDir, '.skiff.sandbox.tmp');
  writeFileSync(tmp, cniWrapperScript());
  chmodSync(tmp, 0o755);
  renameSync(tmp, target);
  return true;
}
