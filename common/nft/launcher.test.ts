// The launcher runs argv + file from its shell, several at once, and reports each run's exit
// code; a failure carries what the command printed. A stand-in command (sh) replaces nft.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NftLauncher } from './launcher.js';

const dir = mkdtempSync(join(tmpdir(), 'skiff-launcher-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file whose content is a shell script; the stand-in "nft -f" runs it. */
function script(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

describe('nft launcher', () => {
  it('runs overlapping transactions and tells success from failure with its output', async () => {
    const l = new NftLauncher(['sh']).start();
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
    const l = new NftLauncher(['sh']);
    const pending = l.run(script('long', 'sleep 1\n'));
    l.close();
    await expect(pending).rejects.toThrow(/closed/);
    await expect(l.run(script('ok', 'exit 0\n'))).resolves.toBeUndefined();
    l.close();
  });

  it('refuses a path the line protocol cannot carry', () => {
    expect(() => new NftLauncher(['sh']).run('/tmp/a b')).toThrow(/whitespace/);
  });
});
