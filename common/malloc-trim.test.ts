// The idle trim: the built addon really calls malloc_trim, and the timer trims only after an
// interval in which the event loop was quiet.
import { describe, expect, it } from 'vitest';
import { createLogger } from './log.js';
import { loadMemoryAddon, trimWhenQuiet } from './malloc-trim.js';

const log = createLogger('silent');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('malloc trim', () => {
  it('the built addon hands freed arena memory back (npm run build)', () => {
    const addon = loadMemoryAddon();
    if (!addon) {
      console.warn('malloc trim: dist/native/memory.node not built (npm run build)');
      return;
    }
    // Memory freed by this thread sits in its arena; a trim right after may release it (1) or
    // find nothing above the threshold (0), never anything else.
    const junk = Array.from({ length: 2000 }, () => Buffer.allocUnsafeSlow(4096));
    junk.length = 0;
    expect([0, 1]).toContain(addon.trim());
  });

  it('trims once per quiet spell: after the start and after busy intervals, not while quiet', async () => {
    let trims = 0;
    const stop = trimWhenQuiet(log, 100, { trim: () => ++trims });
    try {
      await sleep(450);
      // The start counts as work: one trim in the first quiet interval, none after.
      expect(trims).toBe(1);
      // Keep the event loop busy across a whole interval: no trim meanwhile, one once quiet again.
      const until = Date.now() + 250;
      while (Date.now() < until) {
        /* busy */
      }
      await sleep(20);
      expect(trims).toBe(1);
      await sleep(400);
      expect(trims).toBe(2);
      // Quiet throughout: no more.
      await sleep(400);
      expect(trims).toBe(2);
    } finally {
      stop();
    }
    const after = trims;
    await sleep(250);
    expect(trims).toBe(after);
  });
});
