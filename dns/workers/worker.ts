// Entry point of a DNS worker thread (thread.ts does the work). The thread takes its place first
// and loads everything else afterwards: its start-up is ~0.4 s of CPU, and the agent starts DNS
// threads when the watch cache has synced, as the proxy's first full sync starts. Placed only at
// init, that start-up ran on the main thread's CPU (perf sched, 50,000 Services).
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

const placement = placeThread({ nice: DNS_THREAD_NICE, sliceNs: SHORT_SLICE_NS, cpus: (workerData as ThreadData | undefined)?.cpus, fifo: DNS_THREAD_FIFO });
const { serveThread } = await import('./thread.js');
serveThread(placement);
