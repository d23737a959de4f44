// Every feature of the agent has this shape (kindnet's NewXAgent + Run + CleanRules): run until the
// signal aborts, and cleanup() removes whatever an earlier run left behind, so a disabled feature
// actively undoes itself.
export interface Component {
  readonly name: string;
  run(signal: AbortSignal): Promise<void>;
  cleanup(): Promise<void>;
}

/**
 * Resolves once the signal has aborted, at once if it already has: an abort event fires only once,
 * so a component that starts waiting after another component's failure aborted the agent would
 * otherwise wait forever and keep the agent from exiting.
 */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
