import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS, agentCommand, projectRoot, skiffCommand } from './self.js';

describe('how the agent is started', () => {
  it('gives node the same flags in the image as in the sandbox and the benches', () => {
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(projectRoot, 'Dockerfile'), 'utf8'))?.[1];
    const argv = JSON.parse(entry!) as string[];
    const node = argv.indexOf('node');
    expect(argv.slice(node + 1, -1)).toEqual(AGENT_NODE_FLAGS);
    expect(argv.at(-1)).toBe('/app/dist/bin/skiff.js');
  });

  it('puts the flags before the script, which node would otherwise pass to the agent', () => {
    const cmd = agentCommand(['--max-semi-space-size=1']);
    expect(cmd).toEqual([skiffCommand()[0], '--max-semi-space-size=1', ...skiffCommand().slice(1), 'agent']);
  });
});
