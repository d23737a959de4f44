// How to start this same program again (agents, CNI calls, workers) whether it runs from the
// compiled dist/ tree or from TypeScript sources under tsx.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', import.meta.url.includes('/dist/') ? '..' : '');

/**
 * V8 flags the agent runs with, wherever it is started: the image's entrypoint (Dockerfile) and
 * the sandbox's node agents, and so the footprint bench. They go on node's command line because
 * NODE_OPTIONS refuses --optimize-for-size. A young generation of a few MB instead of up to 48 MB
 * per heap (the main thread's and the DNS thread's): what survives a scavenge is the watch
 * cache's slow trickle, so small semi-spaces cost little CPU and save resident memory
 * (`npm run bench -- footprint --node-flags ...` compares; figures in manifests/base/daemonset.yaml).
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--optimize-for-size'];

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
