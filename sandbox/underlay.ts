// The sandbox's kernel objects: an underlay bridge in its own namespace, one namespace per node with
// eth0 on that bridge, an "outside" namespace standing in for the internet, and a host veth that
// carries the API server address. Every step checks before it creates, so `up` can be rerun.
import { mkdir, readdir, rm } from 'node:fs/promises';
import { INTERNET_IP, nodeLayouts, type Layout } from './names.js';
import { inNetns, run, tryRun } from './sh.js';

export async function netnsList(): Promise<string[]> {
  const out = (await tryRun('ip', ['netns', 'list'])) ?? '';
  return out.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
}

async function linkExists(name: string, ns?: string): Promise<boolean> {
  const args = ['link', 'show', 'dev', name];
  return (ns ? await tryRun('ip', ['netns', 'exec', ns, 'ip', ...args]) : await tryRun('ip', args)) !== undefined;
}

async function ensureNetns(name: string, existing: Set<string>): Promise<void> {
  if (!existing.has(name)) {
    await run('ip', ['netns', 'add', name]);
    existing.add(name);
  }
  await inNetns(name, 'ip', ['link', 'set', 'lo', 'up']);
}

/**
 * Joins `ns` (or the host when ns is undefined) to the underlay bridge with a veth: `inner` is the
 * name inside ns, `port` the bridge-side name in the underlay namespace.
 */
async function attach(l: Layout, ns: string | undefined, inner: string, port: string, cidr: string): Promise<void> {
  if (!(await linkExists(port, l.underlayNs))) {
    // Create both ends inside the underlay namespace, then move the inner end: no name clash on the host.
    await inNetns(l.underlayNs, 'ip', ['link', 'add', port, 'type', 'veth', 'peer', 'name', 'tmp0']);
    await inNetns(l.underlayNs, 'ip', ['link', 'set', 'tmp0', 'netns', ns ?? '1', 'name', inner]);
    await inNetns(l.underlayNs, 'ip', ['link', 'set', port, 'master', l.bridge, 'up']);
  }
  const exec = (args: string[]): Promise<string> => (ns ? inNetns(ns, 'ip', args) : run('ip', args));
  await exec(['addr', 'replace', cidr, 'dev', inner]);
  await exec(['link', 'set', inner, 'up']);
}

export async function ensureUnderlay(l: Layout): Promise<void> {
  const existing = new Set(await netnsList());
  await ensureNetns(l.underlayNs, existing);
  if (!(await linkExists(l.bridge, l.underlayNs))) await inNetns(l.underlayNs, 'ip', ['link', 'add', l.bridge, 'type', 'bridge']);
  // No STP/forward delay: ports forward as soon as they are up.
  await inNetns(l.underlayNs, 'ip', ['link', 'set', l.bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
  await inNetns(l.underlayNs, 'ip', ['link', 'set', l.bridge, 'up']);
  const p = `/${l.prefixLen}`;

  // Host side: the API server listens here, and the CLI reaches node IPs (agent health) through it.
  await attach(l, undefined, l.hostLink, 'host', l.hostIP + p);

  await ensureNetns(l.extNs, existing);
  await attach(l, l.extNs, 'eth0', 'ext', l.extIP + p);
  // "The internet": an address only the outside namespace owns, reachable from nodes via their default route.
  await inNetns(l.extNs, 'ip', ['addr', 'replace', `${INTERNET_IP}/32`, 'dev', 'lo']);

  for (const n of nodeLayouts(l)) {
    await ensureNetns(n.name, existing);
    await attach(l, n.name, 'eth0', `n${n.index}`, n.ip + p);
    // Default route to the outside namespace, never to the host: nothing a node sends leaves the sandbox.
    await inNetns(n.name, 'ip', ['route', 'replace', 'default', 'via', l.extIP, 'dev', 'eth0']);
    await inNetns(n.name, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await mkdir(n.cniConfDir, { recursive: true });
    await mkdir(n.cniBinDir, { recursive: true });
  }
}

/** Every namespace and host link of this sandbox, whatever the node count it was started with. */
export async function sandboxNamespaces(name: string): Promise<string[]> {
  return (await netnsList()).filter((n) => n.startsWith(`${name}-`));
}

/** SIGKILLs every process in the given namespaces; returns "pid (in ns)" for each. */
export async function killNetnsProcesses(namespaces: readonly string[]): Promise<string[]> {
  const killed: string[] = [];
  for (const ns of namespaces) {
    const pids = ((await tryRun('ip', ['netns', 'pids', ns])) ?? '').split('\n').filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(`process ${pid} (in ${ns})`);
      } catch {
        /* already gone */
      }
    }
  }
  return killed;
}

/**
 * Kills every process left in the sandbox's namespaces, deletes the namespaces (their links,
 * bridges and nft tables go with them), the host veth and the /etc/netns entries. Returns what it removed.
 */
export async function destroyUnderlay(l: Layout): Promise<string[]> {
  const removed: string[] = [];
  const namespaces = await sandboxNamespaces(l.name);
  removed.push(...(await killNetnsProcesses(namespaces)));
  // Pod namespaces first so no veth peer is left dangling in a node namespace being deleted.
  namespaces.sort((a, b) => Number(b.includes('-pod-')) - Number(a.includes('-pod-')));
  for (const ns of namespaces) {
    if ((await tryRun('ip', ['netns', 'del', ns])) !== undefined) removed.push(`netns ${ns}`);
  }
  const links = JSON.parse((await tryRun('ip', ['-j', 'link', 'show'])) ?? '[]') as { ifname: string }[];
  for (const { ifname } of links) {
    if (ifname.startsWith(`${l.name}-`) && (await tryRun('ip', ['link', 'del', ifname])) !== undefined) removed.push(`link ${ifname}`);
  }
  const etc = await readdir('/etc/netns').catch(() => [] as string[]);
  for (const d of etc) {
    if (d.startsWith(`${l.name}-`)) {
      await rm(`/etc/netns/${d}`, { recursive: true, force: true });
      removed.push(`/etc/netns/${d}`);
    }
  }
  return removed;
}
