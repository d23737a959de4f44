// How to start this same program again (agents, CNI calls, workers) whether it runs from the
// compiled dist/ tree or from TypeScript sources under tsx.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', import.meta.url.includes('/dist/') ? '..' : '');

export function skiffCommand(): string[] {
  const built = join(projectRoot, 'dist', 'bin', 'skiff.js');
  if (import.meta.url.includes('/dist/') && existsSync(built)) return [process.execPath, built];
  // A resolved loader URL, so the child finds tsx whatever its working directory.
  return [process.execPath, '--import', import.meta.resolve('tsx'), join(projectRoot, 'bin', 'skiff.ts')];
}
