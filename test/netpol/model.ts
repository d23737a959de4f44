// The netpol suite's world and its truth tables, shaped like upstream's netpol e2e model
// (test/e2e/network/netpol: Model, Reachability, TruthTable) and written afresh: three namespaces
// with three pods each, every ordered pair expected allowed or denied per port and protocol.
// Pure: no I/O, so the expectations and the diff printing are unit-tested without root.

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const POD_NAMES = ['a', 'b', 'c'] as const;
export type Ns = (typeof NAMESPACES)[number];
export type PodName = (typeof POD_NAMES)[number];
/** "x/a" */
export type PodId = `${Ns}/${PodName}`;
export type Protocol = 'TCP' | 'UDP';
export type Port = 80 | 81;

export const PODS: readonly PodId[] = NAMESPACES.flatMap((ns) => POD_NAMES.map((p) => `${ns}/${p}` as PodId));

/** The label every namespace carries as kube-apiserver sets it (the sandbox's API server does not). */
export const NS_NAME_LABEL = 'kubernetes.io/metadata.name';
export const baseNamespaceLabels = (ns: Ns): Record<string, string> => ({ [NS_NAME_LABEL]: ns, ns });
export const basePodLabels = (pod: PodName): Record<string, string> => ({ pod });
export const portName = (port: Port, proto: Protocol): string => `serve-${port}-${proto.toLowerCase()}`;

/** A pattern like upstream's Peer: unset fields match any namespace or pod. */
export interface Peer {
  readonly ns?: Ns;
  readonly pod?: PodName;
}

const matches = (p: Peer, id: PodId): boolean => {
  const [ns, pod] = id.split('/') as [Ns, PodName];
  return (p.ns === undefined || p.ns === ns) && (p.pod === undefined || p.pod === pod);
};

/** Expected connectivity from every pod to every pod; self-connections are never compared (upstream ignores loopback). */
export class Reachability {
  private readonly cells = new Map<string, boolean>();

  constructor(defaultAllowed = true) {
    for (const from of PODS) for (const to of PODS) this.cells.set(`${from}>${to}`, defaultAllowed);
  }

  get(from: PodId, to: PodId): boolean {
    return this.cells.get(`${from}>${to}`)!;
  }

  expect(from: PodId, to: PodId, allowed: boolean): this {
    this.cells.set(`${from}>${to}`, allowed);
    return this;
  }

  expectPeer(from: Peer, to: Peer, allowed: boolean): this {
    for (const f of PODS) for (const t of PODS) if (matches(from, f) && matches(to, t)) this.expect(f, t, allowed);
    return this;
  }

  /** Everything into `to`. */
  expectAllIngress(to: PodId, allowed: boolean): this {
    return this.expectPeer({}, peerOf(to), allowed);
  }

  /** Everything out of `from`. */
  expectAllEgress(from: PodId, allowed: boolean): this {
    return this.expectPeer(peerOf(from), {}, allowed);
  }
}

export const peerOf = (id: PodId): Peer => {
  const [ns, pod] = id.split('/') as [Ns, PodName];
  return { ns, pod };
};

/** The ordered pairs a matrix probes: every pod to every other pod. */
export const PAIRS: readonly (readonly [PodId, PodId])[] = PODS.flatMap((f) => PODS.filter((t) => t !== f).map((t) => [f, t] as const));

export type Observed = ReadonlyMap<string, boolean>;
export const pairKey = (from: PodId, to: PodId): string => `${from}>${to}`;

/** A truth table read as if it had been observed: how one table is compared with another. */
export const asObserved = (r: Reachability): Observed => new Map(PAIRS.map(([f, t]) => [pairKey(f, t), r.get(f, t)]));

export interface Comparison {
  readonly wrong: number;
  readonly total: number;
  /** Expected / observed / mismatches as an upstream-style truth table (rows from, columns to). */
  readonly text: string;
}

/**
 * Compares an observed matrix with the expectation. In the printed tables `.` is allowed, `X`
 * denied, `-` a self pair (not probed); the third table marks mismatches with `X`.
 */
export function compare(expected: Reachability, observed: Observed, title: string): Comparison {
  let wrong = 0;
  const grid = (cell: (f: PodId, t: PodId) => string): string => {
    const header = `       ${PODS.map((p) => p.padEnd(4)).join('')}`;
    return [header, ...PODS.map((f) => `  ${f.padEnd(5)}${PODS.map((t) => (f === t ? '-' : cell(f, t)).padEnd(4)).join('')}`)].join('\n');
  };
  const mark = (b: boolean | undefined): string => (b === undefined ? '?' : b ? '.' : 'X');
  for (const [f, t] of PAIRS) if (observed.get(pairKey(f, t)) !== expected.get(f, t)) wrong++;
  const text = [
    `${title}: ${wrong} of ${PAIRS.length} pairs wrong`,
    'expected:',
    grid((f, t) => mark(expected.get(f, t))),
    'observed:',
    grid((f, t) => mark(observed.get(pairKey(f, t)))),
    'mismatches (X):',
    grid((f, t) => (observed.get(pairKey(f, t)) === expected.get(f, t) ? '.' : 'X')),
  ].join('\n');
  return { wrong, total: PAIRS.length, text };
}
