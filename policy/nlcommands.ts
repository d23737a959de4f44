// The first step of a policy diff (render.ts's diffPlan `before`: new counters, sets and chains,
// rules of new and rewritten chains) as nf_tables messages, so it can share the element batch
// instead of running nft. Why: nft 1.0.6 lists every chain, set and object of the ruleset before
// any `add rule` (~1 MB over netlink at the kube-burner shape, no filter by table), 20-30 ms even
// for one rule; a pod of a namespace with no local pod yet needs ~13 KB of such lines (AGENT.md,
// "Cost of a sync").
//
// Only the line shapes render.ts writes for NetworkPolicy are encoded; for anything else
// (`parseCommands` returns undefined: admin tiers with their log and set shapes, maps, timeouts,
// base chains) the applier runs nft as before. The messages are nft's own, attribute for
// attribute (compare `nft --debug=netlink` and `--debug=mnl`): a table written either way lists
// the same (policy/test/kernel.test.ts compares them), including the set userdata nft reads back.
import { be16, be32, be64, cstr, nest, nla } from '../common/netlink/attrs.js';
import { bigintToBytes, familyOf, ipToBigint } from '../common/ipaddr.js';
import { NFPROTO } from '../common/nft/batch.js';
import { NFTA_DATA_VALUE, NFTA_DATA_VERDICT, NFTA_LIST_ELEM, NFTA_VERDICT_CHAIN, NFTA_VERDICT_CODE, NFT_MSG_NEWCHAIN, VERDICT_CODES, L4_PROTOCOLS } from '../common/nft/nf-tables-h.js';

const NFT_MSG_NEWRULE = 6;
const NFT_MSG_DELRULE = 8;
const NFT_MSG_NEWSET = 9;
const NFT_MSG_NEWOBJ = 18;

const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;

const VERDICT = VERDICT_CODES;
const META_NFPROTO = 15;
const META_L4PROTO = 16;
const BASE_NETWORK = 1;
const BASE_TRANSPORT = 2;

/** Set declarations render.ts writes for NetworkPolicy, as nft 1.0.6 sends them. */
interface SetAttrs {
  readonly flags: number;
  readonly keyType: number;
  readonly keyLen: number;
  /** NFTA_SET_DESC_CONCAT field lengths (intervals over a concatenation). */
  readonly fields?: readonly number[];
  readonly udata: Buffer;
}
// nft's set userdata (libnftnl NFTNL_UDATA_SET_*): key byte order big endian; for concatenations
// the byte order of each field, which nft needs to print the elements back.
const BIG_ENDIAN_KEY = Buffer.from('000402000000', 'hex');
const CONCAT_KEY = Buffer.from('00040000000003080004' + '0d00000001' + '00', 'hex');
const NFT_SET_INTERVAL = 0x4;
const NFT_SET_CONCAT = 0x80;
const SETS: Record<string, SetAttrs> = {
  'type ipv4_addr ;': { flags: 0, keyType: 7, keyLen: 4, udata: BIG_ENDIAN_KEY },
  'type ipv6_addr ;': { flags: 0, keyType: 8, keyLen: 16, udata: BIG_ENDIAN_KEY },
  'type ipv4_addr ; flags interval ;': { flags: NFT_SET_INTERVAL, keyType: 7, keyLen: 4, udata: BIG_ENDIAN_KEY },
  'type ipv6_addr ; flags interval ;': { flags: NFT_SET_INTERVAL, keyType: 8, keyLen: 16, udata: BIG_ENDIAN_KEY },
  'type ipv4_addr . inet_proto . inet_service ;': { flags: 0, keyType: 0x730d, keyLen: 12, udata: CONCAT_KEY },
  'type ipv6_addr . inet_proto . inet_service ;': { flags: 0, keyType: 0x830d, keyLen: 24, udata: CONCAT_KEY },
  'type inet_proto . inet_service ; flags interval ;': { flags: NFT_SET_INTERVAL | NFT_SET_CONCAT, keyType: 0x30d, keyLen: 8, fields: [1, 2], udata: CONCAT_KEY },
};

export type Command =
  | { readonly kind: 'counter'; readonly name: string }
  | { readonly kind: 'set'; readonly name: string; readonly attrs: SetAttrs }
  | { readonly kind: 'chain'; readonly name: string }
  | { readonly kind: 'flush'; readonly chain: string }
  | { readonly kind: 'rule'; readonly chain: string; readonly exprs: readonly Buffer[] };

const expr = (name: string, ...attrs: Buffer[]): Buffer => nest(NFTA_LIST_ELEM, nla(NFTA_EXPR_NAME, cstr(name)), nest(NFTA_EXPR_DATA, ...attrs));
const meta = (key: number, reg: number): Buffer => expr('meta', nla(2, be32(key)), nla(1, be32(reg)));
const cmpEq = (value: Buffer): Buffer => expr('cmp', nla(1, be32(1)), nla(2, be32(0)), nest(3, nla(NFTA_DATA_VALUE, value)));
const payload = (base: number, offset: number, len: number, reg: number): Buffer => expr('payload', nla(1, be32(reg)), nla(2, be32(base)), nla(3, be32(offset)), nla(4, be32(len)));
const lookup = (set: string): Buffer => expr('lookup', nla(2, be32(1)), nla(1, cstr(set)));
const byteorderHton = (): Buffer => expr('byteorder', nla(1, be32(1)), nla(2, be32(1)), nla(3, be32(1)), nla(4, be32(1)), nla(5, be32(2)));
// libnftnl puts the object name without its NUL here (mnl_attr_put_str); the kernel takes both.
const objref = (counter: string): Buffer => expr('objref', nla(1, be32(1)), nla(2, Buffer.from(counter)));

function immediate(verdict: string, chain?: string): Buffer {
  const v = [nla(NFTA_VERDICT_CODE, be32(VERDICT[verdict]!))];
  if (chain !== undefined) v.push(nla(NFTA_VERDICT_CHAIN, cstr(chain)));
  return expr('immediate', nla(1, be32(0)), nest(2, nest(NFTA_DATA_VERDICT, ...v)));
}

/** `ip saddr` / `ip6 daddr`: the family check and the address load nft emits. */
function addrLoad(kw: string, dir: string): Buffer[] {
  const v6 = kw === 'ip6';
  const offset = v6 ? (dir === 'saddr' ? 8 : 24) : dir === 'saddr' ? 12 : 16;
  return [meta(META_NFPROTO, 1), cmpEq(Buffer.from([NFPROTO[kw]!])), payload(BASE_NETWORK, offset, v6 ? 16 : 4, 1)];
}

const NAME = '([A-Za-z0-9_.:-]+)';
const ADDR_SET = new RegExp(`^(ip6?) (saddr|daddr) @${NAME}$`);
const ADDR = /^(ip6?) (saddr|daddr) ([0-9a-fA-F.:]+)$/;
const NAMED = new RegExp(`^(ip6?) daddr \\. meta l4proto \\. th dport @${NAME}$`);
const PORTS = new RegExp(`^meta l4proto \\. th dport @${NAME}$`);
const ONE_PORT = /^(tcp|udp|sctp) dport (\d+)$/;
const VERDICTS = new RegExp(`^(?:(accept|drop|return)|(jump|goto) ${NAME}|counter name "${NAME}" drop)$`);

/** One match of a rule (render.ts's shapes), or undefined. */
function matchExprs(m: string): Buffer[] | undefined {
  let x: RegExpExecArray | null;
  if ((x = ADDR_SET.exec(m))) return [...addrLoad(x[1]!, x[2]!), lookup(x[3]!)];
  if ((x = ADDR.exec(m))) {
    const f = familyOf(x[3]!);
    if (f !== (x[1] === 'ip' ? 4 : 6)) return undefined;
    return [...addrLoad(x[1]!, x[2]!), cmpEq(bigintToBytes(ipToBigint(x[3]!), f))];
  }
  if ((x = NAMED.exec(m))) {
    // Concatenation registers: 32-bit slots after the address (NFT_REG32_xx, or NFT_REG_x on a 128-bit boundary).
    const v6 = x[1] === 'ip6';
    return [...addrLoad(x[1]!, 'daddr'), meta(META_L4PROTO, v6 ? 2 : 9), payload(BASE_TRANSPORT, 2, 2, v6 ? 13 : 10), lookup(x[2]!)];
  }
  if ((x = PORTS.exec(m))) return [meta(META_L4PROTO, 1), byteorderHton(), payload(BASE_TRANSPORT, 2, 2, 9), lookup(x[1]!)];
  if ((x = ONE_PORT.exec(m))) {
    const port = Number(x[2]);
    if (port > 65535) return undefined;
    return [meta(META_L4PROTO, 1), cmpEq(Buffer.from([L4_PROTOCOLS[x[1]!]!])), payload(BASE_TRANSPORT, 2, 2, 1), cmpEq(be16(port))];
  }
  return undefined;
}

/** Splits a rule into its matches and verdict: `ip saddr @s meta l4proto . th dport @p accept`. */
function ruleExprs(rule: string): Buffer[] | undefined {
  const v = /(?:^| )(accept|drop|return|(?:jump|goto) \S+|counter name "[^"]+" drop)$/.exec(rule);
  if (!v) return undefined;
  const verdict = VERDICTS.exec(v[1]!);
  if (!verdict) return undefined;
  const head = rule.slice(0, v.index).trim();
  const out: Buffer[] = [];
  // A match starts at an address family keyword, meta or a protocol, unless a concatenation (" . ") continues.
  const parts = head === '' ? [] : head.split(/(?<!\.) (?=(?:ip6?|meta|tcp|udp|sctp) )/);
  for (const part of parts) {
    const e = matchExprs(part);
    if (!e) return undefined;
    out.push(...e);
  }
  if (verdict[1]) out.push(immediate(verdict[1]));
  else if (verdict[2]) out.push(immediate(verdict[2], verdict[3]!));
  else out.push(objref(verdict[4]!), immediate('drop'));
  return out;
}

/**
 * Rules parsed before, by text: most lines of a pod's chain (`jump r.<rule>`, the DNS accept) are
 * the same in every pod the rule selects, so a pod ADD parses only its own address and counter
 * lines. The expressions are only ever copied into messages, never changed. Bounded: dropped
 * whole when full (the table's distinct rule lines are far fewer).
 */
const parsed = new Map<string, Buffer[] | undefined>();
const PARSED_MAX = 20_000;

function cachedRuleExprs(rule: string): Buffer[] | undefined {
  let e = parsed.get(rule);
  if (e === undefined && !parsed.has(rule)) {
    if (parsed.size >= PARSED_MAX) parsed.clear();
    parsed.set(rule, (e = ruleExprs(rule)));
  }
  return e;
}

const LINE = new RegExp(`^(add counter|add set|add chain|flush chain|add rule) inet (\\S+) ${NAME}(?: (.+))?$`);

/** The lines as commands for `table` (inet), or undefined when any is a shape not encoded here. */
export function parseCommands(table: string, lines: readonly string[]): Command[] | undefined {
  const out: Command[] = [];
  for (const line of lines) {
    if (line === '') continue;
    const x = LINE.exec(line);
    if (!x || x[2] !== table) return undefined;
    const [, verb, , name, rest] = x as unknown as [string, string, string, string, string | undefined];
    if (verb === 'add counter' && rest === undefined) out.push({ kind: 'counter', name });
    else if (verb === 'add set' && rest?.startsWith('{ ') && rest.endsWith(' }')) {
      const attrs = SETS[rest.slice(2, -2)];
      if (!attrs) return undefined;
      out.push({ kind: 'set', name, attrs });
    } else if (verb === 'add chain' && rest === undefined) out.push({ kind: 'chain', name });
    else if (verb === 'flush chain' && rest === undefined) out.push({ kind: 'flush', chain: name });
    else if (verb === 'add rule' && rest !== undefined) {
      const exprs = cachedRuleExprs(rest);
      if (!exprs) return undefined;
      out.push({ kind: 'rule', chain: name, exprs });
    } else return undefined;
  }
  return out;
}

/** A command's message type, flags beyond NLM_F_REQUEST|NLM_F_ACK, and attributes. */
export function commandMessage(table: string, c: Command, setId: number): { type: number; flags: number; attrs: Buffer[] } {
  const NLM_F_CREATE = 0x400;
  const NLM_F_APPEND = 0x800;
  const t = nla(1, cstr(table));
  switch (c.kind) {
    case 'counter':
      return { type: NFT_MSG_NEWOBJ, flags: NLM_F_CREATE, attrs: [t, nla(2, cstr(c.name)), nla(3, be32(1)), nest(4, nla(1, be64(0n)), nla(2, be64(0n)))] };
    case 'set': {
      const a = c.attrs;
      const attrs = [t, nla(2, cstr(c.name)), nla(3, be32(a.flags)), nla(4, be32(a.keyType)), nla(5, be32(a.keyLen)), nla(10, be32(setId))];
      if (a.fields) attrs.push(nest(9, nest(2, ...a.fields.map((n) => nest(NFTA_LIST_ELEM, nla(1, be32(n)))))));
      attrs.push(nla(13, a.udata));
      return { type: NFT_MSG_NEWSET, flags: NLM_F_CREATE, attrs };
    }
    case 'chain':
      return { type: NFT_MSG_NEWCHAIN, flags: NLM_F_CREATE, attrs: [t, nla(3, cstr(c.name))] };
    case 'flush':
      return { type: NFT_MSG_DELRULE, flags: 0, attrs: [t, nla(2, cstr(c.chain))] };
    case 'rule':
      return { type: NFT_MSG_NEWRULE, flags: NLM_F_CREATE | NLM_F_APPEND, attrs: [t, nla(2, cstr(c.chain)), nest(4, ...c.exprs)] };
  }
}
