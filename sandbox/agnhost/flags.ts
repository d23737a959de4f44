// agnhost's flag syntax (cobra/pflag): --name=value, --name value, boolean --name, and positional
// arguments in between.

export interface Parsed {
  readonly flags: ReadonlyMap<string, string>;
  readonly args: readonly string[];
}

export function parseFlags(argv: readonly string[], booleans: readonly string[] = []): Parsed {
  const flags = new Map<string, string>();
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--?([A-Za-z0-9][-A-Za-z0-9_]*)(?:=(.*))?$/.exec(a);
    if (!m) {
      args.push(a);
      continue;
    }
    const name = m[1]!;
    if (m[2] !== undefined) flags.set(name, m[2]);
    else if (booleans.includes(name) || i + 1 >= argv.length || argv[i + 1]!.startsWith('-')) flags.set(name, 'true');
    else flags.set(name, argv[++i]!);
  }
  return { flags, args };
}

export function intFlag(p: Parsed, name: string, dflt: number): number {
  const v = p.flags.get(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`invalid argument "${v}" for "--${name}" flag: not an integer`);
  return n;
}

export function boolFlag(p: Parsed, name: string, dflt: boolean): boolean {
  const v = p.flags.get(name);
  return v === undefined ? dflt : v !== 'false';
}

/** Go durations as agnhost takes them (5s, 100ms, 1m). */
export function durationMs(v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v);
  if (!m) throw new Error(`invalid duration "${v}"`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}
