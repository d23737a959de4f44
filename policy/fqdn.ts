// FQDN egress, policy's half. Admin `domainNames` peers render as timeout sets (render.ts); the
// node's DNS server fills them from its own answers before the client sees them. This file says
// which answers feed which sets (a pure function of the desired state and the rendered table,
// published after each successful write) and writes the elements, each with the record's TTL
// bounded like Cilium's toFQDNs minimum TTL: clients and runtimes cache answers longer than a short
// TTL says (the JVM keeps them 30 s), and a TTL of 0 would allow nothing at all.
//
// The shapes match dns/answer-feed.ts's AnswerFeed structurally; the agent passes this object to
// both components, and neither imports the other.
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { DesiredState } from './desired.js';
import { FAMILY, TABLE, setName, type PolicyTable } from './render.js';
import { addressShape, type ElementChange, type ElementWriter, type KeyShape } from './setelem.js';

export interface FqdnTable {
  /** fqdn set name -> family and domainNames patterns. */
  readonly sets: Readonly<Record<string, { readonly family: 4 | 6; readonly patterns: readonly string[] }>>;
  /** Local pod address -> the fqdn sets its egress chain uses (the admin policies that select it). */
  readonly clients: Readonly<Record<string, readonly string[]>>;
}

export interface FqdnElement {
  readonly set: string;
  readonly ip: string;
  /** Seconds, as the DNS answer gave it. */
  readonly ttl: number;
}

/** Which answers feed which sets: only those to pods an admin policy with domainNames selects. */
export function fqdnTable(d: DesiredState, t: PolicyTable): FqdnTable {
  const sets: Record<string, { family: 4 | 6; patterns: readonly string[] }> = {};
  const clients: Record<string, string[]> = {};
  if (t.domainSets.size === 0) return { sets, clients };
  for (const pod of d.pods.values()) {
    const eg = pod.egress;
    if (!eg) continue;
    const names = new Set<string>();
    for (const id of [...(eg.admin ?? []), ...(eg.baseline ?? [])]) {
      const r = d.rules.get(id);
      if (!r || r.action !== 'Accept') continue;
      for (const f of [4, 6] as const) {
        const name = setName(r.setId, 'fqdn', f);
        const ds = t.domainSets.get(name);
        if (!ds) continue;
        sets[name] = { family: ds.family, patterns: [...ds.patterns] };
        names.add(name);
      }
    }
    if (names.size > 0) for (const ip of pod.ips) clients[ip] = [...names].sort();
  }
  return { sets, clients };
}

/** An address allowed for a while: an element of a timeout set. */
export interface TimedElement {
  readonly set: string;
  readonly ip: string;
  readonly timeoutS: number;
}

/**
 * The elements as additions with a timeout for setelem.ts's writer: one message per set (a set's
 * elements brought together, sets in the order they first appear), each set's shape from its
 * addresses (the feed admits only the set's own family).
 */
export function timedChanges(elements: readonly TimedElement[]): { changes: ElementChange[]; shapes: (set: string) => KeyShape | undefined } {
  const bySet = new Map<string, ElementChange[]>();
  const shapes = new Map<string, KeyShape>();
  for (const e of elements) {
    if (!bySet.has(e.set)) bySet.set(e.set, []);
    bySet.get(e.set)!.push({ verb: 'add', set: e.set, key: e.ip, value: '', timeoutS: e.timeoutS });
    const f = isIP(e.ip);
    if (!shapes.has(e.set) && (f === 4 || f === 6)) shapes.set(e.set, addressShape(f));
  }
  return { changes: [...bySet.values()].flat(), shapes: (set) => shapes.get(set) };
}

/** FqdnFeedOptions.write over netlink: the elements as one batch to the policy table (a test's own table). */
export function netlinkWrite(writer: ElementWriter, table = TABLE): (elements: readonly TimedElement[]) => Promise<void> {
  return (elements) => {
    const { changes, shapes } = timedChanges(elements);
    return writer.write(table, changes, shapes);
  };
}

/** The elements as nft commands (one transaction on one line), for writers that go through nft. */
export function elementsLine(elements: readonly TimedElement[]): string {
  return elements.map((e) => `add element ${FAMILY} ${TABLE} ${e.set} { ${e.ip} timeout ${e.timeoutS}s }`).join('; ');
}

export interface FqdnFeedOptions {
  /** Adds the elements to the policy table in one transaction: netlinkWrite (setelem.ts) in the agent. */
  readonly write: (elements: readonly TimedElement[]) => Promise<void>;
  /** Bounds on the element timeout, seconds. */
  readonly minTTL: number;
  readonly maxTTL: number;
  readonly now?: () => number;
  readonly log?: Logger;
}

const EMPTY: FqdnTable = { sets: {}, clients: {} };
const PRUNE_EVERY = 1000;

export class FqdnFeed {
  private table: FqdnTable = EMPTY;
  private text = JSON.stringify(EMPTY);
  private readonly listeners = new Set<(t: FqdnTable) => void>();
  /**
   * What was written: set -> address -> expiry (ms). A repeated lookup that would not extend the
   * allowance writes nothing, a shorter TTL never cuts another pod's longer one, and a full load
   * of the table (which empties the sets) is followed by putting the live ones back.
   */
  private readonly live = new Map<string, Map<string, number>>();
  private adds = 0;
  private readonly now: () => number;

  constructor(private readonly o: FqdnFeedOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Calls fn with the current table now and with every new one. */
  subscribe(fn: (t: FqdnTable) => void): () => void {
    this.listeners.add(fn);
    fn(this.table);
    return () => void this.listeners.delete(fn);
  }

  /** A new table, after the sets it names are in the kernel; listeners hear only real changes. */
  publish(t: FqdnTable): void {
    const text = JSON.stringify(t);
    if (text === this.text) return;
    this.text = text;
    this.table = t;
    for (const s of [...this.live.keys()]) if (!(s in t.sets)) this.live.delete(s);
    for (const fn of this.listeners) fn(t);
  }

  get current(): FqdnTable {
    return this.table;
  }

  /** Puts the addresses in force; resolves once the kernel has them. */
  async add(elements: readonly FqdnElement[]): Promise<void> {
    const now = this.now();
    if (++this.adds % PRUNE_EVERY === 0) this.prune(now);
    const cmds: TimedElement[] = [];
    const written: [Map<string, number>, string, number][] = [];
    for (const e of elements) {
      const set = this.table.sets[e.set];
      // A set a policy change just removed, or an address that is not one: nothing to write.
      if (!set || isIP(e.ip) !== set.family) continue;
      const ttl = Math.min(Math.max(Math.ceil(e.ttl), this.o.minTTL), this.o.maxTTL);
      const until = now + ttl * 1000;
      let m = this.live.get(e.set);
      if (!m) this.live.set(e.set, (m = new Map()));
      // Already allowed about as long (within a second): the kernel needs no write.
      if ((m.get(e.ip) ?? 0) >= until - Math.min(1000, ttl * 500)) continue;
      cmds.push({ set: e.set, ip: e.ip, timeoutS: ttl });
      written.push([m, e.ip, until]);
    }
    if (cmds.length === 0) return;
    await this.o.write(cmds);
    for (const [m, ip, until] of written) if ((m.get(ip) ?? 0) < until) m.set(ip, until);
  }

  /** After a full load emptied the sets: the allowances still running go back in. */
  async restore(): Promise<void> {
    const now = this.now();
    this.prune(now);
    const cmds: TimedElement[] = [];
    for (const [set, m] of this.live) for (const [ip, until] of m) cmds.push({ set, ip, timeoutS: Math.ceil((until - now) / 1000) });
    if (cmds.length === 0) return;
    try {
      await this.o.write(cmds);
      this.o.log?.info({ elements: cmds.length }, 'policy: FQDN allowances restored after a full load');
    } catch (e) {
      this.live.clear();
      this.o.log?.warn({ err: (e as Error).message }, 'policy: FQDN allowances lost in a full load; pods get them back at their next lookup');
    }
  }

  private prune(now: number): void {
    for (const [set, m] of this.live) {
      for (const [ip, until] of m) if (until <= now) m.delete(ip);
      if (m.size === 0) this.live.delete(set);
    }
  }
}
