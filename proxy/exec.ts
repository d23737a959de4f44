// Running kernel tools: the agent runs them directly, root tests run them inside a test namespace
// through a prefix such as ["ip", "netns", "exec", "skiffpx-node"].
import { CommandError, runCommand } from '../common/exec.js';

export { CommandError };

export type Runner = (cmd: string, args: readonly string[], input?: string) => Promise<string>;

export function execRunner(prefix: readonly string[] = []): Runner {
  return (cmd, args, input) => runCommand([...prefix, cmd, ...args], { input: input ?? '', errorCode: 'ERR_PROXY_COMMAND' });
}
