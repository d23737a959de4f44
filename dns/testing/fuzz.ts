// Packet mutators for the fuzz runs: bit flips, truncation, junk insertion, random pointers.

/** Deterministic PRNG so a failure reproduces. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function mutate(seed: Buffer, r: () => number): Buffer {
  const b = Buffer.from(seed);
  const op = Math.floor(r() * 5);
  if (op === 0) {
    for (let i = 0; i < 1 + r() * 4; i++) b[Math.floor(r() * b.length)] ^= 1 << Math.floor(r() * 8);
    return b;
  }
  if (op === 1) return b.subarray(0, Math.floor(r() * b.length));
  if (op === 2) {
    for (let i = 0; i < 1 + r() * 3; i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    return b;
  }
  if (op === 3) {
    const at = Math.floor(r() * b.length);
    const junk = Buffer.from(Array.from({ length: Math.floor(r() * 20) }, () => Math.floor(r() * 256)));
    return Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
  }
  // Pointer games: aim a byte pair at a random offset.
  const at = 12 + Math.floor(r() * Math.max(1, b.length - 13));
  if (at + 1 < b.length) {
    b[at] = 0xc0 | Math.floor(r() * 4);
    b[at + 1] = Math.floor(r() * 256);
  }
  return b;
}
