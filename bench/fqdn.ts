// What FQDN egress adds to a DNS answer: the query handler with the real chain order (autopath,
// the answer feed, then a synchronous stand-in upstream answering one A record), driven with
// encoded queries in-process, per case:
//   off        no table at all (the feature unused)                         - the baseline
//   other      a table, the client not in it (pods no domainNames policy selects)
//   nomatch    the client in the table, a name no pattern matches
//   match      a matching name, each answer a new address: one `nft -i` write into a real timeout
//              set (root: a namespace `skiffpf-bench`), what a pod's first lookup pays
//   repeat     a matching name whose address is already allowed: no write
// `npm run bench -- fqdn [--n 20000] [--writes 2000] [--filler N] [--nft]`: --filler puts N other
// sets and chains in the table (a node's policy table), --nft writes through `nft -i` instead of
// netlink (policy/setelem.ts says why the agent does not). Figures are µs per query (p50, p99) and the
// difference to `off`.
// Then, as root, end to end (`e2e`): the DNS component on 127.0.0.1 with one worker thread (the
// agent's default), an in-process upstream answering every name with a new address, and a UDP
// client timing round trips, for names the policy names (`*.allowed.example`: the thread hop to
// the main thread, the nft write, the hop back) and names it does not, alternating, each name new
// (no cache hit).
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';
import { AnswerFeedPlugin, type FeedTable } from '../dns/answer-feed.js';
import { AutopathPlugin } from '../dns/autopath.js';
import { chain, type Plugin, type Reply, type Request } from '../dns/plugin.js';
import { QueryHandler } from '../dns/server/handler.js';
import { startDns } from '../dns/testing/harness.js';
import { decode } from '../dns/wire/decode.js';
import { encode } from '../dns/wire/encode.js';
import { CLASS_IN, Type, newMessage, replyTo } from '../dns/wire/types.js';
import { MemoryCache } from '../common/watch/store.js';
import { RawNetlinkSocket } from 'netlink';
import { loadNetnsAddon } from '../cni/plugin/netns-addon.js';
import { FqdnFeed, elementsLine, netlinkWrite } from '../policy/fqdn.js';
import { netlinkElements, type ElementWriter } from '../policy/setelem.js';
import { NftSession } from '../common/nft/session.js';
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
  const { values } = parseArgs({ args: argv, options: { n: { type: 'string' }, writes: { type: 'string' }, filler: { type: 'string' }, nft: { type: 'boolean' } } });
  // Other sets and chains in the same table, as a node's policy table has (nft's cache reads them).
  const filler = Number(values.filler ?? 0);
  const n = Number(values.n ?? 20000);
  const writes = Number(values.writes ?? 2000);
  const root = process.getuid?.() === 0;
  const up = new Upstream();
  let feed: FqdnFeed | undefined;
  let session: NftSession | undefined;
  let writer: ElementWriter | undefined;
  if (root) {
    execFileSync('sh', ['-c', `ip netns del ${NS} 2>/dev/null; ip netns add ${NS}`]);
    execFileSync('ip', ['netns', 'exec', NS, 'nft', '-f', '-'], { input: `add table inet skiff-policy\nadd set inet skiff-policy ${SET} { type ipv4_addr ; flags timeout ; }\n${fillerText(filler)}` });
    if (values.nft) {
      session = new NftSession(['ip', 'netns', 'exec', NS, 'nft', '-i']);
      const s = session;
      feed = new FqdnFeed({ write: (els) => s.run(elementsLine(els)), minTTL: 30, maxTTL: 86400 });
    } else {
      const { addon } = loadNetnsAddon();
      if (!addon) throw new Error('netns.node not built (npm run build)');
      const w = netlinkElements(() => addon.inNetns(`/var/run/netns/${NS}`, () => new RawNetlinkSocket(12)), { timeoutMs: 2000 });
      writer = w;
      feed = new FqdnFeed({ write: netlinkWrite(w), minTTL: 30, maxTTL: 86400 });
    }
  }
  const table: FeedTable = { sets: { [SET]: { family: 4, patterns: ['*.allowed.example'] } }, clients: { [CLIENT]: [SET] } };
  feed?.publish(table);
  const plugin = new AnswerFeedPlugin({ add: (e) => (feed ? feed.add(e) : Promise.resolve()), server: 'dns://:53' });
  const cache = new MemoryCache();
  const autopath = new AutopathPlugin({ zone: 'cluster.local', pods: cache.store('pods'), server: 'dns://:53', enabled: () => true });
  const handler = new QueryHandler({ chain: chain([autopath, plugin, up]), server: 'dns://:53', allowed: () => true, bypassFast: plugin.watches });
  const result: Record<string, unknown> = { bench: 'fqdn', n, writes, filler, writer: values.nft ? 'nft -i' : 'netlink', root };
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
      result.e2e = await endToEnd(feed!, Math.min(writes, 1000));
    } else progress('not root: the match and repeat cases (nft writes) are skipped');
  } finally {
    session?.close();
    writer?.close();
    handler.close();
    if (root) execFileSync('sh', ['-c', `ip netns del ${NS} 2>/dev/null || true`]);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** An upstream that answers every A query with a new address (TTL 300). */
function upstream(): Promise<{ port: number; close: () => void }> {
  const sock = dgram.createSocket('udp4');
  let n = 0;
  sock.on('message', (buf, r) => {
    try {
      const q = decode(buf);
      const m = replyTo(q);
      n++;
      if (q.question[0]?.type === Type.A) m.answer = [{ name: q.question[0].name, type: Type.A, class: CLASS_IN, ttl: 300, data: `198.19.${(n >> 8) & 255}.${n & 255}` }];
      sock.send(encode(m), r.port, r.address);
    } catch {
      // not a query
    }
  });
  return new Promise((resolve) => sock.bind(0, '127.0.0.1', () => resolve({ port: sock.address().port, close: () => sock.close() })));
}

async function endToEnd(feed: FqdnFeed, rounds: number): Promise<Record<string, unknown>> {
  const up = await upstream();
  feed.publish({ sets: { [SET]: { family: 4, patterns: ['*.allowed.example'] } }, clients: { '127.0.0.1': [SET] } });
  const dns = await startDns(new MemoryCache(), { dns: { workers: 1, upstreams: [`127.0.0.1:${up.port}`] } }, { answers: feed });
  const client = dgram.createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  const ask = (name: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const t = performance.now();
      const timer = setTimeout(() => reject(new Error(`no answer for ${name}`)), 5000);
      client.once('message', () => {
        clearTimeout(timer);
        resolve((performance.now() - t) * 1000);
      });
      client.send(query(name), dns.port, '127.0.0.1');
    });
  const match: number[] = [];
  const other: number[] = [];
  try {
    for (let i = 0; i < 200; i++) await ask(`w${i}.warm.example.`);
    for (let i = 0; i < rounds; i++) {
      match.push(await ask(`q${i}.allowed.example.`));
      other.push(await ask(`q${i}.other.example.`));
    }
  } finally {
    client.close();
    await dns.stop();
    up.close();
  }
  match.sort((a, b) => a - b);
  other.sort((a, b) => a - b);
  const at = (xs: number[], p: number): number => +percentile(xs, p).toFixed(1);
  return { rounds, match: { p50: at(match, 50), p99: at(match, 99) }, other: { p50: at(other, 50), p99: at(other, 99) }, added_p50: +(at(match, 50) - at(other, 50)).toFixed(1), added_p99: +(at(match, 99) - at(other, 99)).toFixed(1) };
}

/** `count` sets of 4 addresses and `count` chains using them: the bulk of a policy table. */
function fillerText(count: number): string {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    out.push(`add set inet skiff-policy f${i} { type ipv4_addr ; elements = { 10.${(i >> 8) & 255}.${i & 255}.1, 10.${(i >> 8) & 255}.${i & 255}.2, 10.${(i >> 8) & 255}.${i & 255}.3, 10.${(i >> 8) & 255}.${i & 255}.4 } ; }`);
    out.push(`add chain inet skiff-policy c${i}`, `add rule inet skiff-policy c${i} ip daddr @f${i} tcp dport 80 accept`);
  }
  return out.length ? out.join('\n') + '\n' : '';
}
