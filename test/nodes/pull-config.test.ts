/**
 * GET /pull-config/containerd/:upstream/hosts.toml and GET /pull-config/registries.conf (SPEC 18, issue 17)
 * against the real service: mirrors of an upstream in /resolve's order with unhealthy ones left out (states
 * from real probes of loopback servers), entries mirrored from a peer counted like local ones, Docker's
 * normalisation of the upstream, TLS settings and paths carried over, ETag / If-None-Match, X-Catalog-Revision,
 * 404 and 400 problems, and answers served without the database.
 */
import { closeAllFakeServers, startFakeServer, status, tooManyRequests, type FakeServer } from '../support/fake-servers';
import { pageOf, peerEntry, startFeedPeer, upsert } from '../support/fake-peers';
import { call, expectProblem, startTestService, type TestService } from '../support/service';

const CA = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
let svc: TestService;
let healthy: FakeServer;
let busy: FakeServer;
let peer: FakeServer;
const ids: Record<string, string> = {};

const v2ok = status(200, { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0' }, '{}');

async function create(name: string, body: Record<string, unknown>): Promise<string> {
  const res = await call(svc.url, 'POST', '/container_registry', { container_registry_name: name, ...body });
  expect(res.status).toBe(201);
  ids[name] = res.body.container_registry_id;
  return ids[name]!;
}

async function probe(name: string, expected: string): Promise<void> {
  const res = await call(svc.url, 'GET', `/check_container_health/${ids[name]}`);
  expect([name, res.body.status]).toEqual([name, expected]);
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  healthy = await startFakeServer(v2ok);
  busy = await startFakeServer(tooManyRequests);
  const mirrored = peerEntry({ container_registry_name: 'c-peer-hub', container_registry_public_url: 'http://127.0.0.1:5997', container_registry_image_prefix: '127.0.0.1:5997', container_registry_config: { mirror_of: ['docker.io'] } });
  peer = await startFeedPeer((q) => pageOf([upsert(1, mirrored)], q));
  svc = await startTestService({ PEERS: `eu=${peer.url}` });
  await create('a-hub', { container_registry_public_url: healthy.url, container_registry_config: { mirror_of: ['docker.io'] } });
  await create('b-busy-hub', { container_registry_public_url: busy.url, container_registry_config: { mirror_of: ['index.docker.io'] } });
  await create('d-dead-hub', { container_registry_public_url: 'http://127.0.0.1:9', container_registry_config: { mirror_of: ['docker.io'] } });
  await create('e-tls-hub', {
    container_registry_public_url: 'https://127.0.0.1:5996/proxy/',
    container_registry_image_prefix: '127.0.0.1:5996/hub',
    container_registry_config: { mirror_of: ['docker.io', 'quay.io/org'], ca_certificate: CA, insecure_skip_tls_verify: true },
  });
  await create('quay', { container_registry_public_url: 'https://quay.example.com', container_registry_image_prefix: 'quay.io' });
  await probe('a-hub', 'healthy');
  await probe('b-busy-hub', 'degraded');
  await probe('d-dead-hub', 'unhealthy');
  await until('the peer entry is mirrored', async () => (await call(svc.url, 'GET', '/resolve?image=nginx')).body?.candidates?.length === 5);
}, 60_000);

afterAll(async () => {
  await svc.close();
  await closeAllFakeServers();
});

const HUB_TOML = (port: number) => `# containerd hosts.toml for docker.io, written by registry-db from its catalog
# (GET /pull-config/containerd/docker.io/hosts.toml): the mirrors best first (healthy, degraded,
# unknown; unhealthy ones left out), then the server, the upstream itself. registry-db-agent rewrites it
# when the catalog changes: edits made here are lost.
server = "https://registry-1.docker.io"
# left out, unhealthy: d-dead-hub

# a-hub (healthy)
[host."http://127.0.0.1:${port}"]
  capabilities = ["pull", "resolve"]

# c-peer-hub (healthy)
[host."http://127.0.0.1:5997"]
  capabilities = ["pull", "resolve"]

# b-busy-hub (degraded)
[host."http://127.0.0.1:${'BUSY'}"]
  capabilities = ["pull", "resolve"]

# e-tls-hub (unknown)
[host."https://127.0.0.1:5996/proxy/v2/hub"]
  capabilities = ["pull", "resolve"]
  override_path = true
  ca = "ca-${'TLS'}.crt"
  skip_verify = true
`;

describe('containerd hosts.toml', () => {
  test('When the hosts.toml of docker.io is asked for, then it lists the mirrors in /resolve order (healthy, degraded, unknown), leaves the unhealthy one out, carries path and TLS settings, and names Docker Hub as the server', async () => {
    const res = await call(svc.url, 'GET', '/pull-config/containerd/docker.io/hosts.toml');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(res.text).toBe(HUB_TOML(healthy.port).replace('BUSY', String(busy.port)).replace('TLS', ids['e-tls-hub']!));
    // The order is /resolve's: the same mirrors (but the unhealthy one) in the same order.
    const resolved = (await call(svc.url, 'GET', '/resolve?image=nginx')).body.candidates.map((c: { container_registry_name: string }) => c.container_registry_name);
    expect(resolved).toEqual(['a-hub', 'c-peer-hub', 'b-busy-hub', 'e-tls-hub', 'd-dead-hub']);
  });

  test('When the upstream is given as index.docker.io or with capitals, then it is Docker Hub (the same file)', async () => {
    const hub = await call(svc.url, 'GET', '/pull-config/containerd/docker.io/hosts.toml');
    for (const name of ['index.docker.io', 'Docker.IO']) {
      const res = await call(svc.url, 'GET', `/pull-config/containerd/${name}/hosts.toml`);
      expect([name, res.status, res.text]).toEqual([name, 200, hub.text]);
    }
  });

  test('When the upstream has an entry of its own, then its URL is the server (the last resort)', async () => {
    await create('quay-whole', { container_registry_public_url: 'http://127.0.0.1:5995', container_registry_config: { mirror_of: ['quay.io'] } });
    const res = await call(svc.url, 'GET', '/pull-config/containerd/quay.io/hosts.toml');
    expect(res.status).toBe(200);
    expect(res.text).toContain('server = "https://quay.example.com"\n');
    expect(res.text).toContain('[host."http://127.0.0.1:5995"]');
    // e-tls-hub mirrors only quay.io/org: not a mirror of the whole host.
    expect(res.text).not.toContain('5996');
    await call(svc.url, 'DELETE', `/container_registry/${ids['quay-whole']}`);
  });

  test('When nothing mirrors the host (or only a namespace under it), then it is a 404 problem', async () => {
    expectProblem(await call(svc.url, 'GET', '/pull-config/containerd/ghcr.io/hosts.toml'), 404);
    const quay = await call(svc.url, 'GET', '/pull-config/containerd/quay.io/hosts.toml');
    expectProblem(quay, 404);
    expect(quay.body.detail).toContain('registries.conf');
  });

  test.each([
    ['a path', 'quay.io%2Forg'],
    ['no registry host', 'ubuntu'],
    ['no valid host', 'bad_host!.io'],
  ])('When the upstream has %s, then it is a 400 problem naming upstream', async (_what, upstream) => {
    expectProblem(await call(svc.url, 'GET', `/pull-config/containerd/${upstream}/hosts.toml`), 400, 'upstream');
  });
});

describe('registries.conf', () => {
  test('When registries.conf is asked for, then each mirrored upstream has a [[registry]] with its mirrors in order, names rewritten onto each mirror, insecure for plain http and unverified TLS', async () => {
    const res = await call(svc.url, 'GET', '/pull-config/registries.conf');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    const body = res.text.slice(res.text.indexOf('\n[[registry]]'));
    expect(body).toBe(`
[[registry]]
prefix = "docker.io"
location = "docker.io"
# left out, unhealthy: d-dead-hub

# a-hub (healthy)
[[registry.mirror]]
location = "127.0.0.1:${healthy.port}"
insecure = true

# c-peer-hub (healthy)
[[registry.mirror]]
location = "127.0.0.1:5997"
insecure = true

# b-busy-hub (degraded)
[[registry.mirror]]
location = "127.0.0.1:${busy.port}"
insecure = true

# e-tls-hub (unknown)
[[registry.mirror]]
location = "127.0.0.1:5996/hub"
insecure = true

[[registry]]
prefix = "quay.io/org"
location = "quay.io/org"

# e-tls-hub (unknown)
[[registry.mirror]]
location = "127.0.0.1:5996/hub"
insecure = true
`);
  });
});

describe('Caching headers', () => {
  test('When a file is asked for again with its ETag, then it is a 304; when the catalog changes what it says, then the ETag changes and X-Catalog-Revision moves on', async () => {
    for (const path of ['/pull-config/containerd/docker.io/hosts.toml', '/pull-config/registries.conf']) {
      const first = await call(svc.url, 'GET', path);
      const etag = first.headers.get('etag')!;
      expect(etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
      const revision = Number(first.headers.get('x-catalog-revision'));
      expect(revision).toBeGreaterThan(0);
      const again = await call(svc.url, 'GET', path, undefined, { 'If-None-Match': etag });
      expect([again.status, again.text]).toEqual([304, '']);
      expect((await call(svc.url, 'GET', path, undefined, { 'If-None-Match': `"other", ${etag}` })).status).toBe(304);
      // A change the file does not show keeps the ETag.
      expect((await call(svc.url, 'PUT', `/container_registry/${ids['a-hub']}`, { $addToSet: { container_registry_tags: `t${revision}` } })).status).toBe(200);
      const same = await call(svc.url, 'GET', path, undefined, { 'If-None-Match': etag });
      expect(same.status).toBe(304);
    }
    const before = await call(svc.url, 'GET', '/pull-config/registries.conf');
    expect((await call(svc.url, 'PUT', `/container_registry/${ids['b-busy-hub']}`, { $unset: { 'container_registry_config.mirror_of': '' } })).status).toBe(200);
    const after = await call(svc.url, 'GET', '/pull-config/registries.conf', undefined, { 'If-None-Match': before.headers.get('etag')! });
    expect(after.status).toBe(200);
    expect(after.text).not.toContain('b-busy-hub');
    expect(after.headers.get('etag')).not.toBe(before.headers.get('etag'));
    expect(Number(after.headers.get('x-catalog-revision'))).toBeGreaterThan(Number(before.headers.get('x-catalog-revision')));
  });

  test('When the database connection is closed, then the files are still served (rendered from memory, no query per request)', async () => {
    const before = await call(svc.url, 'GET', '/pull-config/registries.conf');
    await svc.client.close();
    const hosts = await call(svc.url, 'GET', '/pull-config/containerd/docker.io/hosts.toml');
    const conf = await call(svc.url, 'GET', '/pull-config/registries.conf');
    expect([hosts.status, conf.status, conf.text]).toEqual([200, 200, before.text]);
    await svc.client.connect();
  });
});
