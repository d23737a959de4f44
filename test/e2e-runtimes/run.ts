// npm run e2e:runtimes: Debian's containerd (ctr run --cni, go-cni) and podman (CNI backend,
// libcni) run busybox containers on a two-node sandbox through the conflist the skiff agent wrote
// and the static skiff-cni shim it installed, the way kubelet's runtime would. Checks: eth0 from the
// node's podCIDR, containers reaching each other and a sandbox pod across nodes without NAT, a
// ClusterIP, cluster DNS, hostPort through portmap (podman -p), and the address released on stop.
// Exit: 0 pass, 1 a check failed, 3 setup failed, 77 a prerequisite is missing.
import { readFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../common/self.js';
import { podIPs, podReady } from '../../sandbox/endpointslices.js';
import { SandboxClient } from '../../sandbox/client.js';
import { DNS_SERVICE_IP } from '../../sandbox/names.js';
import {
  background, busyboxRootfs, Checks, eth0Address, Exit, EXIT_FAILED, EXIT_PREREQ, EXIT_SETUP, expectEqual, hasCommand, HTTPD, httpGet, inCidr, inNodeNet, run, sandboxUp, until, type Sandbox,
} from './support.js';

const TAG = 'e2e-runtimes';
const NAME = 'skiffrt';
const SUBNET = '172.31.237.0/24';
const WORK = '/tmp/skiffrt-e2e';
const IMAGE = 'localhost/skiff-busybox:e2e';
const CTR_NS = 'skiffe2e';
const HOST_PORT = 18080;
const SHIM = join(projectRoot, 'dist/bin/skiff-cni');
// A sandbox pod: answers "<pod name> <client address>", so a check sees whether it was NATed.
const SERVER = "require('http').createServer((q, s) => s.end(process.env.POD_NAME + ' ' + q.socket.remoteAddress.replace('::ffff:', ''))).listen(8080)";

function prerequisites(): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const c of ['containerd', 'ctr', 'podman', 'runc', 'conmon', 'nsenter', 'unshare', 'ip', 'curl']) if (!hasCommand(c)) missing.push(c);
  if (!existsSync('/bin/busybox')) missing.push('/bin/busybox (busybox-static)');
  if (!existsSync('/usr/lib/cni/portmap')) missing.push('/usr/lib/cni/portmap (containernetworking-plugins)');
  if (!existsSync(SHIM)) missing.push(`${SHIM} (npm run build)`);
  if (missing.length) throw new Exit(EXIT_PREREQ, `missing: ${missing.join(', ')}`);
}

function containersConf(binDir: string, confDir: string): string {
  // This VM lacks CAP_SYS_RESOURCE (podman's default ulimits fail) and has hybrid cgroups (crun
  // and the systemd manager fail): runc with cgroupfs, no ulimits. The node's CNI dirs, as kubelet's
  // runtime on that node would have them.
  return [
    '[containers]',
    'default_ulimits = []',
    '[engine]',
    'cgroup_manager = "cgroupfs"',
    'runtime = "runc"',
    'events_logger = "file"',
    `[network]`,
    'network_backend = "cni"',
    `cni_plugin_dirs = ["${binDir}"]`,
    `network_config_dir = "${confDir}"`,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  prerequisites();
  const t0 = Date.now();
  const checks = new Checks(TAG);
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  let sb: Sandbox | undefined;
  let containerd: ReturnType<typeof background> | undefined;
  let ctrRun: ReturnType<typeof background> | undefined;
  const podmanEnv = { ...process.env, CONTAINERS_CONF: join(WORK, 'containers.conf') };
  const podman = (args: string[]) => ['podman', '--root', join(WORK, 'podman/root'), '--runroot', join(WORK, 'podman/run'), '--storage-driver', 'vfs', '--runtime', 'runc', '--cgroup-manager', 'cgroupfs', '--network-backend', 'cni', ...args];
  const ctrSock = join(WORK, 'containerd/containerd.sock');
  const ctr = (args: string[]) => ['ctr', '-a', ctrSock, '-n', CTR_NS, ...args];
  const sh = (argv: string[], env?: NodeJS.ProcessEnv) => run(argv[0]!, argv.slice(1), env ? { env } : {});
  try {
    // --- setup: sandbox, images, containerd, sandbox pods and a Service ---
    try {
      sb = await sandboxUp(NAME, SUBNET, 2);
    } catch (e) {
      throw new Exit(EXIT_SETUP, `sandbox up: ${(e as Error).message}`);
    }
    const extNs = sb.l.extNs;
    const [n1, n2] = sb.nodes as [Sandbox['nodes'][number], Sandbox['nodes'][number]];
    const client = SandboxClient.load(sb.l.kubeconfig);
    const podCIDR = async (node: string) => ((await client.get('nodes', node)).spec as { podCIDR: string }).podCIDR;
    const ipamFile = (n: typeof n1, ip: string) => join(n.dir, 'var/lib/skiff/ipam/skiff', ip);
    writeFileSync(join(WORK, 'containers.conf'), containersConf(n1.cniBinDir, n1.cniConfDir));

    const pod = (name: string, node: string) => ({
      apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'rt', labels: { app: 'target' } },
      spec: { nodeName: node, containers: [{ name: 'c', command: [process.execPath, '-e', SERVER], env: [{ name: 'POD_NAME', value: name }], ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 } }] },
    });
    const manifest = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'rt' } },
      pod('target-1', n1.name),
      pod('target-2', n2.name),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'target', namespace: 'rt' }, spec: { selector: { app: 'target' }, ports: [{ port: 80, targetPort: 'http' }] } },
    ];
    await sb.cli(['apply', '-f', '-'], manifest.map((o) => JSON.stringify(o)).join('\n---\n'));

    busyboxRootfs(WORK);
    await sh(['tar', '-C', join(WORK, 'rootfs'), '-cf', join(WORK, 'rootfs.tar'), '.']);
    await sh(podman(['import', '--quiet', join(WORK, 'rootfs.tar'), IMAGE]), podmanEnv);
    await sh(podman(['save', '--quiet', '--format', 'docker-archive', '-o', join(WORK, 'image.tar'), IMAGE]), podmanEnv);
    mkdirSync(join(WORK, 'containerd'), { recursive: true });
    writeFileSync(
      join(WORK, 'containerd/config.toml'),
      [
        'version = 2',
        `root = "${join(WORK, 'containerd/root')}"`,
        `state = "${join(WORK, 'containerd/state')}"`,
        // ctr run --cni does the CNI work in ctr itself; the CRI plugin would only look for CNI
        // config of its own.
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${ctrSock}"`,
        '[ttrpc]',
        `  address = "${ctrSock}.ttrpc"`,
        '',
      ].join('\n'),
    );
    let containerdLog = '';
    containerd = background(['containerd', '--config', join(WORK, 'containerd/config.toml')], (s) => (containerdLog = (containerdLog + s).slice(-4000)));
    await until('containerd to serve', () => sh(ctr(['version'])).then(() => true), 30_000).catch((e: Error) => {
      throw new Exit(EXIT_SETUP, `${e.message}\n${containerdLog}`);
    });
    await sh(ctr(['image', 'import', join(WORK, 'image.tar')]));

    const targets = await until('the sandbox pods to be ready', async () => {
      const items = (await client.list('pods', 'rt')).items;
      return items.length === 2 && items.every(podReady) ? new Map(items.map((p) => [p.metadata.name!, podIPs(p)[0]!])) : undefined;
    }, 90_000).catch((e: Error) => {
      throw new Exit(EXIT_SETUP, e.message);
    });
    const clusterIP = ((await client.get('services', 'target', 'rt')).spec as { clusterIP: string }).clusterIP;

    await checks.check('each node has the agent-installed static shim and a conflist chaining portmap', async () => {
      for (const n of [n1, n2]) {
        if (!readFileSync(join(n.cniBinDir, 'skiff')).equals(readFileSync(SHIM))) throw new Error(`${n.cniBinDir}/skiff is not dist/bin/skiff-cni`);
        const conf = JSON.parse(readFileSync(join(n.cniConfDir, '10-skiff.conflist'), 'utf8')) as { plugins: { type: string }[] };
        // The sandbox links Debian's portmap and bandwidth into each node, and the agent chains what it finds.
        expectEqual(`${n.name} conflist plugins`, conf.plugins.map((p) => p.type), ['skiff', 'portmap', 'bandwidth']);
      }
    });

    // --- podman on node 1: an HTTP container with a hostPort ---
    const podmanNode1 = (args: string[]) => sh(inNodeNet(n1.name, podman(args)), podmanEnv);
    await podmanNode1(['run', '-d', '--name', 'rt-podman', '--network', 'skiff', '-p', `${HOST_PORT}:8080`, '--dns', DNS_SERVICE_IP, '--dns-search', 'rt.svc.cluster.local', IMAGE, ...HTTPD]).catch((e: Error) => {
      throw new Exit(EXIT_FAILED, `podman run through skiff's CNI failed: ${e.message}`);
    });
    const podmanIP = eth0Address(await podmanNode1(['exec', 'rt-podman', 'ip', '-4', '-o', 'addr', 'show', 'eth0']));
    const podmanName = (await podmanNode1(['exec', 'rt-podman', 'hostname'])).trim();

    // --- containerd on node 2: ctr run --cni in the foreground, as its --rm runs the CNI DEL on exit.
    // ctr reads /etc/cni/net.d and /opt/cni/bin: in a private mount namespace those are the node's.
    let ctrLog = '';
    const mounts = [
      'set -e',
      `mount --bind ${n2.cniConfDir} /etc/cni/net.d`,
      'mount -t tmpfs skiff-e2e /opt',
      'mkdir -p /opt/cni/bin',
      `mount --bind ${n2.cniBinDir} /opt/cni/bin`,
      `exec ${ctr(['run', '--rm', '--cni', IMAGE, 'rt-ctr', ...HTTPD.slice(0, 2)]).join(' ')} '${HTTPD[2]}'`,
    ].join('\n');
    mkdirSync('/etc/cni/net.d', { recursive: true });
    ctrRun = background(inNodeNet(n2.name, ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', mounts]), (s) => (ctrLog = (ctrLog + s).slice(-4000)));
    let execs = 0;
    const ctrExec = (argv: string[]) => sh(ctr(['task', 'exec', '--exec-id', `e${execs++}`, 'rt-ctr', ...argv]));
    const ctrIP = await until('the containerd container to run with an address', async () => eth0Address(await ctrExec(['ip', '-4', '-o', 'addr', 'show', 'eth0'])), 30_000).catch((e: Error) => {
      throw new Exit(EXIT_FAILED, `ctr run --cni through skiff's CNI failed: ${e.message}\n${ctrLog}`);
    });
    const ctrName = (await ctrExec(['hostname'])).trim();
    console.log(`${TAG}: podman container ${podmanIP} on ${n1.name}, containerd container ${ctrIP} on ${n2.name}, ClusterIP ${clusterIP}`);

    await checks.check('eth0 addresses come from each node\'s podCIDR and are recorded by skiff\'s IPAM', async () => {
      if (!inCidr(podmanIP, await podCIDR(n1.name))) throw new Error(`podman ${podmanIP} not in ${await podCIDR(n1.name)}`);
      if (!inCidr(ctrIP, await podCIDR(n2.name))) throw new Error(`containerd ${ctrIP} not in ${await podCIDR(n2.name)}`);
      if (!existsSync(ipamFile(n1, podmanIP)) || !existsSync(ipamFile(n2, ctrIP))) throw new Error('no IPAM record');
    });
    await checks.check('containerd container -> podman container on the other node', async () => {
      expectEqual('answer', (await ctrExec(httpGet(podmanIP, 8080))).trim(), podmanName);
    });
    await checks.check('podman container -> containerd container on the other node', async () => {
      expectEqual('answer', (await podmanNode1(['exec', 'rt-podman', ...httpGet(ctrIP, 8080)])).trim(), ctrName);
    });
    await checks.check('each container -> the sandbox pod on the other node, keeping its address', async () => {
      expectEqual('from podman', (await podmanNode1(['exec', 'rt-podman', ...httpGet(targets.get('target-2')!, 8080)])).trim(), `target-2 ${podmanIP}`);
      expectEqual('from containerd', (await ctrExec(httpGet(targets.get('target-1')!, 8080))).trim(), `target-1 ${ctrIP}`);
    });
    await checks.check('each container -> the ClusterIP, reaching both endpoints', async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 12; i++) {
        for (const [who, ip, get] of [['podman', podmanIP, (a: string[]) => podmanNode1(['exec', 'rt-podman', ...a])], ['containerd', ctrIP, ctrExec]] as const) {
          const [name, src] = (await get(httpGet(clusterIP, 80))).trim().split(' ');
          if (src !== ip) throw new Error(`${who} seen as ${src} through the ClusterIP`);
          seen.add(name!);
        }
      }
      expectEqual('endpoints seen', [...seen].sort(), ['target-1', 'target-2']);
    });
    await checks.check('cluster DNS: the Service name resolves in both containers', async () => {
      // podman: through the resolv.conf it wrote from --dns/--dns-search (short name, search path).
      const p = await podmanNode1(['exec', 'rt-podman', 'nslookup', 'target']);
      if (!p.includes(`Address: ${clusterIP}`)) throw new Error(`podman nslookup target: ${p}`);
      const c = await ctrExec(['nslookup', 'target.rt.svc.cluster.local', DNS_SERVICE_IP]);
      if (!c.includes(`Address: ${clusterIP}`)) throw new Error(`containerd nslookup: ${c}`);
      const k = await ctrExec(['nslookup', 'kubernetes.default.svc.cluster.local', DNS_SERVICE_IP]);
      if (!/Address: 10\.96\.0\.1\b/.test(k)) throw new Error(`containerd nslookup kubernetes: ${k}`);
    });
    await checks.check('hostPort (podman -p, portMappings through portmap) answers from outside the node', async () => {
      const out = await run('ip', ['netns', 'exec', extNs, 'curl', '-s', '-m', '3', `http://${n1.ip}:${HOST_PORT}/`]);
      expectEqual('answer', out.trim(), podmanName);
    });

    await checks.check('stopping the podman container releases its address and its hostPort', async () => {
      await podmanNode1(['rm', '-f', '-t', '1', 'rt-podman']);
      await until('the podman address to be released', async () => !existsSync(ipamFile(n1, podmanIP)), 15_000);
      const after = await run('ip', ['netns', 'exec', extNs, 'curl', '-s', '-m', '2', `http://${n1.ip}:${HOST_PORT}/`]).catch(() => 'refused');
      if (after.trim() === podmanName) throw new Error('the hostPort still answers');
    });
    await checks.check('stopping the containerd container releases its address', async () => {
      await sh(ctr(['task', 'kill', '-s', 'KILL', 'rt-ctr']));
      await until('ctr run to exit after its CNI DEL', async () => ctrRun!.exitCode !== null, 15_000);
      await until('the containerd address to be released', async () => !existsSync(ipamFile(n2, ctrIP)), 15_000);
      const left = await sh(ctr(['containers', 'ls', '-q']));
      expectEqual('containers left', left.trim(), '');
    });

    console.log(`${TAG}: ${checks.failed.length === 0 ? 'all checks passed' : `${checks.failed.length} failed: ${checks.failed.join('; ')}`} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    if (checks.failed.length) throw new Exit(EXIT_FAILED, `${checks.failed.length} check(s) failed`);
  } finally {
    await run('podman', podman(['rm', '-af', '-t', '0']).slice(1), { env: podmanEnv }).catch(() => '');
    if (ctrRun && ctrRun.exitCode === null) {
      await sh(ctr(['task', 'kill', '-s', 'KILL', 'rt-ctr'])).catch(() => '');
      await until('ctr run to exit', async () => ctrRun!.exitCode !== null, 10_000).catch(() => ctrRun!.kill('SIGKILL'));
    }
    if (containerd && containerd.exitCode === null) {
      containerd.kill('SIGTERM');
      await until('containerd to stop', async () => containerd!.exitCode !== null, 10_000).catch(() => containerd!.kill('SIGKILL'));
    }
    if (!process.env.KEEP) {
      await sb?.down();
      await run('umount', ['-R', WORK]).catch(() => '');
      rmSync(WORK, { recursive: true, force: true });
    }
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    const code = e instanceof Exit ? e.code : EXIT_SETUP;
    console.error(`${TAG}: ${(e as Error).message}`);
    if (code === EXIT_PREREQ) console.error(`${TAG}: nothing was run (exit 77 = prerequisite missing)`);
    process.exit(code);
  },
);
