import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from './self.js';

export function version(): string {
  try {
    return (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('usage: skiff version\n');
    return 0;
  }
  if (argv.length > 0) {
    process.stderr.write(`skiff version: unexpected argument "${argv[0]}"\n`);
    return 2;
  }
  process.stdout.write(`skiff ${version()} (node ${process.version})\n`);
  return 0;
}
