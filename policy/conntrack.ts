// Strict mode: when a policy change denies connections that conntrack already knows, their
// entries are deleted, so the next packet of such a flow is judged as new and dropped (what
// kube-network-policies does by default). The decision is the engine's (`evaluate` on the same
// desired state the rules come from); this file only reads conntrack's table and picks entries.
// The agent reads and deletes over ctnetlink (ctnetlink.ts); conntrack(8) (listFlows,
// deleteFlows) is the fallback when the kernel refuses the dump, and the path of a caller whose
// runner enters another namespace.
import type { Protocol } from './model.js';
import { evaluate, type DesiredState, type Direction } from './desired.js';
import { CommandError } from '../common/exec.js';
import type { Runner } from './exec.js';

export interface Tuple {
  readonly src: string;
  readonly dst: string;
  readonly sport: number;
  readonly dport: number;
}

export interface Flow {
  readonly protocol: Protocol;
  readonly family: 4 | 6;
  /** As the client sent it (before the proxy's DNAT). */
  readonly orig: Tuple;
  /** As the server answers: reply.src is the pod the flow really reached, reply.sport its port. */
  readonly reply: Tuple;
  /** The kernel's id of the entry and its zone (when not 0), from a ctnetlink dump. */
  readonly id?: number;
  readonly zone?: number;
}

/** Where strict mode reads and deletes entries. */
export interface ConntrackTable {
  /** Every family's entries, minus what parseConntrack skips too. */
  list(): Promise<Flow[]>;
  /**
   * Deletes the entries; one already gone is fine. Returns how many were deleted. `still` is
   * asked right before deleting (the rules may have changed since the flows were judged).
   */
  delete(flows: readonly Flow[], still?: (f: Flow) => boolean): Promise<number>;
}

/** conntrack(8) processes through the runner. */
export function execConntrack(run: Runner): ConntrackTable {
  return { list: () => listFlows(run), delete: (flows, still) => deleteFlows(run, flows, still) };
}

/**
 * `primary` (ctnetlink), and `fallback` (conntrack(8)) for a cut whose listing failed: after a
 * refusal by the kernel (code `refusedCode`: no ctnetlink) for good, after a timeout or socket
 * error for that cut only. `onFallback` is told each time.
 */
export function withFallback(primary: ConntrackTable, fallback: ConntrackTable, onFallback: (e: Error, forGood: boolean) => void, refusedCode = 'ERR_POLICY_CONNTRACK'): ConntrackTable {
  let refused = false;
  // Cuts run one at a time (the syncer's queue): the deletes go where the listing came from.
  let current = primary;
  return {
    async list() {
      if (!refused) {
        try {
          current = primary;
          return await primary.list();
        } catch (e) {
          refused = (e as { code?: string }).code === refusedCode;
          onFallback(e as Error, refused);
        }
      }
      current = fallback;
      return fallback.list();
    },
    delete: (flows, still) => current.delete(flows, still),
  };
}

const PROTOCOLS: Record<string, Protocol> = { tcp: 'TCP', udp: 'UDP', sctp: 'SCTP' };

/**
 * TCP entries of connections already over: they carry no more packets, and a new SYN on the same
 * tuple starts over as a new connection (judged by the rules). Cutting them is pure cost, and a
 * busy pod has thousands (every closed connection waits 120 s in TIME_WAIT).
 */
const OVER = new Set(['TIME_WAIT', 'CLOSE']);

/**
 * Parses `conntrack -L` text; lines of other protocols (icmp), TCP connections that are over, and
 * anything unreadable are skipped.
 */
export function parseConntrack(text: string): Flow[] {
  const flows: Flow[] = [];
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    const protocol = PROTOCOLS[words[0] ?? ''];
    if (!protocol) continue;
    if (protocol === 'TCP' && OVER.has(words[3] ?? '')) continue;
    const tuples: Record<string, string>[] = [{}, {}];
    let which = 0;
    for (const w of words) {
      const eq = w.indexOf('=');
      if (eq <= 0) continue;
      const k = w.slice(0, eq);
      if (k !== 'src' && k !== 'dst' && k !== 'sport' && k !== 'dport') continue;
      // The second src= starts the reply direction.
      if (k === 'src' && tuples[0]!.src !== undefined) which = 1;
      tuples[which]![k] = w.slice(eq + 1);
    }
    const [o, r] = tuples.map((t) => (t.src && t.dst && t.sport && t.dport ? { src: t.src, dst: t.dst, sport: Number(t.sport), dport: Number(t.dport) } : undefined));
    if (!o || !r) continue;
    flows.push({ protocol, family: o.src.includes(':') ? 6 : 4, orig: o, reply: r });
  }
  return flows;
}

export interface DeniedFlow {
  readonly flow: Flow;
  readonly pod: string;
  readonly direction: Direction;
}

/**
 * The flows the desired state now denies. A flow is judged where the rules judge it: egress of a
 * local pod that opened it (destination = the endpoint it reached, after DNAT), ingress of a local
 * pod it reached (source = the client as forwarded). `nodeAddresses`: connections the node itself
 * opened never pass the forward hook (kubelet probes always pass), so they are never cut.
 */
export function deniedFlows(d: DesiredState, flows: readonly Flow[], nodeAddresses: ReadonlySet<string>): DeniedFlow[] {
  const podOf = new Map<string, string>();
  for (const p of d.pods.values()) for (const ip of p.ips) podOf.set(ip, p.key);
  const out: DeniedFlow[] = [];
  for (const f of flows) {
    const client = f.orig.src;
    const server = f.reply.src;
    const port = f.reply.sport;
    const from = podOf.get(client);
    if (from && evaluate(d, from, 'egress', server, f.protocol, port)?.allowed === false) {
      out.push({ flow: f, pod: from, direction: 'egress' });
      continue;
    }
    const to = podOf.get(server);
    if (to && !nodeAddresses.has(client) && evaluate(d, to, 'ingress', client, f.protocol, port)?.allowed === false) out.push({ flow: f, pod: to, direction: 'ingress' });
  }
  return out;
}

/**
 * Whether a transaction can deny anything that was allowed. Only additions to peer sets (a new
 * peer pod somewhere in the cluster: the common case) cannot; anything else (an address entering
 * the ingress/egress maps, a rewritten chain, a deleted element) may, and strict mode then reads
 * conntrack. Saves listing the node's conntrack table for every pod start elsewhere.
 */
export function mayDeny(text: string): boolean {
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^add element \S+ \S+ (\S+) /.exec(line);
    if (!m || /^(ingress|egress)[46]$/.test(m[1]!)) return true;
  }
  return false;
}

/** conntrack(8) arguments deleting exactly this entry (its original tuple). */
export function deleteArgs(f: Flow): string[] {
  return ['-D', '-f', f.family === 6 ? 'ipv6' : 'ipv4', '-p', f.protocol.toLowerCase(), '--orig-src', f.orig.src, '--orig-dst', f.orig.dst, '--sport', String(f.orig.sport), '--dport', String(f.orig.dport)];
}

/** Lists both families' entries. */
export async function listFlows(run: Runner): Promise<Flow[]> {
  const texts = await Promise.all(['ipv4', 'ipv6'].map((fam) => run('conntrack', ['-L', '-f', fam])));
  return parseConntrack(texts.join('\n'));
}

/** conntrack processes deleting at once: one process per entry, so not one after the other. */
const PARALLEL = 8;

/**
 * Deletes the entries; one already gone (exit 1) is fine. Returns how many were deleted. `still`
 * is asked right before each delete (the rules may have changed since the flows were judged).
 */
export async function deleteFlows(run: Runner, flows: readonly Flow[], still: (f: Flow) => boolean = () => true): Promise<number> {
  let n = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < flows.length) {
      const f = flows[next++]!;
      if (!still(f)) continue;
      try {
        await run('conntrack', deleteArgs(f));
        n++;
      } catch (e) {
        if (!(e instanceof CommandError && e.exitCode === 1)) throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, flows.length) }, worker));
  return n;
}
