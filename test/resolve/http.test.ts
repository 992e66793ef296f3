/**
 * GET and POST /resolve against the real service and database, with entries whose health comes from real
 * probes (GET /check_container_health/:id): a real docker-registry on loopback (healthy) and a loopback port
 * nobody listens on (unhealthy). The registry also serves the image that resolution points at.
 */
import { call, startTestService, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { content, ensureTestDeps, MEDIA, pushImage, startRegistry, stopAllRegistries, type RunningRegistry } from '../support/registries';
import { refusedUrl } from '../health/loopback';

let svc: TestService;
let live: RunningRegistry;
let dead: string;
let L: string; // the live registry's host:port
let D: string; // the dead port's host:port
const ids: Record<string, string> = {};
const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

async function create(name: string, url: string, extra: Record<string, unknown> = {}): Promise<void> {
  const res = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: name, container_registry_public_url: url, ...extra }));
  expect(res.status).toBe(201);
  ids[name] = res.body.container_registry_id as string;
}

const resolve = (image: string, prefer?: string) => call(svc.url, 'GET', `/resolve?image=${encodeURIComponent(image)}${prefer ? `&prefer=${encodeURIComponent(prefer)}` : ''}`);
/** [name, status, match, pull_reference] of each candidate, best first. */
const rows = (body: { candidates: Array<Record<string, string>> }) => body.candidates.map((c) => [c.container_registry_name, c.status, c.match, c.pull_reference]);

beforeAll(async () => {
  ensureTestDeps();
  [svc, live, dead] = await Promise.all([startTestService({ PROBE_TIMEOUT_MS: '1500' }), startRegistry(), refusedUrl()]);
  L = new URL(live.url).host;
  D = new URL(dead).host;
  await create('hub', dead, { container_registry_image_prefix: 'docker.io' });
  await create('hub-mirror-live', live.url, { container_registry_config: { mirror_of: ['docker.io'] } });
  await create('hub-mirror-dead', dead, { container_registry_config: { mirror_of: ['index.docker.io'] } });
  await create('quay-eu', live.url, { container_registry_image_prefix: `${L}/quay-eu`, container_registry_tags: ['eu'], container_registry_config: { mirror_of: ['quay.io/org'] } });
  await create('quay-us', live.url, { container_registry_image_prefix: `${L}/quay-us`, container_registry_tags: ['us'], container_registry_config: { mirror_of: ['quay.io/org'] } });
  await create('apps', live.url, { container_registry_image_prefix: 'apps.example.com' });
  await create('apps-team-app', dead, { container_registry_image_prefix: 'apps.example.com/team/app' });
  await pushImage(live, 'library/nginx', '1.27', { config: content('{"architecture":"amd64","os":"linux"}'), layers: [content('layer of nginx')] });
});
afterAll(async () => {
  await svc?.close();
  await stopAllRegistries();
});

test('When entries were never probed, then they resolve as unknown; after real probes, with their real status', async () => {
  const before = await resolve('nginx:1.27');
  expect(before.status).toBe(200);
  expect(before.body.candidates.map((c: { status: string }) => c.status)).toEqual(['unknown', 'unknown', 'unknown']);

  for (const [name, id] of Object.entries(ids)) {
    const res = await call(svc.url, 'GET', `/check_container_health/${id}`);
    expect([name, res.status]).toEqual([name, 200]);
  }
  const after = await resolve('nginx:1.27');
  // No storage refresh ran: what each holds is unknown (SPEC 19; test/inventory covers presence).
  const unknown = { present: null, digest: null, platforms: null, observed_at: null, source: 'inventory' };
  expect(after.body).toEqual({
    image: 'docker.io/library/nginx:1.27',
    candidates: [
      { container_registry_id: ids['hub-mirror-live'], container_registry_name: 'hub-mirror-live', pull_reference: `${L}/library/nginx:1.27`, match: 'mirror', prefix: 'docker.io', status: 'healthy', origin: null, ...unknown },
      { container_registry_id: ids['hub-mirror-dead'], container_registry_name: 'hub-mirror-dead', pull_reference: `${D}/library/nginx:1.27`, match: 'mirror', prefix: 'docker.io', status: 'unhealthy', origin: null, ...unknown },
      { container_registry_id: ids.hub, container_registry_name: 'hub', pull_reference: 'docker.io/library/nginx:1.27', match: 'prefix', prefix: 'docker.io', status: 'unhealthy', origin: null, ...unknown },
    ],
  });
});

test('When the best candidate is pulled, then the live registry serves that exact reference', async () => {
  const best = (await resolve('nginx:1.27')).body.candidates[0].pull_reference as string;
  const m = /^([^/]+)\/(.+):([^:]+)$/.exec(best)!;
  const res = await fetch(`http://${m[1]}/v2/${m[2]}/manifests/${m[3]}`, { headers: { Accept: MEDIA.ociManifest } });
  expect(res.status).toBe(200);
  expect(res.headers.get('docker-content-digest')).toMatch(/^sha256:/);
});

describe('A table of references', () => {
  test.each([
    ['nginx', 'docker.io/library/nginx', () => [['hub-mirror-live', 'healthy', 'mirror', `${L}/library/nginx`], ['hub-mirror-dead', 'unhealthy', 'mirror', `${D}/library/nginx`], ['hub', 'unhealthy', 'prefix', 'docker.io/library/nginx']]],
    ['docker.io/nginx', 'docker.io/library/nginx', () => [['hub-mirror-live', 'healthy', 'mirror', `${L}/library/nginx`], ['hub-mirror-dead', 'unhealthy', 'mirror', `${D}/library/nginx`], ['hub', 'unhealthy', 'prefix', 'docker.io/library/nginx']]],
    ['index.docker.io/bitnami/redis:7', 'docker.io/bitnami/redis:7', () => [['hub-mirror-live', 'healthy', 'mirror', `${L}/bitnami/redis:7`], ['hub-mirror-dead', 'unhealthy', 'mirror', `${D}/bitnami/redis:7`], ['hub', 'unhealthy', 'prefix', 'docker.io/bitnami/redis:7']]],
    [`quay.io/org/app:1@${DIGEST}`, `quay.io/org/app:1@${DIGEST}`, () => [['quay-eu', 'healthy', 'mirror', `${L}/quay-eu/app:1@${DIGEST}`], ['quay-us', 'healthy', 'mirror', `${L}/quay-us/app:1@${DIGEST}`]]],
    ['apps.example.com/team/app:v2', 'apps.example.com/team/app:v2', () => [['apps', 'healthy', 'prefix', 'apps.example.com/team/app:v2'], ['apps-team-app', 'unhealthy', 'prefix', 'apps.example.com/team/app:v2']]],
    ['apps.example.com/team/application', 'apps.example.com/team/application', () => [['apps', 'healthy', 'prefix', 'apps.example.com/team/application']]],
    [`127.0.0.1:${'LIVE'}/quay-eu/app`, null, () => [['quay-eu', 'healthy', 'prefix', `${L}/quay-eu/app`], ['hub-mirror-live', 'healthy', 'prefix', `${L}/quay-eu/app`]]],
  ] as const)('%s', async (input, image, expected) => {
    const ref = input.replace('127.0.0.1:LIVE', L);
    const res = await resolve(ref);
    expect(res.status).toBe(200);
    expect(res.body.image).toBe(image ?? ref);
    expect(rows(res.body)).toEqual(expected());
  });

  test('When prefer names a tag, then it breaks the tie between equal mirrors', async () => {
    expect(rows((await resolve('quay.io/org/app', 'us')).body).map((r) => r[0])).toEqual(['quay-us', 'quay-eu']);
    expect(rows((await resolve('quay.io/org/app', 'gpu,eu')).body).map((r) => r[0])).toEqual(['quay-eu', 'quay-us']);
  });

  test.each(['quay.io/orgx/app', 'ghcr.io/owner/app', 'apps.example.com.evil/x'])('When nothing serves %s, then it is a 404 problem', async (ref) => {
    const res = await resolve(ref);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body.detail).toContain(ref.includes('/') ? ref : `docker.io/library/${ref}`);
  });
});

describe('Bad input', () => {
  test.each([
    ['/resolve', 'image', /required/],
    ['/resolve?image=', 'image', /required/],
    ['/resolve?image=Nginx', 'image', /uppercase/],
    [`/resolve?image=${'a'.repeat(300)}`, 'image', /255/], // (a long name)
    ['/resolve?image=nginx%40sha256%3Aabc', 'image', /invalid-format|digest/],
    ['/resolve?image=nginx&image=redis', 'image', /once/],
    [`/resolve?image=nginx&prefer=${'x'.repeat(65)}`, 'prefer', /64|long/],
    [`/resolve?image=nginx&prefer=${Array.from({ length: 33 }, (_, i) => `t${i}`).join(',')}`, 'prefer', /32/],
  ])('GET %s is a 400 naming %s', async (path, field, message) => {
    const res = await call(svc.url, 'GET', path);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body.errors[0].path).toBe(field);
    expect(res.body.errors[0].message).toMatch(message);
  });

  test.each([
    ['no images', {}, '/images'],
    ['no image in the list', { images: [] }, '/images'],
    ['1,001 images', { images: Array(1001).fill('nginx') }, '/images'],
    ['an image that is not a string', { images: [42] }, '/images/0'],
    ['prefer that is not a list', { images: ['nginx'], prefer: 'us' }, '/prefer'],
    ['an unknown field', { images: ['nginx'], other: 1 }, '/other'],
  ])('POST with %s is a 400 naming %s', async (_what, body, path) => {
    const res = await call(svc.url, 'POST', '/resolve', body);
    expect(res.status).toBe(400);
    expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
  });

  test('When the body is not JSON, then POST /resolve says so (400/415), never 500', async () => {
    expect((await call(svc.url, 'POST', '/resolve', '{"images": [')).status).toBe(400);
    expect((await call(svc.url, 'POST', '/resolve', 'images=nginx', { 'Content-Type': 'text/plain' })).status).toBe(415);
  });

  test('When mirror_of is not a list of registry prefixes, then the entry is refused naming the item', async () => {
    const bad = async (mirror_of: unknown) => (await call(svc.url, 'POST', '/container_registry', entry({ container_registry_config: { mirror_of } }))).body;
    expect((await bad(['nginx'])).errors[0].path).toBe('/container_registry_config/mirror_of/0');
    expect((await bad(['docker.io', 'quay.io/Org'])).errors[0].path).toBe('/container_registry_config/mirror_of/1');
    expect((await bad(['docker.io', 'docker.io'])).errors[0].path).toBe('/container_registry_config/mirror_of');
    expect((await bad(Array.from({ length: 33 }, (_, i) => `r${i}.io`))).errors[0].path).toBe('/container_registry_config/mirror_of');
    expect((await bad('docker.io')).errors[0].path).toBe('/container_registry_config/mirror_of');
  });
});

test('When POST /resolve gets several images, then each has its own answer, in order', async () => {
  const res = await call(svc.url, 'POST', '/resolve', { images: ['quay.io/org/app', 'Nginx', 'quay.io/orgx/app', 'nginx:1.27'], prefer: ['us'] });
  expect(res.status).toBe(200);
  const [a, b, c, d] = res.body.results;
  expect(a.input).toBe('quay.io/org/app');
  expect(a.candidates.map((x: { container_registry_name: string }) => x.container_registry_name)).toEqual(['quay-us', 'quay-eu']);
  expect(b).toEqual({ input: 'Nginx', error: expect.objectContaining({ status: 400, type: '/problems/invalid-request', errors: [expect.objectContaining({ path: '/images/1' })] }) });
  expect(c).toEqual({ input: 'quay.io/orgx/app', image: 'quay.io/orgx/app', error: expect.objectContaining({ status: 404, type: '/problems/not-found' }) });
  expect(d).toEqual({ input: 'nginx:1.27', ...(await resolve('nginx:1.27')).body });
});

test('When a batch of 1,000 images is sent, then all 1,000 are answered', async () => {
  const images = Array.from({ length: 1000 }, (_, i) => (i % 2 ? `quay.io/org/app-${i}:v${i}` : `team-${i}/app-${i}`));
  const res = await call(svc.url, 'POST', '/resolve', { images });
  expect(res.status).toBe(200);
  expect(res.body.results).toHaveLength(1000);
  expect(res.body.results[999].candidates[0].pull_reference).toBe(`${L}/quay-eu/app-999:v999`);
  expect(res.body.results[998].candidates[0].pull_reference).toBe(`${L}/team-998/app-998`);
});

test('When entries are updated and deleted, then the next resolution follows at once', async () => {
  const put = await call(svc.url, 'PUT', `/container_registry/${ids['hub-mirror-live']}`, { $set: { 'container_registry_config.mirror_of': ['quay.io/org'] } });
  expect(put.status).toBe(200);
  expect(rows((await resolve('nginx')).body).map((r) => r[0])).toEqual(['hub-mirror-dead', 'hub']);
  expect(rows((await resolve('quay.io/org/app')).body)[0]).toEqual(['hub-mirror-live', 'healthy', 'mirror', `${L}/app`]);

  expect((await call(svc.url, 'DELETE', `/container_registry/${ids.hub}`)).status).toBe(204);
  expect(rows((await resolve('nginx')).body).map((r) => r[0])).toEqual(['hub-mirror-dead']);
  expect((await call(svc.url, 'DELETE', `/container_registry/${ids['hub-mirror-dead']}`)).status).toBe(204);
  expect((await resolve('nginx')).status).toBe(404);
});

test('When another instance starts on the same database, then it loads every entry and answers the same', async () => {
  const second = await startTestService({}, { dbName: svc.db.databaseName });
  try {
    for (const ref of ['quay.io/org/app', 'apps.example.com/team/app:v2', `${L}/library/nginx`]) {
      const [a, b] = await Promise.all([resolve(ref), call(second.url, 'GET', `/resolve?image=${encodeURIComponent(ref)}`)]);
      expect(b.status).toBe(200);
      expect(b.body).toEqual(a.body);
    }
  } finally {
    // Closing drops the shared database: this test runs last.
    await second.close();
  }
});
