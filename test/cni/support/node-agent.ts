// Runs inside a test "node" (started with `ip netns exec`), because netlink sockets and the
// commands the agent spawns act on the namespace they start in. Two modes:
//   server: only the CNI socket, with the default handler (plugin tests);
//   agent:  the whole createCni component over a MemoryCache fed by JSON lines on stdin.
// It reports on stdout as JSON lines: {"type":"ready"}, {"type":"patch",...}, {"type":"cleaned"}.
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { parseConfig } from '../../../common/config.js';
import { Health } from '../../../common/health.js';
import { MemoryCache } from '../../../common/watch/store.js';
import type { Kind, KindTypes } from '../../../common/types.js';
import { createCni } from '../../../cni/index.js';
import { listenCni } from '../../../cni/server.js';

interface Opts {
  mode: 'server' | 'agent';
  socketPath: string;
  config?: Record<string, unknown>;
}

const opts = JSON.parse(process.argv[2]!) as Opts;
const say = (o: Record<string, unknown>): void => void process.stdout.write(JSON.stringify(o) + '\n');

if (opts.mode === 'server') {
  await listenCni(opts.socketPath, {}, (e) => process.stderr.write(`${String(e)}\n`));
  say({ type: 'ready' });
} else {
  const cache = new MemoryCache();
  const health = new Health();
  const log = pino({ level: process.env.SKIFF_TEST_LOG ?? 'warn' }, pino.destination(2));
  const config = parseConfig(opts.config);
  const comp = createCni({
    config,
    cache,
    log,
    health,
    api: {
      async patchNodeAnnotations(name, annotations) {
        say({ type: 'patch', name, annotations });
      },
      async patchNodeCondition(name, condition) {
        say({ type: 'condition', name, condition });
      },
    },
  });
  const ac = new AbortController();
  const done = comp.run(ac.signal);
  let announced = false;
  const poll = setInterval(() => {
    const ok = health.readiness().ok;
    if (ok && !announced) say({ type: 'ready' });
    announced = ok;
  }, 50);
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const c = JSON.parse(line) as { op: string; kind: Kind; key: string; obj: KindTypes[Kind] };
    if (c.op === 'upsert') cache.upsert(c.kind, c.key, c.obj);
    else if (c.op === 'remove') cache.remove(c.kind, c.key);
    else if (c.op === 'synced') cache.markSynced(c.kind);
    else if (c.op === 'stop' || c.op === 'cleanup') {
      clearInterval(poll);
      ac.abort();
      void done
        .then(() => (c.op === 'cleanup' ? comp.cleanup() : undefined))
        .then(() => {
          say({ type: c.op === 'cleanup' ? 'cleaned' : 'stopped' });
          process.exit(0);
        });
    }
  });
}
