#!/usr/bin/env node
// The one skiff binary. Subcommand modules are imported lazily so `skiff cni`, which kubelet runs
// for every pod, loads none of the agent's dependencies.
import { SkiffError } from '../common/errors.js';

type Main = (argv: string[]) => Promise<number>;

const SUBCOMMANDS: Record<string, { summary: string; load: () => Promise<Main> }> = {
  agent: { summary: 'run the node agent (CNI overlay, Service proxy, cluster DNS)', load: async () => (await import('../agent/main.js')).main },
  cni: { summary: 'the CNI plugin entry point (kubelet runs this as /opt/cni/bin/skiff)', load: async () => (await import('../cni/main.js')).main },
  policy: { summary: 'explain NetworkPolicy verdicts (policy why)', load: async () => (await import('../policy/main.js')).main },
  sandbox: { summary: 'a local multi-node cluster on network namespaces', load: async () => (await import('../sandbox/main.js')).main },
  status: { summary: "show this node's overlay, proxy and DNS state", load: async () => (await import('../common/status.js')).main },
  version: { summary: 'print the version', load: async () => (await import('../common/version.js')).main },
};

function usage(): string {
  const lines = Object.entries(SUBCOMMANDS).map(([name, s]) => `  ${name.padEnd(8)} ${s.summary}`);
  return `usage: skiff <command> [flags]\n\ncommands:\n${lines.join('\n')}\n\nRun 'skiff <command> --help' for a command's flags.\n`;
}

async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(usage());
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version') return (await SUBCOMMANDS.version!.load())([]);
  const sub = SUBCOMMANDS[cmd];
  if (!sub) {
    process.stderr.write(`skiff: unknown command "${cmd}"; run 'skiff --help'\n`);
    return 2;
  }
  return (await sub.load())(rest);
}

// Only the CLI boundary turns errors into exit codes; a SkiffError's message is meant for people.
run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof SkiffError) process.stderr.write(`skiff: ${err.message}\n`);
    else process.stderr.write(`skiff: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = err instanceof SkiffError && (err.code === 'ERR_USAGE' || err.code === 'ERR_CONFIG') ? 2 : 1;
  },
);
