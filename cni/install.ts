// Puts the C shim where kubelet looks for plugins (<cni.binDir>/skiff), the job flannel gives an
// init container: copied under a temporary name the runtime never executes, then renamed, and only
// when the bytes differ, so a running ADD never sees a half-written binary.
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../common/self.js';

export const SHIM_BUILD_PATH = join(projectRoot, 'dist', 'bin', 'skiff-cni');

/** Returns 'installed', 'unchanged', or 'missing' when this build has no compiled shim. */
export function installShim(binDir: string, source = SHIM_BUILD_PATH): 'installed' | 'unchanged' | 'missing' {
  if (!existsSync(source)) return 'missing';
  const target = join(binDir, 'skiff');
  const bytes = readFileSync(source);
  try {
    if (readFileSync(target).equals(bytes)) return 'unchanged';
  } catch {
    /* not installed yet */
  }
  mkdirSync(binDir, { recursive: true });
  // Per process: two agents sharing a binDir (tests, a restart overlapping its predecessor) must not
  // rename each other's half-copied file.
  const tmp = join(binDir, `.skiff.${process.pid}.tmp`);
  copyFileSync(source, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, target);
  return 'installed';
}
