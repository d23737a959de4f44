// Keeps the DNS threads' CPUs free of the agent's other work, and lets a DNS thread run the moment
// a query wakes it (issue 16: DNS p99 while the proxy does a full sync).
//
// What delayed answers, measured with `perf sched` during a 10,000-Service full sync on a 2-core
// node (kernel 6.18, PREEMPT_NONE, HZ=250): not the DNS thread's own work but its wait to run.
// - Kernel work is not preempted on such a kernel. The proxy's nf_tables batches
//   (common/nft/batch.ts) run inside the main thread's sendmsg for 7-8 ms each, an `nft -f` commit
//   for up to 12 ms; a DNS thread woken on that CPU waited that long (11.6 ms once).
// - A woken thread of the normal class waited for the running one up to the next tick (4 ms),
//   whatever its niceness or requested slice: at nice -20 with a 0.1 ms slice (sched_setattr's
//   sched_runtime, Linux 6.12+) it still waited 3.9 ms behind a V8 GC helper at nice 0.
// So the main thread, and everything it starts afterwards (libuv's pool, the nft helpers and their
// nft runs), keeps to one part of the CPUs, and the DNS threads to the other part, at SCHED_FIFO
// priority 1: a real-time thread preempts a normal one at once. V8's GC helper threads (started
// before any JavaScript) stay free to use every CPU: kept to the main thread's part as well, the
// bench's client waited less (p99 0.6-0.8 ms against 2-4) but the full sync at 50,000 Services
// took 10-17% longer. A real-time DNS thread cannot take more than the CPUs set aside for it (and
// the kernel keeps 5% of each for normal threads); where no CPUs are set aside (one CPU, or as many DNS threads
// as CPUs) DNS threads stay in the normal class at nice -5 with a short slice. Without the
// privilege (CAP_SYS_NICE) they keep the agent's priority. The syscalls: common/native/sched.c.
import { setPriority } from 'node:os';
import type { Logger } from './log.js';
import { loadNativeAddon } from './native-addon.js';

export interface Sched {
  /** CPUs the thread (0: the caller) may run on, ascending. */
  getAffinity(tid: number): number[];
  setAffinity(tid: number, cpus: readonly number[]): void;
  /** The calling thread's niceness. */
  getNice(): number;
  /** SCHED_OTHER with this niceness and requested slice (ns; 0: the kernel's default) for the calling thread. */
  setLatency(nice: number, sliceNs: number): void;
  /** SCHED_FIFO at this priority for the calling thread. */
  setFifo(priority: number): void;
}

let addon: Sched | null | undefined;

/** The sched addon from dist/native (seen from dist/common and from the sources), or undefined. */
export function schedAddon(): Sched | undefined {
  if (addon === undefined) addon = loadNativeAddon<Sched>('sched') ?? null;
  return addon ?? undefined;
}

export interface CpuSplit {
  /** The agent's main thread and what it starts. */
  readonly bulk: readonly number[];
  /** The DNS threads. */
  readonly dns: readonly number[];
}

/**
 * The last half of the allowed CPUs (at least one per DNS thread) for DNS, the rest for the bulk
 * work. No split with one CPU, or when the DNS threads would need them all (as many threads as
 * CPUs is asking for throughput, not for a quiet core).
 */
export function splitCpus(allowed: readonly number[], dnsThreads: number): CpuSplit | undefined {
  const n = allowed.length;
  if (dnsThreads < 1 || n < 2 || dnsThreads >= n) return undefined;
  const dns = Math.max(dnsThreads, Math.floor(n / 2));
  return { bulk: allowed.slice(0, n - dns), dns: allowed.slice(n - dns) };
}

let reserved: readonly number[] | undefined;

/**
 * `SKIFF_CPU_SPLIT=off`: no split. Set where several agents share one machine (the sandbox, the
 * gauntlet): each would keep its main thread to the same first CPUs and its DNS threads, real-time,
 * to the same last ones.
 */
export const CPU_SPLIT_ENV = 'SKIFF_CPU_SPLIT';

/** The DNS threads' CPUs once reserveDnsCpus() split them off; undefined: they may run anywhere. */
export function dnsCpus(): readonly number[] | undefined {
  return reserved;
}

/**
 * Keeps the calling (main) thread, and so every thread and child process it starts from now on, off
 * the CPUs it sets aside for `dnsThreads` DNS threads (dnsCpus()). Call it before the agent starts
 * any child process: one started earlier keeps its CPUs. Without the addon, or with one CPU,
 * nothing changes.
 */
export function reserveDnsCpus(dnsThreads: number, log: Logger, sched = schedAddon()): CpuSplit | undefined {
  if (process.env[CPU_SPLIT_ENV] === 'off') {
    log.info(`cpu: ${CPU_SPLIT_ENV}=off: DNS threads share every CPU with the agent`);
    return undefined;
  }
  if (!sched) {
    log.debug('sched.node not built: DNS threads share every CPU with the agent');
    return undefined;
  }
  try {
    const split = splitCpus(sched.getAffinity(0), dnsThreads);
    if (!split) return undefined;
    sched.setAffinity(0, split.bulk);
    reserved = split.dns;
    log.info({ bulkCpus: split.bulk, dnsCpus: split.dns }, 'cpu: DNS threads get CPUs of their own');
    return split;
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'cpu: cannot set the main thread affinity; DNS threads share every CPU');
    return undefined;
  }
}

/** A latency-sensitive thread's slice: the kernel's minimum (0.1 ms). */
export const SHORT_SLICE_NS = 100_000;

export interface Placement {
  /** 'fifo': SCHED_FIFO; 'normal': SCHED_OTHER at `nice` (undefined: unknown). */
  readonly policy: 'fifo' | 'normal';
  readonly nice?: number;
  /** The requested slice in ns, when the kernel took it (0: the default). */
  readonly sliceNs: number;
  /** The CPUs the thread is kept to; undefined: any. */
  readonly cpus?: readonly number[];
}

/**
 * Keeps the calling thread to `cpus` and nothing more (its class and priority stay). Best effort:
 * false when it could not.
 */
export function keepToCpus(cpus: readonly number[] | undefined, sched = schedAddon()): boolean {
  if (!sched || !cpus || cpus.length === 0) return false;
  try {
    sched.setAffinity(0, cpus);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `start` (which creates a thread) while the calling thread is kept to `cpus`, then gives the
 * caller its CPUs back: a new thread takes its creator's affinity, so it runs on `cpus` from its
 * first instruction (a Node worker's own start-up, before any of its code could move it, is ~80 ms
 * of CPU). Without `cpus` or the addon, just `start`.
 */
export function startOnCpus<T>(cpus: readonly number[] | undefined, start: () => T, sched = schedAddon()): T {
  let mine: number[] | undefined;
  try {
    mine = sched?.getAffinity(0);
  } catch {
    mine = undefined;
  }
  if (!mine || !keepToCpus(cpus, sched)) return start();
  try {
    return start();
  } finally {
    keepToCpus(mine, sched);
  }
}

/**
 * Places the calling thread. With `cpus` (CPUs set aside for it): kept to them, at SCHED_FIFO
 * `fifo` if given and permitted. Otherwise, or where not permitted: niceness `nice` (below the
 * current one needs CAP_SYS_NICE; without it the thread keeps its niceness) and a short slice.
 * Best effort, never throws.
 */
export function placeThread(o: { nice: number; sliceNs: number; cpus?: readonly number[]; fifo?: number }, sched = schedAddon()): Placement {
  if (!sched) {
    try {
      setPriority(o.nice);
      return { policy: 'normal', nice: o.nice, sliceNs: 0 };
    } catch {
      return { policy: 'normal', sliceNs: 0 };
    }
  }
  let cpus: readonly number[] | undefined;
  if (o.cpus && o.cpus.length > 0) {
    try {
      sched.setAffinity(0, o.cpus);
      cpus = o.cpus;
    } catch {
      /* any CPU (a cpuset that no longer holds them) */
    }
  }
  if (cpus && o.fifo !== undefined) {
    try {
      sched.setFifo(o.fifo);
      return { policy: 'fifo', sliceNs: 0, cpus };
    } catch {
      /* not permitted: the normal class below */
    }
  }
  let nice: number | undefined;
  let sliceNs = 0;
  try {
    sched.setLatency(o.nice, o.sliceNs);
    nice = o.nice;
    sliceNs = o.sliceNs;
  } catch {
    // Not permitted to raise the priority: the slice alone needs no privilege.
    try {
      nice = sched.getNice();
      sched.setLatency(nice, o.sliceNs);
      sliceNs = o.sliceNs;
    } catch {
      /* the kernel's defaults */
    }
  }
  return { policy: 'normal', nice, sliceNs, cpus };
}
