// A DNS thread runs on the CPUs set aside for DNS from its creation, before Node has started it,
// loaded the DNS modules or heard from the agent: its start-up must not run on the CPU of the main
// thread's first full sync.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { schedAddon } from '../../common/cpu-split.js';
import { spawnThread } from './pool.js';

const cpusOf = (tid: string): string => /Cpus_allowed_list:\s+(\S+)/.exec(readFileSync(`/proc/self/task/${tid}/status`, 'utf8'))![1]!;
const sched = schedAddon();
const cpus = sched?.getAffinity(0) ?? [];
const why = !sched ? 'the sched addon is not built (npm run build)' : cpus.length < 2 ? 'one CPU: nothing to set aside' : undefined;
if (why) console.warn(`skipping the DNS thread placement test: ${why}`);

describe.skipIf(why !== undefined || !existsSync('/proc/self/task'))('a DNS thread', () => {
  it('is created on the DNS CPUs and is still there when it is ready, before the agent sends it anything', async () => {
    const last = cpus.at(-1)!;
    const before = new Set(readdirSync('/proc/self/task'));
    // The thread copies the environment at its start: its placement line stays out of the output.
    const level = process.env.SKIFF_LOG_LEVEL;
    process.env.SKIFF_LOG_LEVEL = 'silent';
    const w = spawnThread({ cpus: [last] });
    // Read at once, while Node is still starting the thread (tens of ms before any of its code runs):
    // it was created there, and its creator already has its CPUs back.
    const born = readdirSync('/proc/self/task').filter((t) => !before.has(t));
    const bornOn = born.map(cpusOf);
    const creator = sched!.getAffinity(0);
    if (level === undefined) delete process.env.SKIFF_LOG_LEVEL;
    else process.env.SKIFF_LOG_LEVEL = level;
    try {
      expect(bornOn.length).toBeGreaterThan(0);
      expect(bornOn.every((c) => c === String(last))).toBe(true);
      expect(creator).toEqual(cpus);
      const [m] = (await once(w, 'message')) as [{ t: string }];
      expect(m.t).toBe('ready');
      const fresh = readdirSync('/proc/self/task').filter((t) => !before.has(t));
      expect(fresh.map(cpusOf)).toContain(String(last));
      // The thread that started it keeps every CPU it had.
      expect(sched!.getAffinity(0)).toEqual(cpus);
    } finally {
      await w.terminate();
    }
  }, 30_000);
});
