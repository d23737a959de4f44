// The agent's small native addons (common/native/*.c, built by `npm run build` into dist/native).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * dist/native/<name>.node, seen from dist/common (compiled) and from common/ (sources under tsx);
 * undefined when it is not built or does not load: each caller has a way on without it.
 */
export function loadNativeAddon<T>(name: string): T | undefined {
  const path = [join(here, `../native/${name}.node`), join(here, `../dist/native/${name}.node`)].find((p) => existsSync(p));
  try {
    return path ? (createRequire(import.meta.url)(path) as T) : undefined;
  } catch {
    return undefined;
  }
}
