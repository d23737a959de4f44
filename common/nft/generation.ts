// The kernel's nf_tables ruleset generation: a counter that every committed transaction in the
// network namespace bumps (NFT_MSG_GETGEN over NETLINK_NETFILTER). Reading it costs one netlink
// round trip, where `nft -j list table` at 10,000 Services costs seconds of nft: the periodic
// check lists the table only when the generation moved since the kernel last matched the mirror.
// It reads the namespace of this process, so only a backend whose nft runs here may use it.
// The package's netlink.js, not its index: the index also loads nl80211's and WireGuard's
// definitions, ~0.5 MB of heap in every agent for nothing (issue 16).
import { createNetlink, type NetlinkSocket } from 'netlink/dist/netlink.js';
import { nlattrs } from '../netlink/attrs.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_GETGEN = 16;
const NFT_MSG_NEWGEN = 15;
const NFT_MSG_NEWCHAIN = 3;
const NFT_MSG_GETCHAIN = 4;
const NFT_MSG_NEWRULE = 6;
const NFT_MSG_GETRULE = 7;
const NFT_MSG_NEWSET = 9;
const NFT_MSG_GETSET = 10;
const NFTA_GEN_ID = 1;
const NFGENMSG_LEN = 4;
const NLM_F_DUMP = 0x300;
/** NFPROTO_* per nft family word. */
const NFPROTO: Readonly<Record<string, number>> = { ip: 2, ip6: 10, inet: 1 };

export type GenerationReader = () => Promise<number | undefined>;

/** Parses a NEWGEN message body (nfgenmsg, then attributes) into the generation id. */
export function parseGeneration(data: Uint8Array): number | undefined {
  for (const a of nlattrs(data, NFGENMSG_LEN)) if (a.type === NFTA_GEN_ID && a.payload.length >= 4) return a.payload.readUInt32BE(0);
  return undefined;
}

/**
 * The attributes of one nf_tables message body (after nfgenmsg), by attribute type: NUL-terminated
 * ones as strings, 4-byte ones also as big-endian numbers.
 */
export function stringAttrs(data: Uint8Array): Map<number, string | number> {
  const out = new Map<number, string | number>();
  for (const { type, payload } of nlattrs(data, NFGENMSG_LEN)) {
    if (payload.length === 4) out.set(type, payload.readUInt32BE(0));
    const end = payload.indexOf(0);
    if (end >= 0 && !(payload.length === 4 && end === 0)) out.set(type, payload.toString('latin1', 0, end));
  }
  return out;
}

/** NFTA_SET_FLAGS and its NFT_SET_ANONYMOUS bit: the sets nft creates for `{ tcp, udp }` in a rule. */
const NFTA_SET_FLAGS = 3;
const NFT_SET_ANONYMOUS = 1;

/** A table's structure without its elements: chain -> rule count, and set names. */
export interface TableShape {
  readonly chains: ReadonlyMap<string, number>;
  readonly sets: ReadonlySet<string>;
}

export type ShapeReader = (prefix: string) => Promise<TableShape | undefined>;

/**
 * The chains, rule counts and sets of one table ("ip skiff") from three netlink dumps that carry
 * no set elements: what `nft list` cannot give without fetching every element first (seconds at
 * 10,000 Services). Undefined when the kernel cannot be asked; an absent table has no chains.
 */
export function netlinkShape(): ShapeReader & { close(): void } {
  let sock: NetlinkSocket | undefined;
  const dump = async (get: number, reply: number, family: number): Promise<Uint8Array[]> => {
    sock ??= createNetlink(NETLINK_NETFILTER, { ref: false, recvBufferSize: 1 << 20, sendBufferSize: 16 << 10 });
    const req = Buffer.from([family, 0, 0, 0]);
    const [msgs] = await sock.request((NFNL_SUBSYS_NFTABLES << 8) | get, req, { flags: NLM_F_DUMP, timeout: 2000 });
    return msgs.filter((m) => m.type === ((NFNL_SUBSYS_NFTABLES << 8) | reply)).map((m) => m.data);
  };
  const read = async (prefix: string): Promise<TableShape | undefined> => {
    const [word, table] = prefix.split(' ') as [string, string];
    const family = NFPROTO[word];
    if (family === undefined) return undefined;
    try {
      const chains = new Map<string, number>();
      const sets = new Set<string>();
      // NFTA_CHAIN_TABLE 1, NFTA_CHAIN_NAME 3; NFTA_RULE_TABLE 1, NFTA_RULE_CHAIN 2; NFTA_SET_TABLE 1, NFTA_SET_NAME 2.
      for (const d of await dump(NFT_MSG_GETCHAIN, NFT_MSG_NEWCHAIN, family)) {
        const a = stringAttrs(d);
        const name = a.get(3);
        if (a.get(1) === table && typeof name === 'string') chains.set(name, 0);
      }
      for (const d of await dump(NFT_MSG_GETRULE, NFT_MSG_NEWRULE, family)) {
        const a = stringAttrs(d);
        const c = a.get(2);
        if (a.get(1) === table && typeof c === 'string') chains.set(c, (chains.get(c) ?? 0) + 1);
      }
      for (const d of await dump(NFT_MSG_GETSET, NFT_MSG_NEWSET, family)) {
        const a = stringAttrs(d);
        const name = a.get(2);
        const flags = a.get(NFTA_SET_FLAGS);
        if (a.get(1) === table && typeof name === 'string' && !(typeof flags === 'number' && flags & NFT_SET_ANONYMOUS)) sets.add(name);
      }
      return { chains, sets };
    } catch {
      sock?.close();
      sock = undefined;
      return undefined;
    }
  };
  return Object.assign(read, { close: () => sock?.close() });
}

/** A reader over one long-lived netlink socket; undefined whenever the kernel cannot be asked. */
export function netlinkGeneration(): GenerationReader & { close(): void } {
  let sock: NetlinkSocket | undefined;
  const read = async (): Promise<number | undefined> => {
    try {
      sock ??= createNetlink(NETLINK_NETFILTER, { ref: false, recvBufferSize: 64 << 10, sendBufferSize: 16 << 10 });
      const [msgs] = await sock.request((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, Buffer.alloc(NFGENMSG_LEN), { timeout: 2000 });
      const m = msgs.find((x) => (x.type & 0xff) === NFT_MSG_NEWGEN);
      return m ? parseGeneration(m.data) : undefined;
    } catch {
      sock?.close();
      sock = undefined;
      return undefined;
    }
  };
  return Object.assign(read, { close: () => sock?.close() });
}
