// The C shim's own answers: what needs no agent gets the spec's code from the shim itself, the
// same code the agent's parser (cni/spec/request.ts) gives, and the agent is never asked. Runs the
// real binary without root: an agent is a plain unix socket server here.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../../test/support/env.js';
import { CniError } from '../spec/errors.js';
import { parseRequest } from '../spec/request.js';

type Env = Record<string, string | undefined>;
const source = fileURLToPath(new URL('./skiff-cni.c', import.meta.url));
const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.1.0', name: 'skiff', type: 'skiff', podCIDRs: ['10.244.1.0/24'], ...extra });
const env = (extra: Env = {}): Env => ({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_IFNAME: 'eth0', CNI_NETNS: '/var/run/netns/x', CNI_PATH: '/opt/cni/bin', ...extra });

function agentCode(e: Env, stdin: string): number | undefined {
  try {
    parseRequest(e, stdin);
    return undefined;
  } catch (err) {
    if (err instanceof CniError) return err.cniCode;
    throw err;
  }
}

describe.skipIf(missing('cni shim', { tools: ['cc'] }))('cni shim answers by itself', () => {
  let dir: string;
  let shim: string;
  let agent: Server;
  let agentSocket: string;
  let connections = 0;

  const run = (e: Env, stdin: string, socket: string): Promise<{ code: number; out: Record<string, unknown>; raw: string }> =>
    new Promise((resolve, reject) => {
      const clean: Record<string, string> = { SKIFF_CNI_SOCKET: socket };
      for (const [k, v] of Object.entries(e)) if (v !== undefined) clean[k] = v;
      const p = spawn(shim, [], { env: clean });
      let raw = '';
      p.stdout.on('data', (d) => (raw += d));
      p.on('error', reject);
      p.on('close', (code) => {
        let out: Record<string, unknown> = {};
        try {
          out = raw.trim() ? (JSON.parse(raw) as Record<string, unknown>) : {};
        } catch {
          out = { unparsable: raw };
        }
        resolve({ code: code ?? -1, out, raw });
      });
      p.stdin.on('error', () => undefined);
      p.stdin.end(stdin);
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skiffcni-shim-'));
    shim = join(dir, 'skiff');
    execFileSync('cc', ['-O2', '-std=gnu11', '-Wall', '-Werror', '-static', '-o', shim, source]);
    agentSocket = join(dir, 'agent.sock');
    // An agent that answers every request with success, so a forwarded request is visible.
    agent = createServer({ allowHalfOpen: true }, (s) => {
      connections++;
      s.on('data', () => undefined);
      s.on('end', () => s.end('0\n{"cniVersion":"1.1.0","forwarded":true}'));
    });
    await new Promise<void>((r) => agent.listen(agentSocket, r));
  });

  afterAll(async () => {
    await new Promise((r) => agent?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cases: [string, Env, string, number][] = [
    ['missing CNI_COMMAND', env({ CNI_COMMAND: undefined }), conf(), 4],
    ['unknown CNI_COMMAND', env({ CNI_COMMAND: 'FROB' }), conf(), 4],
    ['lower-case command', env({ CNI_COMMAND: 'add' }), conf(), 4],
    ['container id with /', env({ CNI_CONTAINERID: 'a/b' }), conf(), 4],
    ['container id ../etc', env({ CNI_CONTAINERID: '../etc' }), conf(), 4],
    ['container id with ..', env({ CNI_CONTAINERID: 'a..b' }), conf(), 4],
    ['container id starting with -', env({ CNI_CONTAINERID: '-x' }), conf(), 4],
    ['missing container id', env({ CNI_CONTAINERID: undefined }), conf(), 4],
    ['DEL with container id ..', env({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: '..' }), conf(), 4],
    ['missing ifname', env({ CNI_IFNAME: undefined }), conf(), 4],
    ['ifname too long', env({ CNI_IFNAME: 'abcdefghijklmnop' }), conf(), 4],
    ['ifname with /', env({ CNI_IFNAME: 'et/h0' }), conf(), 4],
    ['ifname with :', env({ CNI_IFNAME: 'eth0:1' }), conf(), 4],
    ['ifname with space', env({ CNI_IFNAME: 'eth 0' }), conf(), 4],
    ['ifname ..', env({ CNI_IFNAME: '..' }), conf(), 4],
    ['missing netns on ADD', env({ CNI_NETNS: undefined }), conf(), 4],
    ['relative netns', env({ CNI_NETNS: 'netns/x' }), conf(), 4],
    ['bad CNI_ARGS', env({ CNI_ARGS: 'IgnoreUnknown=1;novalue' }), conf(), 4],
    ['not JSON', env(), '{nope', 6],
    ['empty stdin', env(), '', 6],
    ['trailing garbage', env(), `${conf()}x`, 6],
    ['trailing comma', env(), '{"cniVersion":"1.1.0",}', 6],
    ['bad escape', env(), '{"cniVersion":"1.1.0","x":"\\q"}', 6],
    ['control character in a string', env(), '{"cniVersion":"1.1.0","x":"a\u0001"}', 6],
    ['leading zero', env(), '{"cniVersion":"1.1.0","mtu":01450}', 6],
    ['nesting past the limit', env(), `{"x":${'['.repeat(100_000)}`, 6],
    ['JSON array', env(), '[]', 6],
    ['JSON string', env(), '"x"', 6],
    ['VERSION with undecodable stdin', { CNI_COMMAND: 'VERSION' }, 'nope', 6],
    ['unsupported version', env(), conf({ cniVersion: '0.2.0' }), 1],
    ['DEL in an unsupported version', env({ CNI_COMMAND: 'DEL' }), conf({ cniVersion: '2.0.0' }), 1],
    ['missing version', env(), conf({ cniVersion: undefined }), 7],
    ['empty version', env(), conf({ cniVersion: '' }), 7],
    ['numeric version', env(), conf({ cniVersion: 1 }), 7],
    ['CHECK on 0.3.1', env({ CNI_COMMAND: 'CHECK' }), conf({ cniVersion: '0.3.1' }), 1],
    ['STATUS on 1.0.0', { CNI_COMMAND: 'STATUS' }, conf({ cniVersion: '1.0.0' }), 1],
    ['GC on 0.4.0', { CNI_COMMAND: 'GC' }, conf({ cniVersion: '0.4.0' }), 1],
  ];

  it.each(cases)('%s: code %i from the shim, the same as the agent, agent down or up', async (_name, e, stdin, code) => {
    expect(agentCode(e, stdin)).toBe(code);
    const down = await run(e, stdin, join(dir, 'nobody.sock'));
    expect(down.code, down.raw).toBe(1);
    expect(down.out, down.raw).toMatchObject({ code });
    expect(typeof down.out.msg).toBe('string');
    const before = connections;
    const up = await run(e, stdin, agentSocket);
    expect(up.out, up.raw).toMatchObject({ code });
    expect(connections).toBe(before);
  });

  it('answers in the request version when it speaks it, else in the newest', async () => {
    expect((await run(env({ CNI_IFNAME: '' }), conf({ cniVersion: '0.4.0' }), agentSocket)).out.cniVersion).toBe('0.4.0');
    expect((await run(env(), conf({ cniVersion: '9.9.9' }), agentSocket)).out).toMatchObject({ cniVersion: '1.1.0', code: 1 });
  });

  it('leaves the network config itself to the agent: try again later while it is down', async () => {
    for (const stdin of [conf({ podCIDRs: [] }), conf({ name: undefined }), conf({ mtu: 10 })]) {
      const down = await run(env(), stdin, join(dir, 'nobody.sock'));
      expect(down.out, down.raw).toMatchObject({ code: 11 });
      const before = connections;
      expect((await run(env(), stdin, agentSocket)).out).toMatchObject({ forwarded: true });
      expect(connections).toBe(before + 1);
    }
  });

  it('forwards valid requests, and without the agent: DEL succeeds, STATUS 50, VERSION lists versions', async () => {
    const ok: [Env, string][] = [
      [env(), conf()],
      [env({ CNI_COMMAND: 'DEL', CNI_NETNS: undefined }), conf({ prevResult: { cniVersion: '1.1.0', ips: [] } })],
      [env({ CNI_COMMAND: 'CHECK', CNI_ARGS: 'K8S_POD_NAME=a;;K8S_POD_NAMESPACE=b' }), conf({ cniVersion: '0.4.0' })],
      [env(), ` \n${conf({ nested: { cniVersion: 'x', a: [1, -2.5e3, true, null, '\u00e9\\u00e9'] } })}\n`],
    ];
    for (const [e, stdin] of ok) expect((await run(e, stdin, agentSocket)).out, stdin).toMatchObject({ forwarded: true });
    const nobody = join(dir, 'nobody.sock');
    expect((await run(env({ CNI_COMMAND: 'DEL' }), conf(), nobody)).code).toBe(0);
    expect((await run({ CNI_COMMAND: 'STATUS' }, conf(), nobody)).out).toMatchObject({ code: 50, details: nobody });
    expect((await run({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}', nobody)).out).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    expect((await run({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.1.0"}', nobody)).out.cniVersion).toBe('1.1.0');
  });

  it('finds the agent socket in the top-level agentSocket, escapes decoded', async () => {
    const e = env();
    const p = await new Promise<{ code: number; raw: string }>((resolve) => {
      const clean: Record<string, string> = {};
      for (const [k, v] of Object.entries(e)) if (v !== undefined) clean[k] = v;
      const c = spawn(shim, [], { env: clean });
      let raw = '';
      c.stdout.on('data', (d) => (raw += d));
      c.on('close', (code) => resolve({ code: code ?? -1, raw }));
      // JSON allows "\/" for "/"; the path must be decoded, and a nested agentSocket is not the one.
      c.stdin.end(conf({ prevResult: { agentSocket: '/nowhere' }, agentSocket: 'SOCK' }).replace('"SOCK"', `"${agentSocket.replaceAll('/', '\\/')}"`));
    });
    expect(JSON.parse(p.raw)).toMatchObject({ forwarded: true });
  });
});
