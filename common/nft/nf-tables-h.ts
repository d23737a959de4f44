// Numbers from linux/netfilter/nf_tables.h (and the IP protocol numbers) that skiff's nf_tables writers share (policy/setelem.ts,
// policy/nlcommands.ts, proxy/nft/elements.ts; common/nft/batch.ts sends what they encode).
export const NFT_MSG_NEWCHAIN = 3;
export const NFT_MSG_NEWSETELEM = 12;
export const NFT_MSG_DELSETELEM = 14;

export const NFTA_CHAIN_TABLE = 1;
export const NFTA_CHAIN_NAME = 3;

export const NFTA_SET_ELEM_LIST_TABLE = 1;
export const NFTA_SET_ELEM_LIST_SET = 2;
export const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
export const NFTA_LIST_ELEM = 1;
export const NFTA_SET_ELEM_KEY = 1;
export const NFTA_SET_ELEM_DATA = 2;
export const NFTA_SET_ELEM_FLAGS = 3;
export const NFTA_SET_ELEM_TIMEOUT = 4;
export const NFTA_SET_ELEM_KEY_END = 10;
export const NFTA_DATA_VALUE = 1;
export const NFTA_DATA_VERDICT = 2;
export const NFTA_VERDICT_CODE = 1;
export const NFTA_VERDICT_CHAIN = 2;
export const NFT_SET_ELEM_INTERVAL_END = 1;

/** Verdict codes (NF_DROP, NF_ACCEPT, NFT_CONTINUE, NFT_RETURN, NFT_JUMP, NFT_GOTO). */
export const VERDICT_CODES: Readonly<Record<string, number>> = { drop: 0, accept: 1, continue: -1, return: -5, jump: -3, goto: -4 };

/** The protocols that carry ports (Services' and NetworkPolicy's), by nft's names: inet_proto values. */
export const L4_PROTOCOLS: Readonly<Record<string, number>> = { tcp: 6, udp: 17, sctp: 132 };
