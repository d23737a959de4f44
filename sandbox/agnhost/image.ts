// Which containers the sandbox runs with its agnhost stand-in, and the command line for it: the
// image's entrypoint is /agnhost, so `args` alone (or a command naming /agnhost) are its arguments.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../common/self.js';

const AGNHOST_IMAGE = /(^|\/)agnhost(:[^/]*|@sha256:[0-9a-f]+)?$/;

export function isAgnhostImage(image: string | undefined): boolean {
  return !!image && AGNHOST_IMAGE.test(image);
}

/** How to start sandbox/agnhost/main, compiled or from sources under tsx. */
export function agnhostCommand(): string[] {
  const built = join(projectRoot, 'dist', 'sandbox', 'agnhost', 'main.js');
  if (import.meta.url.includes('/dist/') && existsSync(built)) return [process.execPath, built];
  return [process.execPath, '--import', import.meta.resolve('tsx'), join(projectRoot, 'sandbox', 'agnhost', 'main.ts')];
}

/**
 * The argv of an agnhost container: `args` after the stand-in when there is no command, or the
 * command with /agnhost replaced; undefined when the command runs something else (a shell…).
 */
export function agnhostArgv(command: readonly string[] | undefined, args: readonly string[] | undefined): string[] | undefined {
  if (!command || command.length === 0) return [...agnhostCommand(), ...(args ?? [])];
  if (command[0] === '/agnhost' || command[0] === 'agnhost') return [...agnhostCommand(), ...command.slice(1), ...(args ?? [])];
  return undefined;
}
