// The DaemonSet's pod, as `kubectl kustomize manifests` renders it, run by `podman kube play` on a
// sandbox node in place of the checkout's agent. The script plays the kubelet's part and no more:
// the pod gets the node's name (the scheduler's), the service account token volume and the
// KUBERNETES_SERVICE_* variables kubelet adds; the API server is the sandbox's TLS listener (what
// its `kubernetes` Service points at), as in-cluster clients require. The node's "host paths" are its sandbox directories: podman runs
// in the node's network namespace and in a mount namespace where /etc/cni/net.d, /opt/cni/bin and
// /var/lib/skiff are bind mounts of them; /run/netns is the host's (the sandbox kubelet makes pod
// namespaces there) and so is /run/skiff (the sandbox kubelet runs the shim in the host's mount
// namespace and it connects to the socket the conflist names).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { KubeObject } from '../../sandbox/apiserver/resources.js';
import { SandboxClient } from '../../sandbox/client.js';
import { podIPs, podReady } from '../../sandbox/endpointslices.js';
import { API_TLS_PORT, DNS_SERVICE_IP, podNetns } from '../../sandbox/names.js';
import { background, type Checks, expectEqual, inCidr, inNodeNet, run, sandboxUp, until, type Sandbox } from '../e2e-runtimes/support.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;
const NAME = 'skiffim';
const SUBNET = '172.31.238.0/24';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const SERVER = "require('http').createServer((q, s) => s.end(process.env.POD_NAME + ' ' + q.socket.remoteAddress.replace('::ffff:', ''))).listen(8080)";

/**
 * The Pod kubelet would run from the DaemonSet template on `node`, with kubelet's own additions, and
 * what podman 4.3 needs to do what kubelet does: the downward API's spec.nodeName is resolved
 * (podman knows only metadata.* fields), containerPorts are left out (podman refuses port mappings
 * on a host-network pod; in Kubernetes they are informational there), init containers are kept
 * after they ran (podman's default removes them, which races with their exit on a loaded machine),
 * and the pod restarts containers OnFailure: podman before 4.6 gives init containers the pod's
 * restartPolicy (containers/podman#16343, fixed by #18481), so with the DaemonSet's Always it ran
 * install-cni again and again until conmon gave up, some 60 s before the agent even started. The
 * agent still comes back whenever it fails; it exits 0 only when told to stop.
 */
export function podFromDaemonSet(ds: Obj, node: string, api: { host: string; port: number }, saDir: string): Obj {
  const tmpl = ds.spec.template as Obj;
  const withApi = ({ ports: _ports, ...c }: Obj): Obj => ({
    ...c,
    env: [
      ...((c.env ?? []) as Obj[]).map((e) => (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName' ? { name: e.name, value: node } : e)),
      { name: 'KUBERNETES_SERVICE_HOST', value: api.host },
      { name: 'KUBERNETES_SERVICE_PORT', value: String(api.port) },
    ],
    volumeMounts: [...(c.volumeMounts ?? []), { name: 'kube-api-access', mountPath: SA_DIR, readOnly: true }],
  });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `${ds.metadata.name}-${node}`, namespace: ds.metadata.namespace, labels: tmpl.metadata.labels, annotations: { ...tmpl.metadata.annotations, 'io.podman.annotations.init.container.type': 'always' } },
    spec: {
      ...tmpl.spec,
      nodeName: node,
      restartPolicy: 'OnFailure',
      initContainers: (tmpl.spec.initContainers as Obj[]).map(withApi),
      containers: (tmpl.spec.containers as Obj[]).map(withApi),
      volumes: [...tmpl.spec.volumes, { name: 'kube-api-access', hostPath: { path: saDir, type: 'Directory' } }],
    },
  };
}

export async function kubePlay(o: { rendered: Obj[]; podman: readonly string[]; podmanEnv: NodeJS.ProcessEnv; work: string; checks: Checks; log: (s: string) => void }): Promise<void> {
  const { checks, log, work } = o;
  mkdirSync(work, { recursive: true });
  let sb: Sandbox | undefined;
  let player: ReturnType<typeof background> | undefined;
  const runSkiffBefore = existsSync('/run/skiff');
  const podmanEnv = { ...o.podmanEnv, CONTAINERS_CONF: join(work, 'containers.conf') };
  const podmanCmd = (args: string[]) => run(o.podman[0]!, [...o.podman.slice(1), ...args], { env: podmanEnv, timeoutMs: 120_000 });
  const podmanBoth = (args: string[]) =>
    new Promise<string>((resolve) => {
      execFile(o.podman[0]!, [...o.podman.slice(1), ...args], { env: podmanEnv, timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => resolve(`${stdout}${stderr}${err && !stdout && !stderr ? err.message : ''}`));
    });
  const madeDirs = ['/etc/cni/net.d', '/var/lib/skiff'].filter((d) => !existsSync(d));
  try {
    sb = await sandboxUp(NAME, SUBNET, 2, { externalAgents: [`${NAME}-node-1`] });
    const [n1, n2] = sb.nodes as [Sandbox['nodes'][number], Sandbox['nodes'][number]];
    const client = SandboxClient.load(sb.l.kubeconfig);
    log(`sandbox ${NAME} up; ${n1.name} has no agent of the checkout`);
    // The node's conditions as kubectl shows them: type -> "status reason".
    const conditions = async (): Promise<Record<string, string>> => {
      const out = await run('kubectl', ['--kubeconfig', sb!.l.kubeconfig, 'get', 'node', n1.name, '-o', 'jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}{"\\n"}{end}']);
      return Object.fromEntries(out.trim().split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    };
    // Nothing of skiff has touched this node yet: whatever network condition it shows later was written by the pod.
    if ((await conditions()).NetworkUnavailable !== undefined) throw new Error(`${n1.name} has a NetworkUnavailable condition before any agent ran`);

    // kubeadm's preflight requires forwarding on a node; /proc/sys is read-only in the pod.
    await run('ip', ['netns', 'exec', n1.name, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);

    // The sandbox's own TLS listener (what its `kubernetes` Service points at) and its certificate.
    const sa = join(work, 'serviceaccount');
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'token'), 'skiff-e2e-image-token');
    writeFileSync(join(sa, 'ca.crt'), readFileSync(sb.l.apiCaFile));
    writeFileSync(join(sa, 'namespace'), 'kube-system');

    const ds = o.rendered.find((x) => x.kind === 'DaemonSet')!;
    const cm = o.rendered.find((x) => x.kind === 'ConfigMap' && x.metadata.name === 'skiff-config')!;
    const pod = podFromDaemonSet(ds, n1.name, { host: sb.l.hostIP, port: API_TLS_PORT }, sa);
    const yaml = [cm, pod].map((d) => stringify(d)).join('---\n');
    writeFileSync(join(work, 'pod.yaml'), yaml);

    for (const d of ['/etc/cni/net.d', '/var/lib/skiff']) mkdirSync(d, { recursive: true });
    const nodeState = join(n1.dir, 'var/lib/skiff');
    mkdirSync(nodeState, { recursive: true });
    const script = [
      'set -e',
      `mount --bind ${n1.cniConfDir} /etc/cni/net.d`,
      'mount -t tmpfs skiff-e2e /opt',
      'mkdir -p /opt/cni/bin',
      `mount --bind ${n1.cniBinDir} /opt/cni/bin`,
      `mount --bind ${nodeState} /var/lib/skiff`,
      `${o.podman.join(' ')} kube play ${join(work, 'pod.yaml')}`,
      // The pod's processes keep this mount namespace; this shell only waits to be told to go.
      'exec sleep infinity',
    ].join('\n');
    let playLog = '';
    // podman keeps its own network configs (the default kube network it creates) out of the node's
    // CNI directory, where the sandbox kubelet would take them for the node's network.
    const conf = join(work, 'containers.conf');
    writeFileSync(conf, `${readFileSync(o.podmanEnv.CONTAINERS_CONF!, 'utf8')}[network]\nnetwork_config_dir = "${join(work, 'podman-cni')}"\n`);
    mkdirSync(join(work, 'podman-cni'), { recursive: true });
    player = background(inNodeNet(n1.name, ['unshare', '--mount', '--propagation', 'slave', 'env', `CONTAINERS_CONF=${conf}`, 'sh', '-c', script]), (s) => (playLog = (playLog + s).slice(-6000)));
    const podName = pod.metadata.name as string;
    // What a failed check prints: each container's state and exit status and its log. The agent
    // logs to stderr, which `podman logs` replays on its own stderr: both streams are kept.
    let shown = false;
    const agentLogs = async (): Promise<string> => {
      if (shown) return '(the containers\' states and logs are printed above)';
      shown = true;
      const out: string[] = [`kube play (exit ${player?.exitCode ?? 'running'}): ${playLog.trim() || '(no output)'}`];
      for (const c of [...(pod.spec.initContainers as Obj[]), ...(pod.spec.containers as Obj[])]) {
        const name = `${podName}-${c.name as string}`;
        const state = await podmanCmd(['inspect', '--format', '{{.State.Status}}, exit status {{.State.ExitCode}}, restarts {{.RestartCount}} {{.State.Error}}', name]).catch((e: Error) => e.message);
        const logs = await podmanBoth(['logs', '--tail', '60', name]);
        out.push(`--- container ${name}: ${state.trim()}\n${logs.trim() || '(empty log)'}`);
      }
      return out.join('\n');
    };

    await checks.check('podman kube play runs the rendered pod: install-cni puts the shim on the node, the agent turns /readyz green', async () => {
      await until('the agent /readyz on the node address', async () => (await run('ip', ['netns', 'exec', n2.name, 'curl', '-sf', '-m', '2', `http://${n1.ip}:10256/readyz`]).catch(() => '')).includes('"ok":true'), 180_000).catch(async (e: Error) => {
        throw new Error(`${e.message}\n${await agentLogs()}`);
      });
      const shim = readFileSync(join(n1.cniBinDir, 'skiff'));
      if (shim.length < 100_000) throw new Error('no shim installed in the node bin dir');
      // As under a kubelet: the init container ran once, succeeded, and the agent started after it.
      expectEqual('install-cni', (await podmanCmd(['inspect', '--format', '{{.State.Status}} exit {{.State.ExitCode}} restarts {{.RestartCount}}', `${podName}-install-cni`])).trim(), 'exited exit 0 restarts 0');
    });
    // Everything after needs the agent: its failure is printed above; waiting for the rest adds nothing.
    if (checks.failed.length) return;
    await checks.check('the node is Ready with its pod network up: kubectl shows Ready=True and the agent\'s NetworkUnavailable=False; conflist and VTEP published', async () => {
      const conf = JSON.parse(readFileSync(join(n1.cniConfDir, '10-skiff.conflist'), 'utf8')) as Obj;
      expectEqual('plugins', (conf.plugins as Obj[])[0]!.type, 'skiff');
      const node = await client.get('nodes', n1.name);
      if (!node.metadata.annotations?.['skiff.io/vtep-mac']) throw new Error('no skiff.io/vtep-mac annotation');
      // Ready is the kubelet's (the sandbox's stand-in posts it); NetworkUnavailable is the agent's.
      const c = await until('the agent\'s NetworkUnavailable condition', async () => ((await conditions()).NetworkUnavailable ? conditions() : undefined), 30_000).catch(async (e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify(await conditions())}\n${await agentLogs()}`);
      });
      expectEqual('Ready', c.Ready?.split(' ')[0], 'True');
      expectEqual('NetworkUnavailable', c.NetworkUnavailable, 'False SkiffIsUp');
    });

    const podSpec = (name: string, node: string) => ({
      apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'img', labels: { app: 'web' } },
      spec: { nodeName: node, containers: [{ name: 'c', command: [process.execPath, '-e', SERVER], env: [{ name: 'POD_NAME', value: name }], ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 } }] },
    });
    const manifest = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'img' } },
      podSpec('web-1', n1.name),
      podSpec('web-2', n2.name),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'img' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' }] } },
    ];
    await sb.cli(['apply', '-f', '-'], manifest.map((x) => JSON.stringify(x)).join('\n---\n'));
    let pods: KubeObject[] = [];
    await checks.check('pods on that node get addresses from its podCIDR through the pod\'s agent and become ready', async () => {
      pods = await until('both pods ready', async () => {
        const items = (await client.list('pods', 'img')).items;
        return items.length === 2 && items.every(podReady) ? items : undefined;
      }, 90_000).catch(async (e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify((await client.list('pods', 'img')).items.map((p) => p.status))}\n${await agentLogs()}`);
      });
      const p1 = pods.find((p) => p.metadata.name === 'web-1')!;
      const cidr = ((await client.get('nodes', n1.name)).spec as { podCIDR: string }).podCIDR;
      if (!inCidr(podIPs(p1)[0]!, cidr)) throw new Error(`web-1 ${podIPs(p1)[0]} not in ${cidr}`);
    });
    if (pods.length === 2) {
      const p1 = pods.find((p) => p.metadata.name === 'web-1')!;
      const ns1 = podNetns(NAME, p1.metadata.uid!);
      const ip1 = podIPs(p1)[0]!;
      const clusterIP = ((await client.get('services', 'web', 'img')).spec as { clusterIP: string }).clusterIP;
      const curl = (url: string) => run('ip', ['netns', 'exec', ns1, 'curl', '-s', '-m', '3', url]).catch((e: Error) => e.message);
      await checks.check('from that node\'s pod: the pod on the other node and the ClusterIP (both endpoints) answer, source kept', async () => {
        const ip2 = podIPs(pods.find((p) => p.metadata.name === 'web-2')!)[0]!;
        expectEqual('pod on node 2', (await curl(`http://${ip2}:8080/`)).trim(), `web-2 ${ip1}`);
        // The Service's rules follow the pods' readiness through the EndpointSlice: wait until the
        // proxy reaches both endpoints (as upstream e2e polls), then every request must be answered.
        const seen = new Set<string>();
        await until('the ClusterIP reaching both endpoints', async () => {
          const a = (await curl(`http://${clusterIP}/`)).trim();
          if (/^web-\d /.test(a)) seen.add(a.split(' ')[0]!);
          return seen.size === 2;
        }, 30_000).catch((e: Error) => {
          throw new Error(`${e.message}: reached ${JSON.stringify([...seen])}`);
        });
        const answers = new Map<string, number>();
        for (let i = 0; i < 16; i++) {
          const a = (await curl(`http://${clusterIP}/`)).trim();
          const who = /^web-\d /.test(a) ? a.split(' ')[0]! : `error: ${a}`;
          answers.set(who, (answers.get(who) ?? 0) + 1);
        }
        expectEqual('endpoints answering 16 requests', [...answers.keys()].sort(), ['web-1', 'web-2']);
      });
      await checks.check('from that node\'s pod: cluster DNS served by the pod\'s agent answers', async () => {
        const out = await run('ip', ['netns', 'exec', ns1, 'dig', '+short', '+time=2', '+tries=2', `@${DNS_SERVICE_IP}`, 'web.img.svc.cluster.local']);
        expectEqual('A', out.trim(), clusterIP);
      });
    }
  } finally {
    if (process.env.KEEP) {
      log(`KEEP: the pod, sandbox ${NAME} and ${work} stay; CONTAINERS_CONF=${join(work, 'containers.conf')} ${o.podman.join(' ')} logs|exec|inspect ...; clean up with pod rm -f -a, kill ${player?.pid ?? '-'}, SKIFF_SANDBOX_DIR=/tmp/${NAME}-state npm run skiff -- sandbox down --name ${NAME}, rm -rf ${work}${runSkiffBefore ? '' : ' /run/skiff'}`);
    } else {
      if (existsSync(join(work, 'containers.conf'))) await podmanCmd(['pod', 'rm', '-f', '-t', '5', '-a']).catch((e: Error) => log(`pod rm: ${e.message}`));
      player?.kill('SIGTERM');
      await sb?.down();
      if (!runSkiffBefore) rmSync('/run/skiff', { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
      for (const d of madeDirs) {
        try {
          rmdirSync(d);
        } catch {
          // Not empty: someone else uses it now; leave it.
        }
      }
    }
  }
}
