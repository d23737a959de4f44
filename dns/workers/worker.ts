// Entry point of a DNS worker thread (thread.ts does the work). The thread is created on the DNS
// CPUs (pool.ts spawnThread): its start-up is ~0.4 s of CPU, and the agent starts DNS threads when
// the watch cache has synced, as the proxy's first full sync starts; placed only at init, that
// start-up ran on the main thread's CPU (perf sched, 50,000 Services). It turns real-time once
// loaded: real-time is for waking at a query, and the load would keep V8's GC helper threads off
// that CPU meanwhile.
import { workerData } from 'node:worker_threads';
import { placeThread, SHORT_SLICE_NS } from '../../common/cpu-split.js';
import type { ThreadData } from './protocol.js';

/**
 * Where this thread runs (common/cpu-split.ts): on the CPUs the agent set aside for DNS, if any, at
 * SCHED_FIFO priority DNS_THREAD_FIFO, so a query preempts whatever else runs there at once.
 * Otherwise at niceness DNS_THREAD_NICE (on Linux a thread has its own) with a short slice, ahead
 * of the agent's other threads, so a proxy full sync (the main thread rendering, several nft
 * loads) leaves the CPU to answers first. Not permitted (no CAP_SYS_NICE): the agent's priority.
 */
const DNS_THREAD_NICE = -5;
const DNS_THREAD_FIFO = 1;

const { serveThread } = await import('./thread.js');
serveThread(placeThread({ nice: DNS_THREAD_NICE, sliceNs: SHORT_SLICE_NS, cpus: (workerData as ThreadData | undefined)?.cpus, fifo: DNS_THREAD_FIFO }));
