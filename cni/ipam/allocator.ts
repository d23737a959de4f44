// The allocation decision alone: round-robin from after the last address handed out, like
// host-local, so a just-released address is not reused at once (a stale conntrack entry or ARP
// cache elsewhere would otherwise send the old pod's traffic to the new one).
import { CniCode, CniError } from '../spec/errors.js';
import { formatIP, type IPRange } from './ipnet.js';

export function nextFree(range: IPRange, used: ReadonlySet<bigint>, lastReserved: bigint | undefined): bigint {
  const span = range.last - range.first + 1n;
  let start = lastReserved !== undefined && lastReserved >= range.first && lastReserved <= range.last ? lastReserved + 1n : range.first;
  if (start > range.last) start = range.first;
  // At most used.size + 1 steps are needed to find a hole, even in a /64.
  const limit = BigInt(used.size) + 1n < span ? BigInt(used.size) + 1n : span;
  let cur = start;
  for (let i = 0n; i < limit; i++) {
    if (!used.has(cur)) return cur;
    cur = cur === range.last ? range.first : cur + 1n;
  }
  throw new CniError(
    CniCode.IPAMExhausted,
    `no IP addresses available in range ${range.cidr}`,
    `all ${span} addresses from ${formatIP(range.first, range.family)} to ${formatIP(range.last, range.family)} are allocated`,
  );
}
