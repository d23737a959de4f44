// Running nft, conntrack, ip and sysctl for the policy component: directly in the agent, or inside
// a test namespace through a prefix such as ["ip", "netns", "exec", "skiffpn-node"].
import { runCommand } from '../common/exec.js';

export type Runner = (cmd: string, args: readonly string[], input?: string) => Promise<string>;

export function execRunner(prefix: readonly string[] = []): Runner {
  return (cmd, args, input) => runCommand([...prefix, cmd, ...args], { input: input ?? '', errorCode: 'ERR_POLICY_COMMAND' });
}
