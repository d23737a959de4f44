// `npm run bench -- NAME [args]`: each benchmark prints progress on stderr and, as its last stdout
// line, one JSON object, so results can be compared across runs by scripts.
const BENCHES = ['watch', 'cni', 'proxy', 'dns', 'dns-udp', 'gauntlet', 'footprint', 'policy-pods', 'netpol', 'fqdn'] as const;

async function main(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  if (!name || !(BENCHES as readonly string[]).includes(name)) {
    process.stderr.write(`usage: npm run bench -- <${BENCHES.join('|')}> [args]\n`);
    process.exitCode = 2;
    return;
  }
  const mod = (await import(`./${name}.js`)) as { main: (args: string[]) => Promise<void> };
  await mod.main(args);
}

await main();
