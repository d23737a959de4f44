// Where a heap goes: reads a .heapsnapshot (common/heap-dump.ts writes them from a running agent,
// or v8.writeHeapSnapshot) and prints the self size per object kind and the retained size of
// chosen owners (each instance of the named classes): what would be freed if that owner went.
// Usage: tsx bench/heap-summary.ts <file.heapsnapshot> [--owners A,B,...] [--top N]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] }; node_count: number };
  nodes: number[];
  edges: number[];
  strings: string[];
}

const DEFAULT_OWNERS = 'MemoryCache,IndexedStore,Subscription,ZoneIndex,CachePlugin,Proxier,ComputedServices,NftDataplane,Mirror,PolicySyncer,PolicyIndex,WorkerPool,Registry';

export function summarize(file: string, owners: string[], top: number): string {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const nf = s.snapshot.meta.node_fields.length;
  const ef = s.snapshot.meta.edge_fields.length;
  const nTypes = s.snapshot.meta.node_types[0];
  const eTypes = s.snapshot.meta.edge_types[0];
  const [tI, nI, sI, ecI] = ['type', 'name', 'self_size', 'edge_count'].map((f) => s.snapshot.meta.node_fields.indexOf(f)) as [number, number, number, number];
  const [etI, nameI, toI] = ['type', 'name_or_index', 'to_node'].map((f) => s.snapshot.meta.edge_fields.indexOf(f)) as [number, number, number];
  const weak = eTypes.indexOf('weak');
  const count = s.nodes.length / nf;
  const firstEdge = new Uint32Array(count + 1);
  for (let i = 0, e = 0; i < count; i++) {
    firstEdge[i] = e;
    e += s.nodes[i * nf + ecI]! * ef;
  }
  firstEdge[count] = s.edges.length;
  const kindOf = (i: number): string => {
    const type = nTypes[s.nodes[i * nf + tI]!]!;
    const name = s.strings[s.nodes[i * nf + nI]!]!;
    if (type === 'object' || type === 'closure' || type === 'native') return `${type}:${name.slice(0, 60)}`;
    if (type === 'hidden' || type === 'array' || type === 'code') return `${type}:${name.slice(0, 40)}`;
    return type;
  };
  let total = 0;
  const byKind = new Map<string, { n: number; bytes: number }>();
  for (let i = 0; i < count; i++) {
    const size = s.nodes[i * nf + sI]!;
    total += size;
    const k = kindOf(i);
    const e = byKind.get(k) ?? { n: 0, bytes: 0 };
    e.n++;
    e.bytes += size;
    byKind.set(k, e);
  }
  // Reachable bytes from the root (node 0) with `cut` removed, over strong edges.
  const seen = new Uint8Array(count);
  const stack = new Uint32Array(count);
  const reachable = (cut: ReadonlySet<number>): number => {
    seen.fill(0);
    let sp = 0;
    let bytes = 0;
    stack[sp++] = 0;
    seen[0] = 1;
    while (sp > 0) {
      const i = stack[--sp]!;
      bytes += s.nodes[i * nf + sI]!;
      for (let e = firstEdge[i]!; e < firstEdge[i + 1]!; e += ef) {
        if (s.edges[e + etI] === weak) continue;
        const to = s.edges[e + toI]! / nf;
        if (seen[to] || cut.has(to)) continue;
        seen[to] = 1;
        stack[sp++] = to;
      }
    }
    return bytes;
  };
  const live = reachable(new Set());
  const mb = (b: number): string => (b / 1048576).toFixed(2).padStart(8);
  const lines = [`${file}: ${count} nodes, ${mb(total)} MB in the snapshot, ${mb(live)} MB reachable`, '', 'self size by kind:'];
  for (const [k, v] of [...byKind].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)) lines.push(`${mb(v.bytes)} MB ${String(v.n).padStart(9)}  ${k}`);
  lines.push('', 'retained by owner (each instance):');
  const ownerSet = new Set(owners);
  for (let i = 0; i < count; i++) {
    const type = nTypes[s.nodes[i * nf + tI]!]!;
    const name = s.strings[s.nodes[i * nf + nI]!]!;
    if (type !== 'object' || !ownerSet.has(name)) continue;
    const r = live - reachable(new Set([i]));
    if (r <= 64 * 1024) continue;
    lines.push(`${mb(r)} MB  ${name} @${i}`);
    // Its fields, each by what it alone keeps.
    for (let e = firstEdge[i]!; e < firstEdge[i + 1]!; e += ef) {
      const et = eTypes[s.edges[e + etI]!];
      if (et !== 'property' && et !== 'internal') continue;
      const to = s.edges[e + toI]! / nf;
      const fr = live - reachable(new Set([to]));
      if (fr > 256 * 1024) lines.push(`  ${mb(fr)} MB  .${et === 'property' ? s.strings[s.edges[e + nameI]!] : 'internal'} (${kindOf(to)})`);
    }
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { owners: { type: 'string', default: DEFAULT_OWNERS }, top: { type: 'string', default: '40' } } });
  for (const f of positionals) process.stdout.write(`${summarize(f, values.owners.split(','), Number(values.top))}\n\n`);
}
