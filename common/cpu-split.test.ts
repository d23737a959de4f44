// Which CPUs the DNS threads get, what the agent does with the others, how a DNS thread places
// itself (with a recording Sched), and the addon's syscalls in a thread of their own.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { dnsCpus, keepToCpus, placeThread, reserveDnsCpus, splitCpus, startOnCpus, type Sched } from './cpu-split.js';
import { createLogger } from './log.js';
import { projectRoot } from './self.js';

const log = createLogger('silent');
const addon = join(projectRoot, 'dist', 'native', 'sched.node');

/** A Sched that records its calls; `refuse` names the calls that fail with EPERM. */
function recording(allowed: number[], refuse: readonly string[] = []): Sched & { calls: string[] } {
  const calls: string[] = [];
  const call = (what: string): void => {
    calls.push(what);
    if (refuse.some((r) => what.startsWith(r))) throw Object.assign(new Error('Operation not permitted'), { code: 'EPERM' });
  };
  return {
    calls,
    getAffinity: () => allowed,
    setAffinity: (tid, cpus) => call(`affinity ${tid === 0 ? 'self' : 'tid'} ${cpus.join(',')}`),
    getNice: () => 3,
    setLatency: (nice, slice) => call(`latency ${nice} ${slice}`),
    setFifo: (prio) => call(`fifo ${prio}`),
  };
}

describe('splitCpus', () => {
  it.each([
    { allowed: [], threads: 1, want: undefined },
    { allowed: [0], threads: 1, want: undefined },
    { allowed: [0, 1], threads: 0, want: undefined },
    { allowed: [0, 1], threads: 1, want: { bulk: [0], dns: [1] } },
    // As many threads as CPUs asks for throughput: no CPU is set aside.
    { allowed: [0, 1], threads: 2, want: undefined },
    { allowed: [0, 1, 2, 3], threads: 1, want: { bulk: [0, 1], dns: [2, 3] } },
    { allowed: [0, 1, 2, 3], threads: 3, want: { bulk: [0], dns: [1, 2, 3] } },
    { allowed: [2, 5, 7], threads: 1, want: { bulk: [2, 5], dns: [7] } },
  ])('$allowed with $threads thread(s)', ({ allowed, threads, want }) => {
    expect(splitCpus(allowed, threads)).toEqual(want);
  });
});

describe('reserveDnsCpus', () => {
  it('keeps this thread to the bulk CPUs, and remembers the DNS ones', () => {
    const s = recording([0, 1, 2, 3]);
    expect(reserveDnsCpus(1, log, s)).toEqual({ bulk: [0, 1], dns: [2, 3] });
    expect(s.calls).toEqual(['affinity self 0,1']);
    expect(dnsCpus()).toEqual([2, 3]);
  });

  it('changes nothing with SKIFF_CPU_SPLIT=off (several agents on one machine)', () => {
    const s = recording([0, 1, 2, 3]);
    process.env.SKIFF_CPU_SPLIT = 'off';
    try {
      expect(reserveDnsCpus(1, log, s)).toBeUndefined();
    } finally {
      delete process.env.SKIFF_CPU_SPLIT;
    }
    expect(s.calls).toEqual([]);
  });

  it('changes nothing with one CPU', () => {
    const s = recording([0]);
    expect(reserveDnsCpus(1, log, s)).toBeUndefined();
    expect(s.calls).toEqual([]);
  });
});

describe('placeThread', () => {
  it('on CPUs of its own: kept to them, real-time', () => {
    const s = recording([0, 1]);
    expect(placeThread({ nice: -5, sliceNs: 100_000, cpus: [1], fifo: 1 }, s)).toEqual({ policy: 'fifo', sliceNs: 0, cpus: [1] });
    expect(s.calls).toEqual(['affinity self 1', 'fifo 1']);
  });

  it('without CPUs of its own: nice with a short slice, never real-time', () => {
    const s = recording([0, 1]);
    expect(placeThread({ nice: -5, sliceNs: 100_000, fifo: 1 }, s)).toEqual({ policy: 'normal', nice: -5, sliceNs: 100_000, cpus: undefined });
    expect(s.calls).toEqual(['latency -5 100000']);
  });

  it('not permitted: real-time falls back to the normal class, a higher priority to its own with the slice', () => {
    const s = recording([0, 1], ['fifo', 'latency -5']);
    expect(placeThread({ nice: -5, sliceNs: 100_000, cpus: [1], fifo: 1 }, s)).toEqual({ policy: 'normal', nice: 3, sliceNs: 100_000, cpus: [1] });
    expect(s.calls).toEqual(['affinity self 1', 'fifo 1', 'latency -5 100000', 'latency 3 100000']);
  });

  it('keepToCpus sets the CPUs alone, and says when it could not', () => {
    const s = recording([0, 1]);
    expect(keepToCpus([1], s)).toBe(true);
    expect(keepToCpus(undefined, s)).toBe(false);
    expect(s.calls).toEqual(['affinity self 1']);
    expect(keepToCpus([1], recording([0, 1], ['affinity']))).toBe(false);
  });

  it('startOnCpus creates on the given CPUs and gives the caller its own back, also when the start fails', () => {
    const s = recording([0, 1]);
    expect(startOnCpus([1], () => (s.calls.push('start'), 7), s)).toBe(7);
    expect(() => startOnCpus([1], () => { throw new Error('no thread'); }, s)).toThrow('no thread');
    expect(s.calls).toEqual(['affinity self 1', 'start', 'affinity self 0,1', 'affinity self 1', 'affinity self 0,1']);
    // Not permitted, or nothing set aside: the thread is created where the caller runs.
    const refused = recording([0, 1], ['affinity']);
    expect(startOnCpus([1], () => 'made', refused)).toBe('made');
    expect(startOnCpus(undefined, () => 'made', s)).toBe('made');
  });
});

// Needs `npm run build` (scripts/build-native.sh) like the other addons' suites.
describe.skipIf(!existsSync(addon))('the sched addon', () => {
  /** Runs `body` (CommonJS, `s` is the addon) in a new thread; resolves with what it posts. */
  const inThread = (body: string): Promise<Record<string, string>> =>
    new Promise((resolve, reject) => {
      const src = `const s = require(${JSON.stringify(addon)}); const { parentPort } = require('node:worker_threads'); const fs = require('node:fs');
        const mine = (f) => fs.readFileSync('/proc/thread-self/' + f, 'utf8');
        try { ${body} } catch (e) { parentPort.postMessage({ error: e.code + ' ' + e.message }); }`;
      const w = new Worker(src, { eval: true });
      w.once('message', (m: Record<string, string>) => void w.terminate().then(() => resolve(m)));
      w.once('error', reject);
    });
  const allowed = (): number[] =>
    /Cpus_allowed_list:\s+(\S+)/
      .exec(readFileSync('/proc/thread-self/status', 'utf8'))![1]!
      .split(',')
      .flatMap((r) => {
        const [a, b] = r.split('-').map(Number) as [number, number?];
        return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
      });

  it("sets a thread's CPUs and reads them back, the caller's unchanged", async () => {
    const last = allowed().at(-1)!;
    const m = await inThread(`s.setAffinity(0, [${last}]); parentPort.postMessage({ got: s.getAffinity(0).join(','), proc: /Cpus_allowed_list:\\s+(\\S+)/.exec(mine('status'))[1] });`);
    expect(m).toEqual({ got: String(last), proc: String(last) });
    expect(allowed().at(-1)).toBe(last);
  });

  it('refuses an empty or absent CPU set with the errno name', async () => {
    expect(await inThread(`s.setAffinity(0, [100000]); parentPort.postMessage({});`)).toEqual({ error: 'EINVAL sched_setaffinity: no CPU: Invalid argument' });
    expect((await inThread(`s.setAffinity(2147483647, [0]); parentPort.postMessage({});`)).error).toMatch(/^ESRCH /);
  });

  it('sets the normal class with a slice (where the kernel shows it), and SCHED_FIFO as root', async () => {
    const m = await inThread(`const nice = s.getNice(); s.setLatency(nice, 300000); const a = mine('sched');
      let fifo = 'skipped'; if (process.getuid() === 0) { s.setFifo(1); fifo = /policy\\s+:\\s+(\\d+)/.exec(mine('sched'))[1]; }
      parentPort.postMessage({ slice: (/se\\.slice\\s+:\\s+(\\d+)/.exec(a) || [, 'n/a'])[1], policy: /policy\\s+:\\s+(\\d+)/.exec(a)[1], fifo });`);
    expect(m.policy).toBe('0');
    if (m.slice !== 'n/a') expect(m.slice).toBe('300000');
    expect(m.fifo).toBe(process.getuid?.() === 0 ? '1' : 'skipped');
  });
});
