// `skiff sandbox <verb>`: a local multi-node cluster on network namespaces. Each verb parses its
// own flags strictly; the sandbox is found by NAME (flag, SKIFF_SANDBOX_NAME or "skiff") and its
// state dir (SKIFF_SANDBOX_DIR or /var/lib/skiff-sandbox/NAME).
import { parseFlags, type Options } from '../common/cli.js';
import { SkiffError, UsageError } from '../common/errors.js';
import { SandboxClient } from './client.js';
import { applyCmd, deleteCmd, execCmd, getCmd, statusCmd } from './commands.js';
import { runDemo } from './demo.js';
import { down, loadLayout, up } from './lifecycle.js';
import { DEFAULT_NAME, DEFAULT_SUBNET, defaultStateDir, validateName, validateSubnet, type Layout } from './names.js';
import { superviseMain } from './supervisor.js';

const USAGE = `usage: skiff sandbox <command> [flags]

commands:
  up [--nodes N (default 2)] [--demo] [--wait] [--timeout S] [--agent-timeout S] [--subnet CIDR]
                                            create or refresh the sandbox
  down                                      stop everything and remove every namespace, link and file it made
  status                                    nodes, pods and services at a glance
  apply -f FILE|-  [-n NS]                  create or update objects from YAML/JSON
  get KIND [NAME] [-n NS | -A] [-o json|yaml|wide]
  delete KIND NAME... [-n NS]
  exec [-n NS] POD -- CMD...                run CMD in the pod's network namespace (and resolv.conf)
  exec --node NODE -- CMD...                run CMD in a node's network namespace

every command takes --name NAME (default "skiff", env SKIFF_SANDBOX_NAME); state lives in
$SKIFF_SANDBOX_DIR or /var/lib/skiff-sandbox/NAME.
`;

const COMMON = { name: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const satisfies Options;
const out = (s: string): void => {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
};

function sandboxName(flag: string | undefined): string {
  return validateName(flag ?? process.env.SKIFF_SANDBOX_NAME ?? DEFAULT_NAME);
}

function requireLayout(name: string): Layout {
  const l = loadLayout(name, defaultStateDir(name));
  if (!l) throw new SkiffError('ERR_SANDBOX_DOWN', `sandbox "${name}" is not up (no ${defaultStateDir(name)}/sandbox.json); run 'skiff sandbox up'`);
  return l;
}

function positiveInt(flag: string, v: string | undefined, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`sandbox: --${flag} must be an integer from 1 to ${max}, got "${v}"`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    process.stdout.write(USAGE);
    return verb === undefined ? 2 : 0;
  }
  switch (verb) {
    case 'up': {
      const { values } = parseFlags('sandbox up', rest, { ...COMMON, nodes: { type: 'string' }, demo: { type: 'boolean' }, wait: { type: 'boolean' }, timeout: { type: 'string' }, 'agent-timeout': { type: 'string' }, subnet: { type: 'string' } });
      if (values.help) return help();
      const name = sandboxName(values.name);
      const spec = { name, nodes: positiveInt('nodes', values.nodes, 2, 50), subnet: validateSubnet(values.subnet ?? DEFAULT_SUBNET), stateDir: defaultStateDir(name) };
      const timeoutMs = positiveInt('timeout', values.timeout, values.wait ? 120 : 30, 3600) * 1000;
      const agentTimeout = values['agent-timeout'] === undefined ? undefined : positiveInt('agent-timeout', values['agent-timeout'], 1, 3600) * 1000;
      const r = await up({ spec, wait: !!values.wait, timeoutMs, ...(agentTimeout !== undefined ? { agentTimeoutMs: agentTimeout } : {}), out });
      // kubectl is the full client; the line is meant for eval or copy-paste.
      out(`export KUBECONFIG=${r.layout.kubeconfig}`);
      if (!values.demo) return 0;
      return runDemo(SandboxClient.load(r.layout.kubeconfig), r.layout, out);
    }
    case 'down': {
      const { values } = parseFlags('sandbox down', rest, COMMON);
      if (values.help) return help();
      const name = sandboxName(values.name);
      const removed = await down(name, defaultStateDir(name), out);
      out(removed.length ? `sandbox ${name}: removed\n${removed.map((r) => `  ${r}`).join('\n')}` : `sandbox ${name}: nothing to remove`);
      return 0;
    }
    case 'supervise': {
      const { values } = parseFlags('sandbox supervise', rest, { 'state-dir': { type: 'string' } });
      if (!values['state-dir']) throw new UsageError('sandbox supervise: --state-dir is required');
      return superviseMain(values['state-dir']);
    }
    case 'status': {
      const { values } = parseFlags('sandbox status', rest, COMMON);
      if (values.help) return help();
      const l = requireLayout(sandboxName(values.name));
      return statusCmd(SandboxClient.load(l.kubeconfig), l, out);
    }
    case 'apply': {
      const { values } = parseFlags('sandbox apply', rest, { ...COMMON, filename: { type: 'string', short: 'f' }, namespace: { type: 'string', short: 'n' } });
      if (values.help) return help();
      if (!values.filename) throw new UsageError('sandbox apply: -f FILE (or -f - for stdin) is required');
      const l = requireLayout(sandboxName(values.name));
      return applyCmd(SandboxClient.load(l.kubeconfig), values.filename, values.namespace, out);
    }
    case 'get': {
      const { values, positionals } = parseFlags('sandbox get', rest, { ...COMMON, namespace: { type: 'string', short: 'n' }, 'all-namespaces': { type: 'boolean', short: 'A' }, output: { type: 'string', short: 'o' } }, true);
      if (values.help) return help();
      if (positionals.length < 1 || positionals.length > 2) throw new UsageError('sandbox get: expected KIND [NAME]');
      const l = requireLayout(sandboxName(values.name));
      return getCmd(SandboxClient.load(l.kubeconfig), positionals[0]!, positionals[1], { namespace: values.namespace, allNamespaces: !!values['all-namespaces'], output: values.output }, out);
    }
    case 'delete': {
      const { values, positionals } = parseFlags('sandbox delete', rest, { ...COMMON, namespace: { type: 'string', short: 'n' } }, true);
      if (values.help) return help();
      if (positionals.length < 2) throw new UsageError('sandbox delete: expected KIND NAME...');
      const l = requireLayout(sandboxName(values.name));
      return deleteCmd(SandboxClient.load(l.kubeconfig), positionals[0]!, positionals.slice(1), values.namespace, out);
    }
    case 'exec': {
      const dash = rest.indexOf('--');
      if (dash < 0) throw new UsageError('sandbox exec: expected [-n NS] POD -- CMD... or --node NODE -- CMD...');
      const { values, positionals } = parseFlags('sandbox exec', rest.slice(0, dash), { ...COMMON, namespace: { type: 'string', short: 'n' }, node: { type: 'string' } }, true);
      if (values.help) return help();
      if (!!values.node === positionals.length > 0 || positionals.length > 1) throw new UsageError('sandbox exec: give exactly one of POD or --node NODE');
      const l = requireLayout(sandboxName(values.name));
      return execCmd(SandboxClient.load(l.kubeconfig), l, { pod: positionals[0], node: values.node, namespace: values.namespace }, rest.slice(dash + 1));
    }
    default:
      throw new UsageError(`sandbox: unknown command "${verb}"; run 'skiff sandbox --help'`);
  }
}

function help(): number {
  process.stdout.write(USAGE);
  return 0;
}
