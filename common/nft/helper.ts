// The agent's long-lived children for nft (the launcher's and the session's spare) as the static
// `skiff-helper` (common/native/helper.c, built by `npm run build` into dist/bin) where it is
// built, and as bash scripts with the same protocol where it is not (sources under tsx before a
// build). Each child is resident for the agent's whole life: 0.7 MB for the helper, 3 MB for bash.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../self.js';

/**
 * Closes every descriptor above stderr the shell inherited: sockets a native addon opened without
 * close-on-exec (the DNS sockets) must not stay open in a long-lived child, or the next agent
 * cannot take them over or bind them. bash, because dash redirects single-digit descriptors only.
 */
const CLOSE_INHERITED = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] 2>/dev/null && eval "exec $f>&-"; done 2>/dev/null';

// One line in per run ("<id> <file>"), one line out when it ends ("<id> <exit code>"). nft's
// output goes to <file>.out, read only on failure. Each run is a background subshell, so runs
// overlap like separate spawns; `echo` writes its short line in one write(), so lines never mix.
const LAUNCH = `${CLOSE_INHERITED}; while read -r id file; do ( "$@" "$file" >"$file.out" 2>&1; echo "$id $?" ) & done`;
// Waits for one line, then becomes argv on the same pipes (stderr joined to stdout).
const SPARE = `${CLOSE_INHERITED}; read -r _ || exit 0; exec "$@" 2>&1`;

export type HelperMode = 'launch' | 'spare';

/** The built helper, if any (undefined: the bash scripts). */
export const builtHelper = (): string | undefined => {
  const f = join(projectRoot, 'dist', 'bin', 'skiff-helper');
  return existsSync(f) ? f : undefined;
};

/** Command and arguments of a helper child that runs argv (with the built helper unless `helper` is null). */
export function helperCommand(mode: HelperMode, argv: readonly string[], helper: string | null | undefined = builtHelper()): [string, string[]] {
  if (helper) return [helper, [mode, ...argv]];
  return ['bash', ['-c', mode === 'launch' ? LAUNCH : SPARE, 'bash', ...argv]];
}
