// Polls until a check yields a value, the one way every suite waits for the cluster or the kernel
// to converge. A check that throws counts as "not yet"; its last error goes into the timeout message.

export interface UntilOptions {
  /** Poll interval. */
  everyMs?: number;
  /** Extra state for the timeout message, read only when it fires. */
  state?: () => string;
}

export async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
  { everyMs = 100, state }: UntilOptions = {},
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= end) break;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  const why = last instanceof Error ? last.message : last === undefined ? '' : String(last);
  throw new Error(`timed out waiting for ${what}${why ? `: ${why}` : ''}${state ? ` ${state()}` : ''}`);
}
