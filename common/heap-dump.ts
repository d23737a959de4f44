// Heap snapshots on demand, for finding where an agent's memory goes (bench/heap-summary.ts reads
// them): with SKIFF_HEAP_SNAPSHOT_DIR set, SIGUSR2 writes the main thread's heap and every DNS
// thread's heap there. Off by default: a snapshot of a large heap stops the agent for seconds.
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { writeHeapSnapshot } from 'node:v8';
import type { Worker } from 'node:worker_threads';
import type { Logger } from './log.js';

export function heapDumpOnSignal(dir: string | undefined, threads: () => readonly Worker[], log: Logger): void {
  if (!dir) return;
  let n = 0;
  process.on('SIGUSR2', () => {
    const tag = `${process.pid}-${++n}`;
    const main = writeHeapSnapshot(join(dir, `main-${tag}.heapsnapshot`));
    log.info({ file: main }, 'heap snapshot written');
    for (const w of threads()) {
      const file = join(dir, `thread${w.threadId}-${tag}.heapsnapshot`);
      void w
        .getHeapSnapshot()
        .then((s) => pipeline(s, createWriteStream(file)))
        .then(
          () => log.info({ file }, 'heap snapshot written'),
          (err: unknown) => log.warn({ err, file }, 'heap snapshot failed'),
        );
    }
  });
}
