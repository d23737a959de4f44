// How to start this same program again (agents, CNI calls, workers) whether it runs from the
// compiled dist/ tree or from TypeScript sources under tsx.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', import.meta.url.includes('/dist/') ? '..' : '');

/**
 * V8 flags the agent runs with, wherever it is started: the image's entrypoint (Dockerfile) and
 * the sandbox's node agents, and so the footprint bench. On node's command line, not
 * NODE_OPTIONS, like any V8 flag that NODE_OPTIONS may refuse. A young generation of a few MB
 * instead of up to 48 MB per heap (the main thread's and the DNS thread's): at 50,000 Services
 * 669 MiB instead of 789 MiB, full sync 5.7 s against 5.3 s (one run each, load 1). Not
 * --optimize-for-size: 526 MiB, but the full sync took 10.7 s
 * (`npm run bench -- footprint --skip sandbox,10k --node-flags=...` compares).
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

/** `skiff agent` as the image runs it: skiffCommand() with AGENT_NODE_FLAGS for node. */
export function agentCommand(flags: readonly string[] = AGENT_NODE_FLAGS): string[] {
  const [node, ...rest] = skiffCommand();
  return [node!, ...flags, ...rest, 'agent'];
}

export function skiffCommand(): string[] {
  const built = join(projectRoot, 'dist', 'bin', 'skiff.js');
  if (import.meta.url.includes('/dist/') && existsSync(built)) return [process.execPath, built];
  // A resolved loader URL, so the child finds tsx whatever its working directory.
  return [process.execPath, '--import', import.meta.resolve('tsx'), join(projectRoot, 'bin', 'skiff.ts')];
}
