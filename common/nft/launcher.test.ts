// The launcher runs argv + file from its helper process, several at once, and reports each run's
// exit code; a failure carries what the command printed. A stand-in command (sh) replaces nft.
// Both helpers: the built one (`npm run build`) and the bash script used without a build.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { builtHelper } from './helper.js';
import { NftLauncher } from './launcher.js';

const dir = mkdtempSync(join(tmpdir(), 'skiff-launcher-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file whose content is a shell script; the stand-in "nft -f" runs it. */
function script(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

const built = builtHelper();
const helpers: [string, string | null][] = [['bash script', null], ...(built ? [['built helper', built] as [string, string]] : [])];
if (!built) console.warn('nft launcher: dist/bin/skiff-helper not built (npm run build): testing the bash script only');

describe.each(helpers)('nft launcher (%s)', (_, helper) => {
  it('runs overlapping transactions and tells success from failure with its output', async () => {
    const l = new NftLauncher(['sh'], undefined, helper).start();
    try {
      const slow = script('slow', 'sleep 0.3; exit 0\n');
      const fast = script('fast', 'exit 0\n');
      const bad = script('bad', 'echo "Error: Could not process rule: No such file or directory" >&2; exit 1\n');
      const order: string[] = [];
      const runs = [l.run(slow).then(() => order.push('slow')), l.run(fast).then(() => order.push('fast'))];
      await expect(l.run(bad)).rejects.toThrow(/exit 1: Error: Could not process rule/);
      await Promise.all(runs);
      // The slow one started first and finished last: the runs overlapped.
      expect(order).toEqual(['fast', 'slow']);
    } finally {
      l.close();
    }
  });

  it('fails the runs in flight when closed, and starts again on demand', async () => {
    const l = new NftLauncher(['sh'], undefined, helper);
    const pending = l.run(script('long', 'sleep 1\n'));
    l.close();
    await expect(pending).rejects.toThrow(/closed/);
    await expect(l.run(script('ok', 'exit 0\n'))).resolves.toBeUndefined();
    l.close();
  });

  it('gives the run no descriptor of its own above stderr, and no input', async () => {
    const l = new NftLauncher(['sh'], undefined, helper);
    try {
      const f = script(`fds-${String(helper !== null)}`, 'ls /proc/$$/fd; read x && echo "stdin: $x"; exit 0\n');
      await l.run(f);
      const fds = readFileSync(`${f}.out`, 'utf8').split('\n').filter((x) => /^\d+$/.test(x)).map(Number);
      // sh's own descriptor for the script file may sit above 2; nothing of the launcher's may.
      expect(fds.filter((fd) => fd > 2).length).toBeLessThanOrEqual(1);
      expect(readFileSync(`${f}.out`, 'utf8')).not.toContain('stdin:');
    } finally {
      l.close();
    }
  });

  it('refuses a path the line protocol cannot carry', () => {
    expect(() => new NftLauncher(['sh'], undefined, helper).run('/tmp/a b')).toThrow(/whitespace/);
  });
});
