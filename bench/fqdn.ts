// What FQDN egress adds to a DNS answer: the query handler with the real chain order (autopath,
// the answer feed, then a synchronous stand-in upstream answering one A record), driven with
// encoded queries in-process, per case:
//   off        no table at all (the feature unused)                         - the baseline
//   other      a table, the client not in it (pods no domainNames policy selects)
//   nomatch    the client in the table, a name no pattern matches
//   match      a matching name, each answer a new address: one `nft -i` write into a real timeout
//              set (root: a namespace `skiffpf-bench`), what a pod's first lookup pays
//   repeat     a matching name whose address is already allowed: no write
// `npm run bench -- fqdn [--n 20000] [--writes 2000]`. Figures are µs per query (p50, p99) and the
// difference to `off`. With `dns.workers` >= 1 the agent adds a thread hop (postMessage to the main
// thread and back) to `match`; the agent's skiff_dns_answer_feed_duration_seconds includes it.
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { AnswerFeedPlugin, type FeedTable } from '../dns/answer-feed.js';
import { AutopathPlugin } from '../dns/autopath.js';
import { chain, type Plugin, type Reply, type Request } from '../dns/plugin.js';
import { QueryHandler } from '../dns/server/handler.js';
import { encode } from '../dns/wire/encode.js';
import { CLASS_IN, Type, newMessage, replyTo } from '../dns/wire/types.js';
import { MemoryCache } from '../common/watch/store.js';
import { FqdnFeed } from '../policy/fqdn.js';
import { NftSession } from '../proxy/nft/session.js';
import { percentile } from './stats.js';

const progress = (msg: string): void => void process.stderr.write(`[bench fqdn] ${msg}\n`);
const NS = 'skiffpf-bench';
const CLIENT = '10.244.0.9';
const SET = 's.cnp.bench.eg0.fqdn4';

/** Answers every A query with one record; `next()` picks the address (a new one per query in `match`). */
class Upstream implements Plugin {
  readonly name = 'forward';
  ip = '192.0.2.1';
  serve(req: Request): Reply {
    req.answeredBy = this.name;
    const m = replyTo(req.msg);
    m.answer = [{ name: req.q.name, type: Type.A, class: CLASS_IN, ttl: 300, data: this.ip }];
    return m;
  }
}

const query = (name: string): Buffer => encode(newMessage({ id: 7, rd: true, question: [{ name, type: Type.A, class: CLASS_IN }] }));

async function timeCase(handler: QueryHandler, buf: Buffer, n: number, src: string, before?: (i: number) => void): Promise<{ p50: number; p99: number }> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    before?.(i);
    const t = performance.now();
    const r = handler.handle(buf, src, 'udp');
    if (r instanceof Promise) await r;
    samples.push((performance.now() - t) * 1000);
  }
  samples.sort((a, b) => a - b);
  return { p50: +percentile(samples, 50).toFixed(2), p99: +percentile(samples, 99).toFixed(2) };
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { n: { type: 'string' }, writes: { type: 'string' } } });
  const n = Number(values.n ?? 20000);
  const writes = Number(values.writes ?? 2000);
  const root = process.getuid?.() === 0;
  const up = new Upstream();
  let feed: FqdnFeed | undefined;
  let session: NftSession | undefined;
  if (root) {
    execFileSync('sh', ['-c', `ip netns del ${NS} 2>/dev/null; ip netns add ${NS}`]);
    execFileSync('ip', ['netns', 'exec', NS, 'nft', '-f', '-'], { input: `add table inet skiff-policy\nadd set inet skiff-policy ${SET} { type ipv4_addr ; flags timeout ; }\n` });
    session = new NftSession(['ip', 'netns', 'exec', NS, 'nft', '-i']);
    const s = session;
    feed = new FqdnFeed({ write: (l) => s.run(l), minTTL: 30, maxTTL: 86400 });
  }
  const table: FeedTable = { sets: { [SET]: { family: 4, patterns: ['*.allowed.example'] } }, clients: { [CLIENT]: [SET] } };
  feed?.publish(table);
  const plugin = new AnswerFeedPlugin({ add: (e) => (feed ? feed.add(e) : Promise.resolve()), server: 'dns://:53' });
  const cache = new MemoryCache();
  const autopath = new AutopathPlugin({ zone: 'cluster.local', pods: cache.store('pods'), server: 'dns://:53', enabled: () => true });
  const handler = new QueryHandler({ chain: chain([autopath, plugin, up]), server: 'dns://:53', allowed: () => true, bypassFast: plugin.watches });
  const result: Record<string, unknown> = { bench: 'fqdn', n, writes, root };
  try {
    // Warm up the JIT on every path first.
    await timeCase(handler, query('www.example.org.'), 2000, CLIENT);
    const off = await timeCase(handler, query('www.example.org.'), n, CLIENT);
    plugin.setTable(table);
    const other = await timeCase(handler, query('www.allowed.example.'), n, '10.244.0.77');
    const nomatch = await timeCase(handler, query('www.example.org.'), n, CLIENT);
    result.off = off;
    result.other = { ...other, added_p50: +(other.p50 - off.p50).toFixed(2) };
    result.nomatch = { ...nomatch, added_p50: +(nomatch.p50 - off.p50).toFixed(2) };
    if (root) {
      const m = query('www.allowed.example.');
      const match = await timeCase(handler, m, writes, CLIENT, (i) => (up.ip = `198.18.${(i >> 8) & 255}.${i & 255}`));
      const repeat = await timeCase(handler, m, n, CLIENT);
      result.match = { ...match, added_p50: +(match.p50 - off.p50).toFixed(2), added_p99: +(match.p99 - off.p99).toFixed(2) };
      result.repeat = { ...repeat, added_p50: +(repeat.p50 - off.p50).toFixed(2) };
      const elements = execFileSync('ip', ['netns', 'exec', NS, 'nft', '-j', 'list', 'set', 'inet', 'skiff-policy', SET], { encoding: 'utf8' });
      result.elements_in_set = (JSON.parse(elements) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables.find((x) => x.set)?.set?.elem?.length ?? 0;
    } else progress('not root: the match and repeat cases (nft writes) are skipped');
  } finally {
    session?.close();
    handler.close();
    if (root) execFileSync('sh', ['-c', `ip netns del ${NS} 2>/dev/null || true`]);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
