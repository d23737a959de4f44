// `skiff cni`: the plugin as a Node process, for nodes where the agent is not running (or not yet
// reachable). It runs the same handler the agent serves to the C shim, in-process.
import { parseArgs } from 'node:util';
import { handle } from './plugin/handler.js';

export async function main(argv: string[]): Promise<number> {
  try {
    parseArgs({ args: argv, options: {}, strict: true, allowPositionals: false });
  } catch (e) {
    process.stderr.write(`skiff cni: ${(e as Error).message} (configuration comes from CNI_* variables and stdin)\n`);
    return 2;
  }
  const stdin = await readStdin();
  const reply = await handle(process.env, stdin);
  if (reply.stdout) process.stdout.write(reply.stdout + '\n');
  return reply.code;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
