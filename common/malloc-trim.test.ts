// The idle trim: the timer trims only after an interval in which the event loop was quiet (the
// addon's own release is checked in memory.test.ts).
import { describe, expect, it } from 'vitest';
import { createLogger } from './log.js';
import { trimWhenQuiet } from './malloc-trim.js';

const log = createLogger('silent');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('malloc trim', () => {
  it('trims once per quiet spell: after the start and after busy intervals, not while quiet', async () => {
    let trims = 0;
    const stop = trimWhenQuiet(log, 100, { trim: () => ++trims > 0 });
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
