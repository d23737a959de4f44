import { describe, expect, it } from 'vitest';
import { registry } from '../common/metrics.js';
import { nodeCtx } from './fixtures.js';
import { FakeNft } from './nft/backend.js';
import { warmUp } from './warmup.js';

describe('warmUp', () => {
  it('runs a whole staged full sync of the synthetic cluster, and only into its backend', async () => {
    const before = await registry.metrics();
    const fake = new FakeNft();
    await warmUp(nodeCtx, 200, fake, 0);
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

  it('then runs partial syncs of endpoint changes over that table, one Service each', async () => {
    const full = new FakeNft();
    await warmUp(nodeCtx, 200, full, 0);
    const fake = new FakeNft();
    await warmUp(nodeCtx, 200, fake, 40);
    const partials = fake.transactions.slice(full.transactions.length);
    expect(partials).toHaveLength(40);
    // Update 1 (k = 1) gives Service 7 two fresh endpoints in place of its ten.
    expect(partials[1]).toContain('delete element ip skiff service-marks-g1 { 198.19.0.7 . tcp . 80 }');
    expect(partials[1]).toMatch(/add element ip skiff endpoint-addrs-g1 \{ \d+ : 198\.18\.7\.209, \d+ : 198\.18\.7\.210 \}/);
    // Every twentieth takes its Service away: deletions only.
    expect(partials[19]).toContain('delete element ip skiff service-ips-g1 { 198.19.0.133 . tcp . 80 ');
    expect(partials[19]).not.toMatch(/^add element/m);
  });
});
