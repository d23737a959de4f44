// NetworkPolicy and the network-policy-api kinds over HTTP: paths, discovery, list/watch/CRUD, and
// the 422 Invalid answers kube-apiserver (or the CRD schema) gives for bad objects.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTable, labelSelectorText } from '../output.js';
import { parseManifests, resourceFor } from '../manifest.js';
import { ensureNamespaces, startFakeApiServer, type FakeApiServer, type KubeObject } from './index.js';

let api: FakeApiServer;
beforeAll(async () => {
  api = await startFakeApiServer({ bookmarkIntervalMs: 0 });
  ensureNamespaces(api.store, 'x', 'y', 'v', 'ok');
});
afterAll(async () => {
  await api.close();
});

async function req(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(api.url + path, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

const NETPOL = '/apis/networking.k8s.io/v1';
const CNP = '/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies';
const ANP = '/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies';
const BANP = '/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies';

const netpol = (name: string, spec: unknown): KubeObject => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name }, spec });
const cnp = (name: string, spec: Record<string, unknown>): KubeObject => ({ metadata: { name }, spec: { tier: 'Admin', priority: 10, subject: { namespaces: {} }, ...spec } });

describe('policy kinds in the fake API server', () => {
  it('serves NetworkPolicy namespaced under networking.k8s.io/v1 with list, watch, update and delete', async () => {
    const created = await req('POST', `${NETPOL}/namespaces/x/networkpolicies`, netpol('deny-all', { podSelector: {}, policyTypes: ['Ingress'] }));
    expect(created).toMatchObject({ status: 201, body: { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'deny-all', namespace: 'x' } } });
    await req('POST', `${NETPOL}/namespaces/y/networkpolicies`, netpol('allow', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{}] }));
    const all = await req('GET', `${NETPOL}/networkpolicies`);
    expect((all.body.items as KubeObject[]).map((o) => `${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['x/deny-all', 'y/allow']);
    expect(((await req('GET', `${NETPOL}/namespaces/y/networkpolicies`)).body.items as KubeObject[]).length).toBe(1);

    const rv = String(all.body.metadata && (all.body.metadata as { resourceVersion: string }).resourceVersion);
    const ctrl = new AbortController();
    const w = await fetch(`${api.url}${NETPOL}/namespaces/x/networkpolicies?watch=1&resourceVersion=${rv}`, { signal: ctrl.signal });
    const put = await req('PUT', `${NETPOL}/namespaces/x/networkpolicies/deny-all`, netpol('deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }));
    expect(put.status).toBe(200);
    expect((await req('DELETE', `${NETPOL}/namespaces/x/networkpolicies/deny-all`)).status).toBe(200);
    const reader = w.body!.getReader();
    let text = '';
    while (text.split('\n').length < 3) text += Buffer.from((await reader.read()).value!).toString('utf8');
    ctrl.abort();
    const events = text.trim().split('\n').map((l) => JSON.parse(l) as { type: string; object: KubeObject });
    expect(events.map((e) => e.type)).toEqual(['MODIFIED', 'DELETED']);
    expect((events[0]!.object.spec as { policyTypes: string[] }).policyTypes).toEqual(['Ingress', 'Egress']);
    // Only under its own group and version.
    expect((await req('GET', '/api/v1/namespaces/x/networkpolicies')).status).toBe(404);
    expect((await req('GET', '/apis/policy.networking.k8s.io/v1alpha1/clusternetworkpolicies')).status).toBe(404);
  });

  it('serves the admin kinds cluster-scoped, each under its own version', async () => {
    expect(await req('POST', CNP, cnp('admin-deny', { ingress: [{ action: 'Deny', from: [{ namespaces: {} }] }] }))).toMatchObject({ status: 201, body: { apiVersion: 'policy.networking.k8s.io/v1alpha2', kind: 'ClusterNetworkPolicy' } });
    expect((await req('POST', ANP, { metadata: { name: 'anp' }, spec: { priority: 5, subject: { namespaces: {} }, egress: [{ action: 'Pass', to: [{ pods: { namespaceSelector: {}, podSelector: {} } }] }] } })).status).toBe(201);
    expect((await req('POST', BANP, { metadata: { name: 'default' }, spec: { subject: { namespaces: {} }, ingress: [{ action: 'Deny', from: [{ namespaces: {} }] }] } })).status).toBe(201);
    expect((await req('GET', `${CNP}/admin-deny`)).body.metadata).toMatchObject({ name: 'admin-deny' });
    expect((await req('GET', '/apis/policy.networking.k8s.io/v1alpha2/namespaces/x/clusternetworkpolicies/admin-deny')).status).toBe(404);
    expect((await req('PATCH', `${CNP}/admin-deny/status`, undefined)).status).toBe(415);
    const st = await fetch(`${api.url}${CNP}/admin-deny/status`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ metadata: { name: 'admin-deny' }, status: { conditions: [] } }) });
    expect(st.status).toBe(200);
    expect((await req('DELETE', `${BANP}/default`)).status).toBe(200);
  });

  it('lists the new groups in discovery, v1alpha2 preferred', async () => {
    const groups = (await req('GET', '/apis')).body.groups as { name: string; preferredVersion: { version: string } }[];
    expect(groups.map((g) => g.name)).toEqual(expect.arrayContaining(['discovery.k8s.io', 'networking.k8s.io', 'policy.networking.k8s.io']));
    expect(groups.find((g) => g.name === 'policy.networking.k8s.io')!.preferredVersion.version).toBe('v1alpha2');
    expect((await req('GET', '/apis/policy.networking.k8s.io')).body).toMatchObject({ kind: 'APIGroup', versions: [{ version: 'v1alpha2' }, { version: 'v1alpha1' }] });
    const net = (await req('GET', `${NETPOL}`)).body.resources as { name: string; namespaced: boolean; shortNames: string[] }[];
    expect(net).toEqual([expect.objectContaining({ name: 'networkpolicies', namespaced: true, shortNames: ['netpol'] })]);
    const v1a1 = (await req('GET', '/apis/policy.networking.k8s.io/v1alpha1')).body.resources as { name: string; namespaced: boolean }[];
    expect(v1a1.map((r) => r.name)).toEqual(['adminnetworkpolicies', 'adminnetworkpolicies/status', 'baselineadminnetworkpolicies', 'baselineadminnetworkpolicies/status']);
    expect(v1a1.every((r) => !r.namespaced)).toBe(true);
  });
});

describe('policy validation answers 422 Invalid like kube-apiserver', () => {
  const ports = (...p: unknown[]): unknown => ({ podSelector: {}, ingress: [{ ports: p }] });
  const peers = (...p: unknown[]): unknown => ({ podSelector: {}, egress: [{ to: p }] });
  it.each([
    ['a bad policyType', { podSelector: {}, policyTypes: ['Ingres'] }, 'spec.policyTypes[0]: Unsupported value: "Ingres": supported values: "Egress", "Ingress"'],
    ['three policyTypes', { podSelector: {}, policyTypes: ['Ingress', 'Egress', 'Ingress'] }, 'spec.policyTypes: Invalid value: ["Ingress","Egress","Ingress"]: may not specify more than two policyTypes'],
    ['a port out of range', ports({ port: 70000 }), 'spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive'],
    ['port 0', ports({ protocol: 'UDP', port: 0 }), 'spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive'],
    ['endPort below port', ports({ port: 81, endPort: 80 }), 'spec.ingress[0].ports[0].endPort: Invalid value: 81: must be greater than or equal to `port`'],
    ['endPort out of range', ports({ port: 81, endPort: 65536 }), 'spec.ingress[0].ports[0].endPort: Invalid value: 65536: must be between 1 and 65535, inclusive'],
    ['endPort with a named port', ports({ port: 'serve-80-tcp', endPort: 81 }), 'spec.ingress[0].ports[0].endPort: Invalid value: 81: may not be specified when `port` is non-numeric'],
    ['endPort without a port', ports({ endPort: 81 }), 'spec.ingress[0].ports[0].endPort: Invalid value: 81: may not be specified when `port` is not specified'],
    ['a bad protocol', ports({ protocol: 'ICMP', port: 80 }), 'spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'],
    ['a bad port name', ports({ port: 'serve--80' }), 'spec.ingress[0].ports[0].port: Invalid value: "serve--80": must not contain consecutive hyphens'],
    ['a port name too long', ports({ port: 'serve-80-tcp-and-more' }), 'spec.ingress[0].ports[0].port: Invalid value: "serve-80-tcp-and-more": must be no more than 15 characters'],
    ['an empty peer', peers({}), 'spec.egress[0].to[0]: Required value: must specify a peer'],
    ['ipBlock with a podSelector', peers({ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }), 'spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer'],
    ['an ipBlock without cidr', peers({ ipBlock: {} }), 'spec.egress[0].to[0].ipBlock.cidr: Required value'],
    ['a bad cidr', peers({ ipBlock: { cidr: '10.0.0.0/33' } }), 'spec.egress[0].to[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'],
    ['an except outside the cidr', peers({ ipBlock: { cidr: '10.1.0.0/16', except: ['10.2.0.0/24'] } }), 'spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "10.2.0.0/24": must be a strict subset of `cidr`'],
    ['an except equal to the cidr', peers({ ipBlock: { cidr: 'fd00::/64', except: ['fd00::/64'] } }), 'spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "fd00::/64": must be a strict subset of `cidr`'],
    ['In without values', { podSelector: { matchExpressions: [{ key: 'pod', operator: 'In' }] } }, "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"],
    ['an unknown operator', { podSelector: { matchExpressions: [{ key: 'pod', operator: 'Has' }] } }, 'spec.podSelector.matchExpressions[0].operator: Invalid value: "Has": not a valid selector operator'],
  ])('NetworkPolicy with %s', async (_, spec, message) => {
    const r = await req('POST', `${NETPOL}/namespaces/v/networkpolicies`, netpol('bad', spec));
    expect(r).toMatchObject({ status: 422, body: { kind: 'Status', reason: 'Invalid', code: 422, message: `NetworkPolicy.networking.k8s.io "bad" is invalid: ${message}`, details: { name: 'bad', group: 'networking.k8s.io', kind: 'NetworkPolicy' } } });
    expect((r.body.details as { causes: unknown[] }).causes).toHaveLength(1);
    expect((await req('GET', `${NETPOL}/namespaces/v/networkpolicies/bad`)).status).toBe(404);
  });

  it('reports every error at once, and an update is validated too', async () => {
    const r = await req('POST', `${NETPOL}/namespaces/v/networkpolicies`, netpol('two', { podSelector: {}, policyTypes: ['Up'], ingress: [{ ports: [{ port: 0 }] }] }));
    expect(r.body.message).toBe('NetworkPolicy.networking.k8s.io "two" is invalid: [spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.policyTypes[0]: Unsupported value: "Up": supported values: "Egress", "Ingress"]');
    expect((r.body.details as { causes: { field: string }[] }).causes.map((c) => c.field)).toEqual(['spec.ingress[0].ports[0].port', 'spec.policyTypes[0]']);
    expect((await req('POST', `${NETPOL}/namespaces/v/networkpolicies`, netpol('good', { podSelector: {} }))).status).toBe(201);
    const bad = await req('PUT', `${NETPOL}/namespaces/v/networkpolicies/good`, netpol('good', { podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 79 }] }] }));
    expect(bad.status).toBe(422);
    expect(((await req('GET', `${NETPOL}/namespaces/v/networkpolicies/good`)).body.spec as Record<string, unknown>).ingress).toBeUndefined();
  });

  it('accepts what the upstream e2e suite and cyclonus write', async () => {
    const specs = [
      { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] }, podSelector: { matchLabels: { pod: 'b' } } }] }], policyTypes: ['Ingress'] },
      { podSelector: {}, egress: [{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }, { protocol: 'UDP', port: 'serve-81-udp' }, { protocol: 'SCTP', port: 80 }] }, { to: [{ ipBlock: { cidr: '10.244.0.0/16', except: ['10.244.1.0/24', '10.244.2.7/32'] } }] }], policyTypes: ['Egress'] },
      { podSelector: { matchExpressions: [{ key: 'pod', operator: 'Exists' }] }, ingress: [{ from: [{ ipBlock: { cidr: '2001:db8::/32', except: ['2001:db8:1::/48'] } }] }] },
      { podSelector: {}, ingress: [{ from: [{ podSelector: {} }], ports: [{ port: 81 }, {}] }], egress: [{}], policyTypes: ['Ingress', 'Egress'] },
    ];
    for (const [i, spec] of specs.entries()) expect((await req('POST', `${NETPOL}/namespaces/ok/networkpolicies`, netpol(`ok-${i}`, spec))).status).toBe(201);
  });

  it.each([
    [CNP, cnp('t', { tier: 'Developer' }), 'spec.tier: Unsupported value: "Developer": supported values: "Admin", "Baseline"'],
    [CNP, cnp('t', { priority: 1001 }), 'spec.priority: Invalid value: 1001: spec.priority in body should be less than or equal to 1000'],
    [CNP, cnp('t', { subject: { namespaces: {}, pods: { podSelector: {} } } }), 'spec.subject: Invalid value: 2: spec.subject in body should have at most 1 properties'],
    [CNP, cnp('t', { ingress: [{ action: 'Allow', from: [{ namespaces: {} }] }] }), 'spec.ingress[0].action: Unsupported value: "Allow": supported values: "Accept", "Deny", "Pass"'],
    [CNP, cnp('t', { ingress: [{ action: 'Deny', from: [] }] }), 'spec.ingress[0].from: Invalid value: 0: spec.ingress[0].from in body should have at least 1 items'],
    [CNP, cnp('t', { egress: [{ action: 'Deny', to: [{ networks: ['10.0.0.0/8'] }], protocols: [{ tcp: { destinationPort: { range: { start: 90, end: 80 } } } }] }] }), 'spec.egress[0].protocols[0].tcp.destinationPort.range: Invalid value: "object": Start port must be less than End port'],
    [CNP, cnp('t', { egress: [{ action: 'Accept', to: [{ networks: ['10.0.0.0/8'] }], protocols: [{ destinationNamedPort: 'serve-80-tcp' }] }] }), 'spec.egress[0]: Invalid value: "object": networks/nodes/domainNames peer cannot be set with namedPorts since there are no namedPorts for networks/nodes/domainNames'],
    [CNP, cnp('t', { egress: [{ action: 'Deny', to: [{ networks: ['10.0.0.300/8'] }] }] }), 'spec.egress[0].to[0].networks[0]: Invalid value: "10.0.0.300/8": Invalid CIDR format provided'],
    [ANP, { metadata: { name: 't' }, spec: { priority: -1, subject: { namespaces: {} } } }, 'spec.priority: Invalid value: -1: spec.priority in body should be greater than or equal to 0'],
    [ANP, { metadata: { name: 't' }, spec: { priority: 1, subject: { namespaces: {} }, ingress: [{ action: 'Allow', from: [{ namespaces: {} }], ports: [{ portNumber: { protocol: 'TCP', port: 0 } }] }] } }, 'spec.ingress[0].ports[0].portNumber.port: Invalid value: 0: spec.ingress[0].ports[0].portNumber.port in body should be greater than or equal to 1'],
    [BANP, { metadata: { name: 'other' }, spec: { subject: { namespaces: {} } } }, 'metadata.name: Invalid value: "other": Only one baseline admin network policy with metadata.name="default" can be created in the cluster'],
    [BANP, { metadata: { name: 'default' }, spec: { subject: { namespaces: {} }, ingress: [{ action: 'Pass', from: [{ namespaces: {} }] }] } }, 'spec.ingress[0].action: Unsupported value: "Pass": supported values: "Allow", "Deny"'],
  ])('%s: %j', async (path, body, message) => {
    const r = await req('POST', path, body);
    const kind = path.split('/').pop()!;
    const k = { clusternetworkpolicies: 'ClusterNetworkPolicy', adminnetworkpolicies: 'AdminNetworkPolicy', baselineadminnetworkpolicies: 'BaselineAdminNetworkPolicy' }[kind];
    const name = (body as KubeObject).metadata.name;
    expect(r).toMatchObject({ status: 422, body: { reason: 'Invalid', message: `${k}.policy.networking.k8s.io "${name}" is invalid: ${message}` } });
  });
});

describe('the sandbox CLI knows the policy kinds', () => {
  it('parses manifests, aliases and prints tables', () => {
    const text = 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec: {podSelector: {}}\n---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: c}\nspec: {tier: Admin, priority: 3}\n';
    expect(parseManifests(text).map((m) => m.resource)).toEqual(['networkpolicies', 'clusternetworkpolicies']);
    expect(() => parseManifests('apiVersion: policy.networking.k8s.io/v1alpha1\nkind: ClusterNetworkPolicy\nmetadata: {name: c}\n')).toThrowError(/v1alpha2/);
    expect(['netpol', 'NetworkPolicy', 'networkpolicies.networking.k8s.io', 'cnp', 'anp', 'banp', 'clusternetworkpolicies.policy.networking.k8s.io'].map(resourceFor)).toEqual([
      'networkpolicies', 'networkpolicies', 'networkpolicies', 'clusternetworkpolicies', 'adminnetworkpolicies', 'baselineadminnetworkpolicies', 'clusternetworkpolicies',
    ]);
    const now = Date.parse('2026-01-01T00:01:00Z');
    const ts = '2026-01-01T00:00:00Z';
    const p = { metadata: { name: 'p', namespace: 'x', creationTimestamp: ts }, spec: { podSelector: { matchLabels: { pod: 'a' }, matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['y', 'z'] }, { key: 'gone', operator: 'DoesNotExist' }] } } };
    expect(getTable('networkpolicies', [p], false, true, now)).toBe('NAMESPACE   NAME   POD-SELECTOR                 AGE\nx           p      pod=a,ns notin (y,z),!gone   60s\n');
    expect(labelSelectorText({})).toBe('<none>');
    expect(getTable('clusternetworkpolicies', [{ metadata: { name: 'c', creationTimestamp: ts }, spec: { tier: 'Baseline', priority: 7 } }], false, false, now)).toBe('NAME   TIER       PRIORITY   AGE\nc      Baseline   7          60s\n');
  });
});
