// Per-stage timestamps of CNI requests, for `npm run bench -- cni --profile`. Off unless
// SKIFF_CNI_TRACE names a file: then each request served over the socket appends one JSON line
// { command, marks: [[stage, epoch ms with µs], ...] }. Marks are wall-clock so the bench can put
// them beside its own spawn and exit times of the shim.
import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export type Marks = [string, number][];

const file = process.env.SKIFF_CNI_TRACE;
const als = new AsyncLocalStorage<Marks>();

export const now = (): number => performance.timeOrigin + performance.now();

export const tracing = (): boolean => file !== undefined && file !== '';

/** Runs fn with a fresh mark list when tracing; fn unchanged otherwise. */
export function traced<T>(first: Marks | undefined, fn: () => T): T {
  return first ? als.run(first, fn) : fn();
}

/** Records that `stage` ended now, in the request being traced (nothing when not tracing). */
export function mark(stage: string): void {
  als.getStore()?.push([stage, now()]);
}

export function writeTrace(command: string, marks: Marks): void {
  if (file) appendFileSync(file, JSON.stringify({ command, marks }) + '\n');
}
