// The DNS message model shared by every plugin. Names are kept in presentation form without the
// trailing dot ("" is the root) and with their original case: the question's case is echoed back
// to the client (RFC 4343), and comparisons lowercase explicitly.

export const Type = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  HINFO: 13,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const;

export const CLASS_IN = 1;

const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Type).map(([k, v]) => [v, k]));
const RCODE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Rcode).map(([k, v]) => [v, k]));

export function typeName(t: number): string {
  return TYPE_NAMES[t] ?? `TYPE${t}`;
}
export function rcodeName(r: number): string {
  return RCODE_NAMES[r] ?? `RCODE${r}`;
}
export function typeFromName(s: string): number | undefined {
  const u = s.toUpperCase();
  if (u in Type) return Type[u as keyof typeof Type];
  const m = /^TYPE(\d+)$/.exec(u);
  return m ? Number(m[1]) : undefined;
}

export interface SOAData {
  readonly mname: string;
  readonly rname: string;
  readonly serial: number;
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  readonly minimum: number;
}
export interface SRVData {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}
export interface MXData {
  readonly preference: number;
  readonly exchange: string;
}
export interface HINFOData {
  readonly cpu: string;
  readonly os: string;
}

/**
 * rdata by type: A/AAAA address text; NS/CNAME/PTR a name; TXT its strings; others typed objects;
 * any type we do not model stays raw bytes (RFC 3597: such rdata never holds compressed names).
 */
export type RData = string | readonly string[] | SOAData | SRVData | MXData | HINFOData | Uint8Array;

export interface RR {
  readonly name: string;
  readonly type: number;
  readonly class: number;
  readonly ttl: number;
  readonly data: RData;
}

export interface Question {
  readonly name: string;
  readonly type: number;
  readonly class: number;
}

export interface EdnsOption {
  readonly code: number;
  readonly data: Uint8Array;
}

export interface Edns {
  readonly udpSize: number;
  readonly version: number;
  readonly dnssecOk: boolean;
  readonly options: readonly EdnsOption[];
}

export interface Message {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  /** Full rcode, EDNS extended bits included. */
  rcode: number;
  question: Question[];
  answer: RR[];
  authority: RR[];
  additional: RR[];
  edns?: Edns;
}

export function newMessage(init: Partial<Message> = {}): Message {
  return {
    id: 0,
    qr: false,
    opcode: 0,
    aa: false,
    tc: false,
    rd: false,
    ra: false,
    ad: false,
    cd: false,
    rcode: 0,
    question: [],
    answer: [],
    authority: [],
    additional: [],
    ...init,
  };
}

/** A response skeleton for a query: same id, question, RD and CD; EDNS echoed when the client sent it. */
export function replyTo(q: Message, rcode = 0): Message {
  const m = newMessage({ id: q.id, qr: true, opcode: q.opcode, rd: q.rd, cd: q.cd, ra: true, rcode, question: q.question.slice(0, 1) });
  if (q.edns) m.edns = { udpSize: 1232, version: 0, dnssecOk: q.edns.dnssecOk, options: [] };
  return m;
}

/** Lowercases and drops a trailing dot: the key every lookup uses. */
export function canonical(name: string): string {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  return n.toLowerCase();
}

/** "name." for display; the root is ".". */
export function fqdn(name: string): string {
  return name === '' ? '.' : `${name}.`;
}
