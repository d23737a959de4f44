// The applier's warm-up: what a pod ADD's write runs, on one pod of the table just loaded, with
// nothing sent. Its own test: the kernel never sees it, so only the calls show it happened.
import { describe, expect, it } from 'vitest';
import type { NetworkPolicyInfo, PolicyPodInfo } from '../common/types.js';
import { PolicyDataplane } from './dataplane.js';
import { desiredState } from './desired.js';
import { render } from './render.js';
import type { ElementChange, ElementWriter } from './setelem.js';
import type { Command } from './nlcommands.js';

const sel = (labels: Record<string, string>) => ({ matchLabels: labels, matchExpressions: [] });
const pod = (name: string, ips: string[], labels: Record<string, string>): PolicyPodInfo => ({ namespace: 'x', name, nodeName: 'n1', hostNetwork: false, podIPs: ips, labels, namedPorts: [] });
const denyB: NetworkPolicyInfo = { namespace: 'x', name: 'b-from-a', podSelector: sel({ app: 'b' }), policyTypes: ['Ingress'], ingress: [{ peers: [{ podSelector: sel({ app: 'a' }) }], ports: [{ protocol: 'TCP', port: 80 }] }], egress: [] };

describe('PolicyDataplane.warm', () => {
  it('encodes one pod\'s chain, counter and dispatch element the way an ADD writes them, sending nothing', async () => {
    const encoded: { changes: readonly ElementChange[]; commands: readonly Command[]; bytes: number }[] = [];
    const writes: unknown[] = [];
    const nft: string[] = [];
    const elements: ElementWriter = {
      write: async (...a) => void writes.push(a),
      encode: (_t, changes, _shapes, commands = []) => {
        encoded.push({ changes, commands, bytes: 0 });
        return [];
      },
      generation: async () => undefined,
      close: () => undefined,
    };
    const dataplane = new PolicyDataplane(async (cmd, args) => (cmd === 'nft' && nft.push(args.join(' ')), ''), { elements });
    const table = render(desiredState({ policies: [denyB], pods: [pod('a', ['10.244.7.2'], { app: 'a' }), pod('b', ['10.244.7.3'], { app: 'b' })], namespaces: [{ name: 'x', labels: {} }] }, { nodeName: 'n1' }), { families: [4] });
    await dataplane.apply(table);
    const loads = nft.length;
    dataplane.warm(table, 3);
    expect(encoded).toHaveLength(3);
    const [first] = encoded;
    expect(first!.changes).toEqual([{ verb: 'add', set: 'ingress4', key: '10.244.7.3', value: 'jump in.x.b' }]);
    expect(first!.commands.map((c) => c.kind)).toEqual(expect.arrayContaining(['chain', 'rule', 'counter']));
    expect(first!.commands.filter((c) => c.kind === 'rule').every((c) => c.kind === 'rule' && c.chain === 'in.x.b')).toBe(true);
    // Nothing reached the kernel.
    expect(writes).toHaveLength(0);
    expect(nft).toHaveLength(loads);
    // No policied pod with an address: nothing to warm, no error.
    encoded.length = 0;
    dataplane.warm(render(desiredState({ policies: [], pods: [], namespaces: [] }, { nodeName: 'n1' }), { families: [4] }));
    expect(encoded).toHaveLength(0);
  });
});
