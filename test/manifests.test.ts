// The install manifests against the code they deploy: probes on the ports the agent listens on,
// hostPath mounts and capabilities that some source actually needs, RBAC without wildcards, a
// ConfigMap that the agent's own parser accepts, and the kind files agreeing with each other.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isMap, isSeq, parse as parseYaml, type Scalar } from 'yaml';
import { configSchema, isCidr, parseConfig } from '../common/config.js';
import { splitHostPort } from '../common/http.js';
import { baseDir, baseObjects, find, manifestsDir, objects, root, runtimeSources, sourcesMatching, yamlDocuments, type Obj } from './manifests/load.js';
import { hasTool, missing } from './support/env.js';

const ds = find('DaemonSet', 'skiff');
const pod = ds.spec.template.spec as Obj;
const agent = (pod.containers as Obj[]).find((c) => c.name === 'skiff')!;
const configMap = find('ConfigMap', 'skiff-config');
const configText = configMap.data['config.yaml'] as string;
const deployed = parseConfig({ ...(parseYaml(configText) as object), nodeName: 'node-a' });
const defaults = parseConfig({ nodeName: 'node-a' });
const sources = runtimeSources();

// Why each host directory may be mounted: the source text that uses it. A mount with no entry
// here, or whose evidence is gone from the sources, fails: remove the mount, not this check.
// A real iptables backend batches through iptables-restore (the config enum naming it is no use).
const iptablesUse = /ip6?tables(-legacy|-nft)?-(restore|save)/;
const HOST_PATH_USES: Record<string, RegExp> = {
  '/opt/cni/bin': /['"]\/opt\/cni\/bin['"]/, // cni.binDir: the shim is installed here, chained plugins are probed
  '/etc/cni/net.d': /['"]\/etc\/cni\/net\.d['"]/, // cni.confDir: the agent writes 10-skiff.conflist
  '/var/lib/skiff': /['"]\/var\/lib\/skiff['"]/, // stateDir: IPAM allocations
  '/run/skiff': /['"]\/run\/skiff['"]/, // runDir: cni.sock, which the host's shim connects to
  '/run/netns': /['"`]nsenter['"`]|setns/, // the runtime's pod namespaces, entered by path
  '/run/xtables.lock': iptablesUse, // iptables takes this lock; it must be the host's
  '/lib/modules': /['"`]modprobe['"`]/,
  '/var/lib/cni': /['"]\/var\/lib\/cni/,
};

// Each added capability and the source that needs it.
const CAPABILITY_USES: Record<string, RegExp> = {
  NET_ADMIN: /['"`]nft['"`]|['"`]ip['"`]/,
  NET_RAW: iptablesUse,
  NET_BIND_SERVICE: /\.bind\(|\.listen\(/,
  SYS_ADMIN: /['"`]nsenter['"`]|setns/,
};

function hostPathVolumes(): Map<string, string> {
  return new Map((pod.volumes as Obj[]).filter((v) => v.hostPath).map((v) => [v.name as string, v.hostPath.path as string]));
}

describe('kustomization', () => {
  it('lists every manifest file in base/ and nothing else', () => {
    const k = objects(join(baseDir, 'kustomization.yaml'))[0]!;
    const files = readdirSync(baseDir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
    expect([...(k.resources as string[])].sort()).toEqual(files.sort());
  });

  it('installs base from manifests/ and the kind overlay builds on base', () => {
    expect(objects(join(manifestsDir, 'kustomization.yaml'))[0]!.resources).toEqual(['base']);
    expect(objects(join(manifestsDir, 'overlays/kind/kustomization.yaml'))[0]!.resources).toEqual(['../../base']);
  });

  it('tags the image with the package version', () => {
    const k = objects(join(baseDir, 'kustomization.yaml'))[0]!;
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    const img = (k.images as Obj[]).find((i) => i.name === 'skiff')!;
    expect(img.newTag).toBe(pkg.version);
    for (const c of [...(pod.initContainers as Obj[]), ...(pod.containers as Obj[])]) expect(c.image).toBe('skiff');
  });

  it('pulls a tagged image only when the node lacks it, for every runtime (podman kube play defaults to "newer")', () => {
    for (const c of [...(pod.initContainers as Obj[]), ...(pod.containers as Obj[])]) expect(c.imagePullPolicy, c.name as string).toBe('IfNotPresent');
  });

  it.skipIf(missing('kustomize build', { tools: ['kubectl'] }))('builds with kubectl kustomize, and the kind overlay sets the API server and image', () => {
    const base = execFileSync('kubectl', ['kustomize', manifestsDir], { encoding: 'utf8' });
    expect(base).toContain('kind: DaemonSet');
    const kind = execFileSync('kubectl', ['kustomize', join(manifestsDir, 'overlays/kind')], { encoding: 'utf8' });
    const kindDs = kind.split(/^---$/m).map((d) => parseYaml(d) as Obj).find((o) => o?.kind === 'DaemonSet')!;
    const c = (kindDs.spec.template.spec.containers as Obj[])[0]!;
    expect(c.args).toContain('--api-server=skiff-e2e-control-plane:6443');
    expect(c.image).toBe('skiff:e2e');
    expect(c.imagePullPolicy).toBe('Never');
    // The optional monitoring kustomization: the PodMonitor and the dashboard ConfigMap for Grafana's sidecar.
    const mon = execFileSync('kubectl', ['kustomize', join(manifestsDir, 'monitoring')], { encoding: 'utf8' }).split(/^---$/m).map((d) => parseYaml(d) as Obj);
    expect(mon.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`).sort()).toEqual(['ConfigMap/kube-system/skiff-grafana-dashboard', 'PodMonitor/kube-system/skiff']);
    const dash = mon.find((o) => o.kind === 'ConfigMap')!;
    expect(dash.metadata.labels.grafana_dashboard).toBe('1');
    expect(JSON.parse(dash.data['skiff-dashboard.json'] as string).uid).toBe('skiff-node-networking');
  });
});

describe('DaemonSet', () => {
  it('runs on every node in the host network with system-node-critical priority', () => {
    expect(ds.metadata.namespace).toBe('kube-system');
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('Default'); // ClusterFirstWithHostNet would make the DNS server ask itself
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
    expect(ds.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
  });

  it('selects its own pods and carries the kube-dns label', () => {
    const labels = ds.spec.template.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(ds.spec.selector.matchLabels as Record<string, string>)) expect(labels[k]).toBe(v);
    expect(labels['k8s-app']).toBe('kube-dns');
    const svc = find('Service', 'kube-dns');
    for (const [k, v] of Object.entries(svc.spec.selector as Record<string, string>)) expect(labels[k]).toBe(v);
  });

  it('passes NODE_NAME from the downward API', () => {
    const env = (agent.env as Obj[]).find((e) => e.name === 'NODE_NAME');
    expect(env?.valueFrom).toEqual({ fieldRef: { fieldPath: 'spec.nodeName' } });
  });

  it('probes /healthz and /readyz on the healthz address the ConfigMap configures, reachable by the kubelet', () => {
    const { host, port } = splitHostPort(deployed.healthzBindAddress);
    expect(['0.0.0.0', '::']).toContain(host); // the kubelet probes the node IP, not loopback
    expect(agent.livenessProbe.httpGet).toEqual({ path: '/healthz', port });
    expect(agent.readinessProbe.httpGet).toEqual({ path: '/readyz', port });
    expect((agent.ports as Obj[]).map((p) => p.containerPort)).toContain(port);
  });

  it('reads the ConfigMap through --config', () => {
    const arg = (agent.args as string[]).find((a) => a.startsWith('--config='))!;
    const path = arg.slice('--config='.length);
    const vol = (pod.volumes as Obj[]).find((v) => v.configMap?.name === 'skiff-config')!;
    const mount = (agent.volumeMounts as Obj[]).find((m) => m.name === vol.name)!;
    expect(path).toBe(`${mount.mountPath}/config.yaml`);
    expect(agent.args[0]).toBe('agent');
  });

  it('mounts only host paths that some runtime source uses, each at its host path', () => {
    const volumes = hostPathVolumes();
    for (const c of [...(pod.initContainers as Obj[]), ...(pod.containers as Obj[])]) {
      for (const m of (c.volumeMounts ?? []) as Obj[]) {
        const hostPath = volumes.get(m.name as string);
        if (hostPath !== undefined) expect(m.mountPath, `${c.name} mounts ${hostPath} elsewhere`).toBe(hostPath);
      }
    }
    for (const path of volumes.values()) {
      const use = HOST_PATH_USES[path];
      expect(use, `hostPath ${path} has no known use`).toBeDefined();
      expect(sourcesMatching(sources, use!), `nothing in the sources uses ${path} (${use})`).not.toEqual([]);
    }
  });

  it('mounts every host path the sources use', () => {
    const mounted = new Set(hostPathVolumes().values());
    for (const [path, use] of Object.entries(HOST_PATH_USES)) {
      const users = sourcesMatching(sources, use);
      if (users.length) expect(mounted.has(path), `${users.join(', ')} use ${path}, which is not mounted`).toBe(true);
    }
  });

  it('mounts the host directories the configured paths point at', () => {
    const mounted = new Set((agent.volumeMounts as Obj[]).map((m) => hostPathVolumes().get(m.name as string)).filter(Boolean));
    for (const dir of [deployed.stateDir, deployed.runDir, deployed.cni.confDir, deployed.cni.binDir]) expect(mounted, dir).toContain(dir);
    const netns = (agent.volumeMounts as Obj[]).find((m) => m.mountPath === '/run/netns');
    expect(netns?.mountPropagation).toBe('HostToContainer'); // namespaces created after the agent started
  });

  it('installs the CNI binary atomically: copy to a temporary name in the same directory, then rename', () => {
    const init = (pod.initContainers as Obj[]).find((c) => c.name === 'install-cni')!;
    const script = (init.command as string[]).join(' ');
    const tmp = /cp "\$src" "\$tmp"/.test(script) && /tmp=\/opt\/cni\/bin\/\./.test(script);
    expect(tmp).toBe(true);
    expect(script).toMatch(/mv -f "\$tmp" \/opt\/cni\/bin\/skiff/);
  });

  it('adds a short, explicit list of capabilities, each needed by some source and explained', () => {
    const sc = agent.securityContext as Obj;
    expect(sc.privileged ?? false).toBe(false);
    expect(sc.capabilities.drop).toEqual(['ALL']);
    const added = sc.capabilities.add as string[];
    expect(added.length).toBeLessThanOrEqual(4);
    for (const cap of added) {
      const use = CAPABILITY_USES[cap];
      expect(use, `capability ${cap} has no known use`).toBeDefined();
      expect(sourcesMatching(sources, use!), `nothing in the sources needs ${cap}`).not.toEqual([]);
    }
    for (const [cap, use] of Object.entries(CAPABILITY_USES)) {
      const users = sourcesMatching(sources, use);
      if (users.length) expect(added, `${users.join(', ')} need ${cap}`).toContain(cap);
    }
    for (const c of pod.initContainers as Obj[]) expect(c.securityContext.capabilities).toEqual({ drop: ['ALL'] });
    // Every added capability carries a comment saying why.
    const doc = yamlDocuments(join(baseDir, 'daemonset.yaml'))[0]!;
    const containers = doc.getIn(['spec', 'template', 'spec', 'containers']);
    if (!isSeq(containers)) throw new Error('containers is not a list');
    const node = containers.items.find((c) => isMap(c) && c.get('name') === 'skiff');
    const add = isMap(node) ? node.getIn(['securityContext', 'capabilities', 'add']) : undefined;
    if (!isSeq(add)) throw new Error('capabilities.add is not a list');
    // The parser hangs the first item's comment on the list itself.
    (add.items as Scalar[]).forEach((item, i) => {
      const why = item.commentBefore ?? (i === 0 ? add.commentBefore : undefined);
      expect(why?.trim(), `${String(item.value)} is not explained`).toBeTruthy();
    });
  });
});

describe('RBAC', () => {
  const role = find('ClusterRole', 'skiff');
  const READ = ['get', 'list', 'watch'];
  const EXPECTED: Record<string, string[]> = {
    '/nodes': [...READ, 'patch'],
    '/nodes/status': ['patch'],
    '/services': READ,
    '/namespaces': READ,
    '/pods': READ,
    'discovery.k8s.io/endpointslices': READ,
    'networking.k8s.io/networkpolicies': READ,
    'policy.networking.k8s.io/clusternetworkpolicies': READ,
    'policy.networking.k8s.io/adminnetworkpolicies': READ,
    'policy.networking.k8s.io/baselineadminnetworkpolicies': READ,
    '/events': ['create', 'patch'],
    'events.k8s.io/events': ['create', 'patch'],
  };

  it('has no wildcard anywhere', () => {
    for (const r of role.rules as Obj[]) {
      for (const field of ['apiGroups', 'resources', 'verbs']) expect(r[field] as string[]).not.toContain('*');
      expect(r.nonResourceURLs).toBeUndefined();
      expect(r.resourceNames).toBeUndefined();
    }
  });

  it('grants exactly the reads, the node and node status patches and event writes', () => {
    const granted: Record<string, string[]> = {};
    for (const r of role.rules as Obj[])
      for (const g of r.apiGroups as string[])
        for (const res of r.resources as string[]) granted[`${g}/${res}`] = [...(granted[`${g}/${res}`] ?? []), ...(r.verbs as string[])].sort();
    expect(granted).toEqual(Object.fromEntries(Object.entries(EXPECTED).map(([k, v]) => [k, [...v].sort()])));
  });

  it('binds the role to the service account the DaemonSet runs as', () => {
    const binding = find('ClusterRoleBinding', 'skiff');
    const sa = find('ServiceAccount', pod.serviceAccountName as string);
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
  });
});

describe('ConfigMap skiff-config', () => {
  it('parses with the agent config parser and holds exactly the defaults', () => {
    expect(deployed).toEqual(defaults);
  });

  it('documents every config key, set or commented', () => {
    const keys = (shape: Record<string, unknown>, prefix = ''): string[] =>
      Object.entries(shape).flatMap(([k, v]) => {
        const inner = (v as { unwrap?: () => unknown; def?: { innerType?: unknown } }).def?.innerType as { shape?: Record<string, unknown> } | undefined;
        return inner?.shape ? keys(inner.shape, `${prefix}${k}.`) : [`${prefix}${k}`];
      });
    const all = keys(configSchema.shape as Record<string, unknown>);
    expect(all).toContain('dns.cacheSize'); // the walk reaches nested keys
    for (const k of all) {
      if (k === 'configFile') continue; // the path of this very file
      const leaf = k.split('.').at(-1)!;
      expect(configText, `config key ${k}`).toMatch(new RegExp(`^\\s*(#\\s*)?${leaf}\\b`, 'm'));
    }
  });
});

describe('kube-dns Service', () => {
  it('sits on the first DNS Service IP inside the Service CIDR, with DNS and metrics ports', () => {
    const svc = find('Service', 'kube-dns');
    expect(svc.metadata.namespace).toBe('kube-system');
    expect(svc.spec.clusterIP).toBe(deployed.dnsServiceIPs[0]);
    const ports = (svc.spec.ports as Obj[]).map((p) => `${p.port}/${p.protocol}`).sort();
    expect(ports).toEqual(['53/TCP', '53/UDP', '9153/TCP']);
  });
});

describe('metrics exposure', () => {
  const monitoringDir = join(manifestsDir, 'monitoring');
  const metrics = splitHostPort(deployed.metricsBindAddress);
  const metricsPort = (agent.ports as Obj[]).find((p) => p.name === 'metrics');

  it('opens metrics on the node addresses on their own port, apart from health', () => {
    expect(['0.0.0.0', '::']).toContain(metrics.host); // a Prometheus on another node scrapes it
    expect(metrics.port).toBe(10249); // kube-proxy's
    expect(metrics.port).not.toBe(splitHostPort(deployed.healthzBindAddress).port);
    expect(metricsPort).toEqual({ name: 'metrics', containerPort: metrics.port, protocol: 'TCP' });
  });

  it('annotates the pods for annotation-based scrape jobs', () => {
    expect(ds.spec.template.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(metrics.port), 'prometheus.io/path': '/metrics' });
  });

  it('points the kube-dns Service metrics port (CoreDNS 9153) at the agents metrics port', () => {
    const port = (find('Service', 'kube-dns').spec.ports as Obj[]).find((p) => p.name === 'metrics')!;
    expect(port).toMatchObject({ port: 9153, targetPort: metrics.port });
  });

  it('ships a PodMonitor that selects the agent pods by the named metrics port, job skiff', () => {
    const [k] = objects(join(monitoringDir, 'kustomization.yaml'));
    expect(k!.resources).toEqual(['podmonitor.yaml']);
    const pm = objects(join(monitoringDir, 'podmonitor.yaml'))[0]!;
    expect(pm.kind).toBe('PodMonitor');
    expect(pm.spec.namespaceSelector.matchNames).toEqual([ds.metadata.namespace]);
    const labels = ds.spec.template.metadata.labels as Record<string, string>;
    for (const [key, v] of Object.entries(pm.spec.selector.matchLabels as Record<string, string>)) expect(labels[key]).toBe(v);
    const ep = (pm.spec.podMetricsEndpoints as Obj[])[0]!;
    expect(ep.port).toBe(metricsPort?.name);
    expect(ep.path).toBe('/metrics');
    expect(ep.relabelings).toContainEqual({ action: 'replace', targetLabel: 'job', replacement: 'skiff' });
  });

  it('has a dashboard whose every query names metrics skiff exports, for the job the scrape configs use', () => {
    const dash = JSON.parse(readFileSync(join(monitoringDir, 'skiff-dashboard.json'), 'utf8')) as Obj;
    const job = (dash.templating.list as Obj[]).find((v) => v.name === 'job')!;
    expect(job.current.value).toBe('skiff');
    const exprs = (dash.panels as Obj[]).flatMap((p) => (p.targets as Obj[]).map((t) => t.expr as string));
    expect(exprs.length).toBeGreaterThan(10);
    const names = new Set(exprs.flatMap((e) => [...e.matchAll(/\b([a-z_]+(?:_total|_seconds|_bytes|_entries|_peers|_services|_endpoints)(?:_bucket|_count|_sum)?)\{/g)].map((m) => m[1]!)));
    for (const n of ['kubeproxy_sync_proxy_rules_duration_seconds_bucket', 'coredns_dns_requests_total', 'coredns_cache_hits_total']) expect(names).toContain(n);
    for (const n of names) {
      if (n.startsWith('process_')) continue; // prom-client's defaults
      const base = n.replace(/_(bucket|count|sum)$/, '');
      expect(sourcesMatching(sources, new RegExp(`['"\`]${base}['"\`]`)), n).not.toEqual([]);
    }
    for (const e of exprs) expect(e, e).toContain('job=~"$job"');
  });
});

describe('kind cluster config', () => {
  const kind = objects(join(manifestsDir, 'kind.yaml'))[0]!;

  it('disables the default CNI and kube-proxy', () => {
    expect(kind.networking.disableDefaultCNI).toBe(true);
    expect(kind.networking.kubeProxyMode).toBe('none');
  });

  it('uses the CIDRs the ConfigMap configures', () => {
    expect(isCidr(kind.networking.podSubnet)).toBe(true);
    expect([kind.networking.podSubnet]).toEqual(deployed.clusterCIDRs);
    expect([kind.networking.serviceSubnet]).toEqual(deployed.serviceCIDRs);
  });

  it('has one control plane and two workers, and the overlay names that control plane', () => {
    expect((kind.nodes as Obj[]).map((n) => n.role)).toEqual(['control-plane', 'worker', 'worker']);
    const overlay = readFileSync(join(manifestsDir, 'overlays/kind/kustomization.yaml'), 'utf8');
    expect(overlay).toContain(`--api-server=${kind.name}-control-plane:6443`);
    expect(readFileSync(join(root, 'test/e2e/targets/kind.sh'), 'utf8')).toContain(`CLUSTER=${kind.name} `);
  });
});

describe('base objects', () => {
  it('are all namespaced in kube-system or cluster-scoped', () => {
    const clusterScoped = new Set(['ClusterRole', 'ClusterRoleBinding']);
    for (const { file, obj } of baseObjects()) {
      if (clusterScoped.has(obj.kind as string)) expect(obj.metadata.namespace, file).toBeUndefined();
      else expect(obj.metadata.namespace, file).toBe('kube-system');
    }
  });
});

describe.skipIf(missing('shellcheck of test/e2e', { tools: ['shellcheck'] }))('e2e scripts', () => {
  it('pass shellcheck', () => {
    const dir = join(root, 'test/e2e');
    const scripts = [...readdirSync(dir), ...readdirSync(join(dir, 'targets')).map((f) => `targets/${f}`)].filter((f) => f.endsWith('.sh'));
    expect(scripts).toContain('run.sh');
    const r = spawnSync('shellcheck', ['-x', ...scripts], { cwd: dir, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('e2e run.sh --target kind without its prerequisites', () => {
  // A bin directory holding only what run.sh needs before its checks, plus a fake docker; the real
  // PATH is not used, so a machine that does have docker and kind never starts a cluster here.
  const bin = mkdtempSync(join(tmpdir(), 'skiff-inst-bin-'));
  afterAll(() => rmSync(bin, { recursive: true, force: true }));
  for (const tool of ['bash', 'dirname', 'id']) {
    const path = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    symlinkSync(path, join(bin, tool));
  }
  const fakeDocker = (infoExit: number): void => {
    writeFileSync(join(bin, 'docker'), `#!${join(bin, 'bash')}\n[ "$1" = info ] && exit ${infoExit}\nexit 0\n`);
    chmodSync(join(bin, 'docker'), 0o755);
  };
  const run = (...args: string[]) => spawnSync(join(bin, 'bash'), [join(root, 'test/e2e/run.sh'), ...(args.length ? args : ['--target', 'kind'])], { env: { PATH: bin, HOME: bin }, encoding: 'utf8' });

  it('exits 77 with a clear message when the docker engine is unreachable', () => {
    fakeDocker(1);
    const r = run();
    expect(r.stderr).toContain('docker engine is not reachable');
    expect(r.status).toBe(77);
  });

  it('exits 77 naming kind when docker works but kind is missing', () => {
    fakeDocker(0);
    const r = run();
    expect(r.stderr).toContain('kind is not installed');
    expect(r.status).toBe(77);
  });

  it('refuses an unknown target with exit 2', () => {
    const r = run('--target', 'minikube');
    expect(r.stderr).toContain("unknown target 'minikube'");
    expect(r.status).toBe(2);
  });

  it.skipIf(!hasTool('bash'))('is executable', () => {
    expect(() => execFileSync('test', ['-x', join(root, 'test/e2e/run.sh')])).not.toThrow();
  });
});

describe('resources follow the footprint bench', () => {
  const mi = (q: string): number => {
    const m = /^(\d+)(Mi|Gi)$/.exec(q);
    if (!m) throw new Error(`unexpected quantity ${q}`);
    return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
  };
  it('requests at least the measured small-cluster agent (98 MiB right after syncs, 84.8 idle) and limits above the 50,000-Service steady state (669 MiB), with no CPU limit', () => {
    const r = agent.resources as { requests: Record<string, string>; limits: Record<string, string> };
    expect(mi(r.requests.memory!)).toBeGreaterThanOrEqual(98);
    expect(mi(r.limits.memory!)).toBeGreaterThan(669);
    expect(r.limits.cpu).toBeUndefined();
  });
});
