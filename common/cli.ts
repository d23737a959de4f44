// Flag parsing shared by the subcommands: node:util parseArgs in strict mode, so an unknown flag or a
// missing value is a one-line UsageError rather than a silently ignored typo.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parseFlags<O extends Options>(command: string, argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message.split('\n')[0]}`);
  }
}

export function helpText(command: string, summary: string, options: Options, descriptions: Record<string, string>): string {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `--${name}${o.type === 'string' ? ' VALUE' : ''}`;
    return `  ${flag.padEnd(34)} ${descriptions[name] ?? ''}`;
  });
  return `usage: skiff ${command} [flags]\n\n${summary}\n\nflags:\n${rows.join('\n')}\n`;
}
