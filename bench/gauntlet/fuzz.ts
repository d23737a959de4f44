// Scenario 4, bad input against a live agent: mutated DNS packets (dns/testing/fuzz.ts mutators)
// at the agent's real server, malformed CNI environments and stdin through the real shim, and
// Services/EndpointSlices with invalid fields in the API. Counted: agent or shim deaths (crashes),
// CNI errors that are not a spec error object with the expected code, and well-formed probes that
// got a wrong answer while the bad input flowed (other traffic must be unaffected).
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { projectRoot } from '../../common/self.js';
import { mutate, rng } from '../../dns/testing/fuzz.js';
import { addNetns, sh } from '../../test/support/netns.js';
import { query, serviceObject, sliceObject, startCluster, type Cluster } from './cluster.js';
import { PREFIX, progress, sleep, until } from './support.js';

const P = `${PREFIX}-fz`;
const log = (m: string): void => progress('fuzz', m);

export interface FuzzResult {
  fuzz_crashes: number;
  fuzz_wrong_errors: number;
  fuzz_probe_failures: number;
}

function seeds(): Buffer[] {
  const q = (name: string, type: string, edns = false): Buffer =>
    dnsPacket.encode({
      type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: type as 'A', name, class: 'IN' }],
      additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, options: [] } as never] : [],
    });
  return [
    q('web.default.svc.cluster.local', 'A'),
    q('web.default.svc.cluster.local', 'AAAA', true),
    q('_http._tcp.web.default.svc.cluster.local', 'SRV', true),
    q('20.0.96.10.in-addr.arpa', 'PTR'),
    q('10-244-0-5.default.pod.cluster.local', 'A'),
    q('kube-dns.kube-system.svc.cluster.local', 'ANY', true),
    q('example.org', 'A', true),
    q('x.web.default.svc.cluster.local.default.svc.cluster.local', 'TXT'),
  ];
}

async function probe(c: Cluster, name: string, want: string[]): Promise<boolean> {
  const a = await query(c.nodeIP, name, 'A', 2000);
  return !!a && a.rcode === 'NOERROR' && want.every((w) => a.addresses.includes(w)) && a.addresses.length === want.length;
}

async function dnsFuzz(c: Cluster, packets: number): Promise<number> {
  const sock = dgram.createSocket('udp4');
  let answered = 0;
  sock.on('message', () => answered++);
  await new Promise<void>((r) => sock.bind(0, c.hostIP, () => r()));
  const r = rng(20261123);
  const base = seeds();
  let probeFailures = 0;
  const t = performance.now();
  try {
    for (let i = 0; i < packets; ) {
      // ~8k packets/s: fast enough to hurt, slow enough that loss would mean a bug, not a full
      // socket buffer on a loaded 2-core machine.
      for (let k = 0; k < 400 && i < packets; k++, i++) sock.send(mutate(base[i % base.length]!, r), 53, c.nodeIP);
      await sleep(50);
      if (i % 4000 === 0) {
        if (!(await probe(c, 'web.default.svc.cluster.local', ['10.96.0.20']))) probeFailures++;
        if (c.agent.proc.exitCode !== null) throw new Error(`agent died during the DNS fuzz (exit ${c.agent.proc.exitCode})`);
      }
    }
  } finally {
    sock.close();
  }
  log(`${packets} mutated packets in ${((performance.now() - t) / 1000).toFixed(1)} s, ${answered} answered; ${probeFailures} failed probes`);
  return probeFailures;
}

interface CniCase {
  name: string;
  env: Record<string, string>;
  stdin: string | Buffer;
  /** Spec error codes accepted for this input. */
  codes: number[];
}

function runShim(ns: string, env: Record<string, string>, stdin: string | Buffer): Promise<{ code: number | null; signal: string | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('ip', ['netns', 'exec', ns, join(projectRoot, 'dist', 'bin', 'skiff-cni')], { env: { PATH: process.env.PATH!, ...env }, stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stdin.on('error', () => undefined);
    p.on('close', (code, signal) => resolve({ code, signal, out }));
    p.stdin.on('error', () => undefined); // a child that exits unread reports through its exit code
    p.stdin.end(stdin);
  });
}

async function cniFuzz(c: Cluster): Promise<{ crashes: number; wrong: number }> {
  const shim = join(projectRoot, 'dist', 'bin', 'skiff-cni');
  if (!existsSync(shim)) throw new Error(`no shim at ${shim}: run npm run build`);
  const sock = join(c.dir, 'run', 'cni.sock');
  const list = JSON.parse(readFileSync(join(c.dir, 'net.d', '10-skiff.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
  const conf = { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] };
  const good = JSON.stringify(conf);
  const podNs = `${P}-p0`;
  await addNetns(podNs);
  const base = { SKIFF_CNI_SOCKET: sock, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'fuzz1', CNI_NETNS: `/var/run/netns/${podNs}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
  const without = (k: string): Record<string, string> => Object.fromEntries(Object.entries(base).filter(([x]) => x !== k));
  const cases: CniCase[] = [
    { name: 'no CNI_COMMAND', env: without('CNI_COMMAND'), stdin: good, codes: [4] },
    { name: 'unknown command', env: { ...base, CNI_COMMAND: 'EXPLODE' }, stdin: good, codes: [4] },
    { name: 'no container id', env: without('CNI_CONTAINERID'), stdin: good, codes: [4] },
    { name: 'bad container id', env: { ...base, CNI_CONTAINERID: '../../etc' }, stdin: good, codes: [4] },
    { name: 'no netns', env: without('CNI_NETNS'), stdin: good, codes: [4] },
    { name: 'netns does not exist', env: { ...base, CNI_NETNS: '/var/run/netns/skiffg-fz-nope' }, stdin: good, codes: [3] },
    { name: 'ifname too long', env: { ...base, CNI_IFNAME: 'abcdefghijklmnopq' }, stdin: good, codes: [4] },
    { name: 'ifname with slash', env: { ...base, CNI_IFNAME: 'et/h0' }, stdin: good, codes: [4] },
    { name: 'CNI_ARGS junk', env: { ...base, CNI_ARGS: '=;;K8S_POD_NAME' }, stdin: good, codes: [4] },
    { name: 'empty stdin', env: base, stdin: '', codes: [6] },
    { name: 'not JSON', env: base, stdin: '{{{ nope', codes: [6] },
    { name: 'JSON array', env: base, stdin: '[1,2,3]', codes: [6, 7] },
    { name: 'binary stdin', env: base, stdin: Buffer.from([0, 1, 2, 255, 254, 0, 10]), codes: [6] },
    { name: '4 MiB stdin', env: base, stdin: `{"cniVersion":"1.0.0","name":"${'x'.repeat(4 << 20)}"}`, codes: [6, 7] },
    { name: 'unsupported version', env: base, stdin: JSON.stringify({ ...conf, cniVersion: '9.9.9' }), codes: [1] },
    { name: 'no name', env: base, stdin: JSON.stringify({ ...conf, name: undefined }), codes: [7] },
    { name: 'podCIDRs not CIDRs', env: base, stdin: JSON.stringify({ ...conf, podCIDRs: ['banana'] }), codes: [7] },
    { name: 'mtu a string', env: base, stdin: JSON.stringify({ ...conf, mtu: 'huge' }), codes: [7] },
    { name: 'prevResult garbage', env: { ...base, CNI_COMMAND: 'CHECK' }, stdin: JSON.stringify({ ...conf, prevResult: { ips: 'x' } }), codes: [6, 7] },
  ];
  let crashes = 0;
  let wrong = 0;
  for (const k of cases) {
    const r = await runShim(c.ns, k.env, k.stdin);
    let code: unknown;
    try {
      code = (JSON.parse(r.out) as { code?: unknown }).code;
    } catch {
      code = undefined;
    }
    if (r.signal) crashes++;
    const ok = r.code !== 0 && typeof code === 'number' && k.codes.includes(code);
    if (!ok) {
      wrong++;
      log(`CNI "${k.name}": exit ${r.code ?? r.signal}, error code ${String(code)}, expected one of ${k.codes.join('/')}: ${r.out.slice(0, 200)}`);
    }
  }
  // The agent still serves a well-formed ADD and DEL after all that.
  const add = await runShim(c.ns, base, good);
  const ip = (JSON.parse(add.out || '{}') as { ips?: { address: string }[] }).ips?.[0]?.address;
  const del = await runShim(c.ns, { ...base, CNI_COMMAND: 'DEL' }, good);
  if (add.code !== 0 || !ip || del.code !== 0) {
    wrong++;
    log(`well-formed ADD/DEL after the bad input failed: ADD ${add.code} ${add.out.slice(0, 200)} DEL ${del.code}`);
  }
  if (c.agent.proc.exitCode !== null) crashes++;
  log(`${cases.length} malformed CNI calls: ${wrong} wrong answers, ${crashes} crashes; then ADD -> ${ip ?? 'nothing'}`);
  await sh('ip', ['netns', 'del', podNs]).catch(() => undefined);
  return { crashes, wrong };
}

async function apiFuzz(c: Cluster): Promise<number> {
  const bad: [('services' | 'endpointslices'), unknown][] = [
    ['services', { metadata: { name: 'bad1', namespace: 'default' }, spec: { clusterIP: 'banana', ports: [{ port: 99999, protocol: 'SCTPX' }] } }],
    ['services', { metadata: { name: 'bad2', namespace: 'default' }, spec: { type: 'ExternalName', externalName: '..!!..' } }],
    ['services', { metadata: { name: 'bad3', namespace: 'default' }, spec: null }],
    ['services', { metadata: { name: 'bad4', namespace: 'default' }, spec: { clusterIP: '10.96.0.30', clusterIPs: 'x', ports: 'all' } }],
    ['services', { metadata: { namespace: 'default' } }],
    ['services', { metadata: { name: 'bad9', namespace: 'default', labels: 'x' }, spec: { clusterIP: '10.96.0.50', ports: [{ port: '80' }], selector: [] } }],
    ['endpointslices', { metadata: { name: 'bad5', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['not-an-ip', '999.1.1.1'] }], ports: [{ port: -1 }] }],
    ['endpointslices', { metadata: { name: 'bad6', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: null, ports: null }],
    ['endpointslices', { metadata: { name: 'bad7', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'FQDN', endpoints: [{ addresses: ['a.b.c'] }] }],
    ['endpointslices', { metadata: { name: 'bad8', namespace: 'default' }, addressType: 'IPv4', endpoints: [{ addresses: [{ ip: 1 }], conditions: 'ready' }] }],
  ];
  for (const [res, obj] of bad) c.api.store.putRaw(res, obj);
  // A valid write after the junk must still arrive: the watch streams survived.
  c.api.store.create('services', serviceObject('after', '10.96.0.40'));
  c.api.store.create('endpointslices', sliceObject('after', ['10.244.0.9']));
  let failures = 0;
  try {
    await until('after.default resolves', async () => ((await probe(c, 'after.default.svc.cluster.local', ['10.96.0.40'])) ? true : undefined), 20_000, 200);
  } catch (e) {
    failures++;
    log(`valid Service created after invalid objects never resolved: ${(e as Error).message}`);
  }
  if (!(await probe(c, 'web.default.svc.cluster.local', ['10.96.0.20']))) failures++;
  const crashed = c.agent.proc.exitCode !== null ? 1 : 0;
  log(`${bad.length} invalid Services/EndpointSlices: agent ${crashed ? 'DIED' : 'alive'}, ${failures} failed checks after`);
  return failures + crashed * 1000;
}

export async function runFuzz(packets: number): Promise<FuzzResult> {
  const c = await startCluster(P, 253);
  let crashes = 0;
  let wrong = 0;
  let probes = 0;
  try {
    // /readyz can pass a moment before the DNS workers have bound; give them that moment.
    await until('DNS answers web.default', async () => ((await probe(c, 'web.default.svc.cluster.local', ['10.96.0.20'])) ? true : undefined), 20_000, 200);
    try {
      probes += await dnsFuzz(c, packets);
    } catch (e) {
      crashes++;
      log(String(e));
    }
    if (c.agent.proc.exitCode === null) {
      const cni = await cniFuzz(c);
      crashes += cni.crashes;
      wrong += cni.wrong;
    }
    if (c.agent.proc.exitCode === null) {
      const f = await apiFuzz(c);
      if (f >= 1000) crashes++;
      probes += f % 1000;
    }
    return { fuzz_crashes: crashes, fuzz_wrong_errors: wrong, fuzz_probe_failures: probes };
  } finally {
    await c.close();
  }
}
