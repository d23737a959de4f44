// The kernel's nf_tables ruleset generation: a counter that every committed transaction in the
// network namespace bumps (NFT_MSG_GETGEN over NETLINK_NETFILTER). Reading it costs one netlink
// round trip, where `nft -j list table` at 10,000 Services costs seconds of nft: the periodic
// check lists the table only when the generation moved since the kernel last matched the mirror.
// It reads the namespace of this process, so only a backend whose nft runs here may use it.
import { createNetlink, type NetlinkSocket } from 'netlink';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_GETGEN = 16;
const NFT_MSG_NEWGEN = 15;
const NFTA_GEN_ID = 1;
const NFGENMSG_LEN = 4;

export type GenerationReader = () => Promise<number | undefined>;

/** Parses a NEWGEN message body (nfgenmsg, then attributes) into the generation id. */
export function parseGeneration(data: Uint8Array): number | undefined {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  for (let off = NFGENMSG_LEN; off + 4 <= b.length; ) {
    const len = b.readUInt16LE(off);
    const type = b.readUInt16LE(off + 2) & 0x3fff;
    if (len < 4) return undefined;
    if (type === NFTA_GEN_ID && len >= 8) return b.readUInt32BE(off + 4);
    off += (len + 3) & ~3;
  }
  return undefined;
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
