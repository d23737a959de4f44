// The sandbox's agnhost stand-in as a process, on loopback: the answers the e2e checks rely on.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { agnhostArgv, isAgnhostImage } from '../../sandbox/agnhost/image.js';
import { containerArgv } from '../../sandbox/kubelet/containers.js';
import { freePort } from '../support/ports.js';

const procs: ChildProcess[] = [];
afterAll(() => procs.forEach((p) => p.kill('SIGKILL')));

function agnhost(args: string[], env: Record<string, string> = {}): { proc: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const [cmd, ...rest] = agnhostArgv(undefined, args)!;
  const proc = spawn(cmd!, rest, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d) => (stdout += d));
  proc.stderr!.on('data', (d) => (stderr += d));
  return { proc, done: new Promise((resolve) => proc.on('close', (code) => resolve({ code, stdout, stderr }))) };
}

async function get(url: string): Promise<string> {
  for (let i = 0; ; i++) {
    try {
      return await (await fetch(url)).text();
    } catch (e) {
      if (i > 100) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('agnhost image mapping', () => {
  it('runs args after the stand-in, replaces /agnhost in a command, leaves other commands and images alone', () => {
    expect(isAgnhostImage('registry.k8s.io/e2e-test-images/agnhost:2.52')).toBe(true);
    expect(isAgnhostImage('agnhost')).toBe(true);
    expect(isAgnhostImage('registry.k8s.io/e2e-test-images/agnhost-fake:1')).toBe(false);
    expect(containerArgv({ name: 'c', image: 'registry.k8s.io/e2e-test-images/agnhost:2.52', args: ['netexec', '--http-port=8080'] }).slice(-3)).toEqual([expect.stringMatching(/agnhost[/\\]main\.(ts|js)$/), 'netexec', '--http-port=8080']);
    expect(containerArgv({ name: 'c', image: 'registry.k8s.io/e2e-test-images/agnhost:2.52', command: ['/agnhost', 'pause'] }).slice(-1)).toEqual(['pause']);
    expect(containerArgv({ name: 'c', image: 'registry.k8s.io/e2e-test-images/agnhost:2.52', command: ['sh', '-c', 'true'] })).toEqual(['sh', '-c', 'true']);
    expect(containerArgv({ name: 'c', image: 'busybox' })).toEqual(['sleep', 'infinity']);
  });
});

describe('agnhost stand-in', () => {
  it('netexec answers /hostname, /clientip, /echo, /shell, /dial and UDP commands', async () => {
    const http = await freePort();
    const udp = await freePort();
    agnhost(['netexec', `--http-port=${http}`, '--udp-port', String(udp)], { HOSTNAME: 'pod-a' });
    const base = `http://127.0.0.1:${http}`;
    expect(await get(`${base}/hostname`)).toBe('pod-a');
    expect(await get(`${base}/clientip`)).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await get(`${base}/echo?msg=hi%20there`)).toBe('hi there');
    expect(JSON.parse(await get(`${base}/shell?shellCommand=echo%20x`))).toEqual({ output: 'x\n' });
    expect(JSON.parse(await get(`${base}/dial?request=hostname&protocol=http&host=127.0.0.1&port=${http}&tries=2`))).toEqual({ responses: ['pod-a', 'pod-a'], errors: [] });
    expect(JSON.parse(await get(`${base}/dial?request=echo%20u&protocol=udp&host=127.0.0.1&port=${udp}&tries=1`))).toEqual({ responses: ['u'], errors: [] });
    const s = createSocket('udp4');
    const answer = new Promise<string>((resolve) => s.on('message', (m) => resolve(m.toString())));
    s.send('hostname', udp, '127.0.0.1');
    expect(await answer).toBe('pod-a');
    s.close();
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });

  it('serve-hostname answers every path with the hostname', async () => {
    const port = await freePort();
    agnhost(['serve-hostname', '--port', String(port)], { HOSTNAME: 'pod-b' });
    expect(await get(`http://127.0.0.1:${port}/anything`)).toBe('pod-b');
  });

  it('connect exits 0 on a listener and 1 with REFUSED without one; unknown subcommands exit 2', async () => {
    const srv = createServer((c) => c.end()).listen(0, '127.0.0.1');
    await new Promise((r) => srv.once('listening', r));
    const port = (srv.address() as { port: number }).port;
    expect((await agnhost(['connect', `127.0.0.1:${port}`, '--timeout', '3s']).done).code).toBe(0);
    srv.close();
    const closed = await freePort();
    const refused = await agnhost(['connect', `127.0.0.1:${closed}`, '--timeout=3s']).done;
    expect(refused).toMatchObject({ code: 1, stderr: 'REFUSED\n' });
    const unknown = await agnhost(['porter']).done;
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unsupported subcommand "porter"/);
  });

  it('dns-server-list and dns-suffix read resolv.conf', async () => {
    const r = await agnhost(['dns-server-list']).done;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^[0-9a-f.:]+(,[0-9a-f.:]+)*$/);
  });
});
