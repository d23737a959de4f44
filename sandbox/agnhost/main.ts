// A stand-in for the upstream agnhost test image's subcommands the e2e workloads use, run by the
// kubelet stand-in for containers whose image is agnhost (see containers.ts): netexec,
// serve-hostname, connect, dns-suffix, dns-server-list, etc-hosts and pause. Same flags, same
// answers, so the same manifests run in the sandbox and on a real cluster.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect as tcpConnect, createServer as createTcpServer } from 'node:net';
import { boolFlag, durationMs, intFlag, parseFlags } from './flags.js';
import { hostname, startNetexec } from './netexec.js';

const SUBCOMMANDS = ['netexec', 'serve-hostname', 'connect', 'dns-suffix', 'dns-server-list', 'etc-hosts', 'pause'];

function resolvConf(): { nameservers: string[]; search: string[] } {
  const text = readFileSync('/etc/resolv.conf', 'utf8');
  const nameservers: string[] = [];
  let search: string[] = [];
  for (const line of text.split('\n')) {
    const [k, ...v] = line.trim().split(/\s+/);
    if (k === 'nameserver' && v[0]) nameservers.push(v[0]);
    if (k === 'search') search = v;
  }
  return { nameservers, search };
}

const forever = (): Promise<number> => new Promise(() => undefined);

function serveHostname(argv: readonly string[]): Promise<number> {
  const p = parseFlags(argv, ['tcp', 'udp', 'http', 'close']);
  const port = intFlag(p, 'port', 9376);
  if (boolFlag(p, 'http', true)) createHttpServer((_q, s) => s.end(hostname())).listen(port);
  if (boolFlag(p, 'tcp', false)) createTcpServer((c) => c.end(hostname())).listen(port);
  if (boolFlag(p, 'udp', false)) {
    const u = createSocket('udp4');
    u.on('message', (_m, r) => u.send(hostname(), r.port, r.address));
    u.bind(port);
  }
  process.stdout.write(`Serving on port ${port}.\n`);
  return forever();
}

/** `connect host:port`: exit 0 when a TCP connection is made; else TIMEOUT, REFUSED or OTHER on stderr and 1. */
function connect(argv: readonly string[]): Promise<number> {
  const p = parseFlags(argv);
  const target = p.args[0];
  const protocol = p.flags.get('protocol') ?? 'tcp';
  if (!target || !/^(.+):(\d+)$/.test(target)) {
    process.stderr.write('usage: agnhost connect HOST:PORT [--timeout 5s] [--protocol tcp]\n');
    return Promise.resolve(2);
  }
  if (protocol !== 'tcp') {
    process.stderr.write(`OTHER: protocol ${protocol} is not supported by the sandbox's agnhost\n`);
    return Promise.resolve(1);
  }
  const [, host, port] = /^(.+):(\d+)$/.exec(target)!;
  const timeoutMs = durationMs(p.flags.get('timeout'), 5000);
  return new Promise((resolve) => {
    const s = tcpConnect({ host: host!.replace(/^\[|\]$/g, ''), port: Number(port) });
    const t = setTimeout(() => {
      s.destroy();
      process.stderr.write('TIMEOUT\n');
      resolve(1);
    }, timeoutMs);
    s.on('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(0);
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      process.stderr.write(e.code === 'ECONNREFUSED' ? 'REFUSED\n' : `OTHER: ${e.message}\n`);
      resolve(1);
    });
  });
}

export async function agnhostMain(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  process.once('SIGTERM', () => process.exit(0));
  switch (sub) {
    case 'netexec':
      startNetexec(rest);
      return forever();
    case 'serve-hostname':
      return serveHostname(rest);
    case 'connect':
      return connect(rest);
    case 'dns-suffix':
      process.stdout.write(resolvConf().search.join(','));
      return 0;
    case 'dns-server-list':
      process.stdout.write(resolvConf().nameservers.join(','));
      return 0;
    case 'etc-hosts':
      process.stdout.write(readFileSync('/etc/hosts', 'utf8'));
      return 0;
    case 'pause':
      return forever();
    default:
      process.stderr.write(`agnhost (skiff sandbox): unknown or unsupported subcommand "${sub ?? ''}"; supported: ${SUBCOMMANDS.join(', ')}\n`);
      return 2;
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  agnhostMain(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`agnhost: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
