// The pods' servers and the probe matrix. Each pod runs one node process serving TCP and UDP on 80
// and 81 (like upstream's agnhost serve-hostname containers); each pod also gets one long-lived
// prober process in its network namespace, fed connect requests on stdin, so a whole matrix is
// 72 concurrent connects rather than 72 process starts. A refused TCP connect comes back at once
// (RST); a dropped one takes the timeout, which is why every probe of a matrix runs at once.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { PAIRS, pairKey, type Observed, type PodId, type Port, type Protocol } from './model.js';

/** TCP and UDP on 80 and 81; UDP echoes the pod's name back to the sender. */
export const SERVER = [
  "const net = require('net'), dgram = require('dgram');",
  'for (const port of [80, 81]) {',
  "  net.createServer((s) => { s.on('error', () => {}); s.end(process.env.POD + '\\n'); }).listen(port, '0.0.0.0');",
  "  const u = dgram.createSocket('udp4');",
  "  u.on('message', (m, r) => u.send(process.env.POD, r.port, r.address));",
  "  u.bind(port, '0.0.0.0');",
  '}',
].join('\n');

/** Reads {"id","ip","port","proto","ms"} lines; answers {"id","ok"} when connected (TCP) or answered (UDP). */
const PROBER = [
  "const net = require('net'), dgram = require('dgram');",
  "const rl = require('readline').createInterface({ input: process.stdin });",
  "rl.on('line', (line) => {",
  '  const q = JSON.parse(line);',
  '  let s, done = false;',
  '  const finish = (ok) => {',
  '    if (done) return;',
  '    done = true;',
  '    clearTimeout(timer);',
  '    try { if (s.destroy) s.destroy(); else s.close(); } catch {}',
  "    process.stdout.write(JSON.stringify({ id: q.id, ok }) + '\\n');",
  '  };',
  '  const timer = setTimeout(() => finish(false), q.ms);',
  "  if (q.proto === 'TCP') {",
  '    s = net.connect({ host: q.ip, port: q.port });',
  "    s.on('connect', () => finish(true));",
  "    s.on('error', () => finish(false));",
  '  } else {',
  "    s = dgram.createSocket('udp4');",
  "    s.on('message', () => finish(true));",
  "    s.on('error', () => finish(false));",
  "    s.connect(q.port, q.ip, () => s.send('ping'));",
  '  }',
  '});',
  "rl.on('close', () => process.exit(0));",
].join('\n');

export class Prober {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, (ok: boolean) => void>();
  private nextId = 1;

  constructor(netns: string) {
    this.proc = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', PROBER]);
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const { id, ok } = JSON.parse(line) as { id: number; ok: boolean };
      this.pending.get(id)?.(ok);
      this.pending.delete(id);
    });
    this.proc.on('exit', () => {
      for (const done of this.pending.values()) done(false);
      this.pending.clear();
    });
  }

  probe(ip: string, port: number, proto: Protocol, ms: number): Promise<boolean> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.proc.stdin.write(`${JSON.stringify({ id, ip, port, proto, ms })}\n`);
    });
  }

  close(): void {
    this.proc.stdin.end();
  }
}

/** Every ordered pair at once on one port and protocol. */
export async function probeMatrix(probers: ReadonlyMap<PodId, Prober>, ips: ReadonlyMap<PodId, string>, port: Port, proto: Protocol, timeoutMs: number): Promise<Observed> {
  const results = await Promise.all(PAIRS.map(async ([from, to]) => [pairKey(from, to), await probers.get(from)!.probe(ips.get(to)!, port, proto, timeoutMs)] as const));
  return new Map(results);
}
