import { describe, expect, it } from 'vitest';
import { registry } from '../common/metrics.js';
import { nodeCtx } from './fixtures.js';
import { FakeNft } from './nft/backend.js';
import { warmUp } from './warmup.js';

describe('warmUp', () => {
  it('runs a whole staged full sync of the synthetic cluster, and only into its backend', async () => {
    const before = await registry.metrics();
    const fake = new FakeNft();
    await warmUp(nodeCtx, 200, fake);
    const text = fake.transactions.join('');
    // Set creation, element loads and the switch: the staged path a real first sync takes.
    expect(fake.transactions.length).toBeGreaterThanOrEqual(3);
    expect(text).toMatch(/add map ip skiff endpoint-addrs-g1 \{ type mark : ipv4_addr ; size \d+ ; \}/);
    expect(text.match(/ : 198\.18\.\d+\.\d+/g)?.length).toBe(200 * 10 + 50 * 1);
    expect(text).toContain('198.19.0.199');
    // Every fourth Service is a NodePort with externalTrafficPolicy Local: its node-local list is used.
    expect(text).toMatch(/external-local-c10-l1/);
    expect(text).toContain('tcp . 30196');
    expect(await registry.metrics()).toBe(before);
  });
});
