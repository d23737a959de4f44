// `skiff policy <subcommand>`: tools that look at NetworkPolicy from outside the agent.
const SUBCOMMANDS: Record<string, { summary: string; load: () => Promise<(argv: string[]) => Promise<number>> }> = {
  why: { summary: 'would pod A reach pod B on a port, and which policy rule decides', load: async () => (await import('./why.js')).main },
};

function usage(): string {
  const lines = Object.entries(SUBCOMMANDS).map(([name, s]) => `  ${name.padEnd(8)} ${s.summary}`);
  return `usage: skiff policy <command> [flags]\n\ncommands:\n${lines.join('\n')}\n\nRun 'skiff policy <command> --help' for a command's flags.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(usage());
    return cmd === undefined ? 2 : 0;
  }
  const sub = SUBCOMMANDS[cmd];
  if (!sub) {
    process.stderr.write(`skiff policy: unknown command "${cmd}"; run 'skiff policy --help'\n`);
    return 2;
  }
  return (await sub.load())(rest);
}
