// A standalone server for namespace tests: `node --import tsx dns/testing/serve.ts <dns-ip>...`
// runs the component node-local (lo address + notrack table) with one Service, prints READY, and
// stops on SIGTERM.
import { pino } from 'pino';
import { parseConfig } from '../../common/config.js';
import { Health } from '../../common/health.js';
import { createDns } from '../index.js';
import { cacheWith, service } from './fixtures.js';

const ips = process.argv.slice(2);
const config = parseConfig({ nodeName: 'node-a', dnsServiceIPs: ips, clusterCIDRs: ['10.244.0.0/16', '10.200.0.0/16'], dns: { healthPort: 0, readyPort: 0, workers: 0, upstreams: [] } });
const cache = cacheWith({ namespaces: ['default'], services: [service('default', 'web', { clusterIPs: ['10.96.0.20'] })] });
const dns = createDns(
  { config, cache, log: pino({ level: 'warn' }), health: new Health(), api: { patchNodeAnnotations: async () => undefined, patchNodeCondition: async () => undefined } },
  { nodeLocal: true, lameduckMs: 0, syncWaitMs: 0, onListening: () => process.stdout.write('READY\n') },
);
const ac = new AbortController();
process.on('SIGTERM', () => ac.abort());
await dns.run(ac.signal);
