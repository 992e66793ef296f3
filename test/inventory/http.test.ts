/**
 * The inventory end to end (SPEC 19, issue 18): the real service, real docker-registry instances filled
 * through the registry API (single-platform manifests, a two-platform index, a tag moved on the origin but
 * not on its mirror), an htpasswd one asked live with stored credentials, a dead one, and a peer catalog.
 * Every digest expected is computed from the bytes the test pushed.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { refusedUrl } from '../health/loopback';
import { entry } from '../support/entries';
import { call, expectProblem, startTestService, type TestService } from '../support/service';
import { content, ensureTestDeps, MEDIA, pushImage, pushIndex, pushManifest, startRegistry, stopAllRegistries, type Content, type PushedImage, type RunningRegistry } from '../support/registries';
import { eventually, Receiver } from '../support/webhook-receiver';

let svc: TestService;
let origin: RunningRegistry;
let mirror: RunningRegistry;
let locked: RunningRegistry;
const ids: Record<string, string> = {};
/** host:port of each registry (its image prefix). */
const at: Record<string, string> = {};
let rx: Receiver;

const image = (name: string) => ({ config: content(JSON.stringify({ architecture: 'amd64', os: 'linux', name, salt: randomBytes(4).toString('hex') })), layers: [content(randomBytes(700))] });
type Img = ReturnType<typeof image>;
const A = image('a');
const B = image('b');
const C = image('c');
const D = image('d');
const LEGACY = image('legacy');
const platforms = [
  { ...image('amd64'), platform: { os: 'linux', architecture: 'amd64' } },
  { ...image('arm64'), platform: { os: 'linux', architecture: 'arm64' } },
];
const digests: Record<string, string> = {};
let indexDigest = '';

async function push(registry: RunningRegistry, repo: string, tag: string, img: Img, format: 'oci' | 'docker' = 'oci'): Promise<PushedImage> {
  return pushImage(registry, repo, tag, { ...img, format });
}

async function create(name: string, url: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: name, container_registry_public_url: url, ...extra }));
  if (r.status !== 201) throw new Error(`create ${name}: ${r.status} ${r.text}`);
  return r.body.container_registry_id;
}

async function refresh(id: string, wait = 60): Promise<{ status: number; body: any }> {
  return call(svc.url, 'POST', `/container_registry/${id}/refresh_storage?wait=${wait}`);
}

const resolve = (q: string) => call(svc.url, 'GET', `/resolve?${q}`);

/** Until the replica's memory holds the inventories of these registries at their current refresh. */
async function loaded(service: TestService, ...names: string[]): Promise<void> {
  await eventually(async () => {
    await service.parts.inventory.loader.whenIdle();
    return names.every((n) => {
      const snap = service.parts.inventory.index.inventoryOf(ids[n]!);
      const doc = service.parts.feed.view.get(ids[n]!)?.doc;
      return snap && snap.observedAt === doc?.container_registry_storage_info?.observed?.refreshed_at;
    });
  }, 20_000);
}

beforeAll(async () => {
  ensureTestDeps();
  [origin, mirror, locked] = await Promise.all([startRegistry(), startRegistry(), startRegistry({ auth: 'htpasswd' })]);
  // The origin: single-platform images (OCI and Docker), a tag only it has, and a two-platform index.
  digests.A = (await push(origin, 'team/app', '1.0', A)).manifest.digest;
  digests.B = (await push(origin, 'team/app', '1.1', B)).manifest.digest;
  await pushManifest(origin, 'team/app', 'latest', MEDIA.ociManifest, (await push(origin, 'team/app', 'only-origin', B)).manifest.bytes);
  digests.LEGACY = (await push(origin, 'legacy/api', 'v1', LEGACY, 'docker')).manifest.digest;
  indexDigest = (await pushIndex(origin, 'multi', 'v1', platforms)).index.digest;
  // The mirror: the same bytes, then the origin moves 1.1 to C and the mirror keeps B.
  await push(mirror, 'team/app', '1.0', A);
  await push(mirror, 'team/app', '1.1', B);
  expect((await pushIndex(mirror, 'multi', 'v1', platforms)).index.digest).toBe(indexDigest);
  digests.C = (await push(origin, 'team/app', '1.1', C)).manifest.digest;
  digests.D = (await push(locked, 'secret/app', '1.0', D)).manifest.digest;
  for (const [name, r] of Object.entries({ origin, mirror, locked })) at[name] = new URL(r.url).host;

  rx = new Receiver();
  await rx.up();
  svc = await startTestService({ PROBE_TIMEOUT_MS: '3000', WEBHOOK_RETRY_MIN_MS: '50', WEBHOOK_RETRY_MAX_MS: '400' });
  const sub = await call(svc.url, 'POST', '/webhooks', { url: rx.url, events: ['registry.mirror_drift'] });
  expect(sub.status).toBe(201);
  rx.setSecret(sub.body.secret);

  ids.origin = await create('origin', origin.url);
  ids.mirror = await create('mirror', mirror.url, { container_registry_config: { mirror_of: [at.origin] } });
  // A second entry on the mirror's registry that no refresh ever reads: its presence stays unknown.
  ids.unrefreshed = await create('unrefreshed', mirror.url, { container_registry_config: { mirror_of: [at.origin] } });
  ids.dead = await create('dead', await refusedUrl(), { container_registry_config: { mirror_of: [at.origin] } });
  ids.locked = await create('locked', locked.url, { container_registry_credentials: locked.credentials });
  ids.anonymous = await create('locked-anonymous', locked.url);
  for (const id of Object.values(ids)) expect((await call(svc.url, 'GET', `/check_container_health/${id}`)).status).toBe(200);
}, 180_000);

afterAll(async () => {
  await svc?.close();
  await rx?.down();
  await stopAllRegistries();
});

const row = (repository: string, tag: string, digest: string, media_type: string, platforms: string[] | null = null) => ({ repository, tag, digest, media_type, platforms });
const originRows = () => [
  row('legacy/api', 'v1', digests.LEGACY!, MEDIA.dockerManifest),
  row('multi', 'v1', indexDigest, MEDIA.ociIndex, ['linux/amd64', 'linux/arm64']),
  row('team/app', '1.0', digests.A!, MEDIA.ociManifest),
  row('team/app', '1.1', digests.C!, MEDIA.ociManifest),
  row('team/app', 'latest', digests.B!, MEDIA.ociManifest),
  row('team/app', 'only-origin', digests.B!, MEDIA.ociManifest),
];

describe('refresh_storage and the inventory route', () => {
  test('When a writer refreshes a registry now, then the answer is its observed storage and the inventory it recorded, and the entry shows the same observation', async () => {
    const r = await refresh(ids.origin!);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      container_registry_id: ids.origin,
      status: 'refreshed',
      observed: { catalog_supported: true, repository_count: 3, tag_count: 6, used_bytes: expect.any(Number), truncated: false, error: null, detail: null, refreshed_at: expect.any(String), duration_ms: expect.any(Number) },
      inventory: { observed_at: r.body.observed.refreshed_at, truncated: false, repository_count: 3, tag_count: 6 },
    });
    const doc = (await call(svc.url, 'GET', `/container_registry/${ids.origin}`)).body;
    expect(doc.container_registry_storage_info.observed.refreshed_at).toBe(r.body.observed.refreshed_at);
    for (const name of ['mirror', 'locked']) expect((await refresh(ids[name]!)).body.status).toBe('refreshed');
  });

  test('When the inventory is read, then every tag comes with its digest, media type and (index) platforms, in order, with observed_at and truncated', async () => {
    const r = await call(svc.url, 'GET', `/container_registry/${ids.origin}/inventory`);
    expect(r.status).toBe(200);
    const observedAt = (await call(svc.url, 'GET', `/container_registry/${ids.origin}`)).body.container_registry_storage_info.observed.refreshed_at;
    expect(r.body).toEqual({ container_registry_id: ids.origin, observed_at: observedAt, truncated: false, repository_count: 3, tag_count: 6, items: originRows() });
    expect(r.headers.get('link')).toBeNull();
    const mirrorInv = (await call(svc.url, 'GET', `/container_registry/${ids.mirror}/inventory`)).body;
    expect(mirrorInv.items).toEqual([row('multi', 'v1', indexDigest, MEDIA.ociIndex, ['linux/amd64', 'linux/arm64']), row('team/app', '1.0', digests.A!, MEDIA.ociManifest), row('team/app', '1.1', digests.B!, MEDIA.ociManifest)]);
  });

  test('When the inventory is paged two rows at a time, then following Link gives every row exactly once', async () => {
    const seen: unknown[] = [];
    let path: string | null = `/container_registry/${ids.origin}/inventory?limit=2`;
    let pages = 0;
    while (path) {
      const r = await call(svc.url, 'GET', path);
      expect(r.status).toBe(200);
      expect(r.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...r.body.items);
      pages++;
      const link = r.headers.get('link');
      path = link ? /^<([^>]+)>; rel="next"$/.exec(link)![1]! : null;
    }
    expect(seen).toEqual(originRows());
    expect(pages).toBe(3);
  });

  test('When the inventory is narrowed to a repository, a tag, or both, then only those rows come', async () => {
    const get = async (q: string) => (await call(svc.url, 'GET', `/container_registry/${ids.origin}/inventory?${q}`)).body.items;
    expect(await get('repository=team/app')).toEqual(originRows().slice(2));
    expect(await get('repository=team/app&tag=1.1')).toEqual([row('team/app', '1.1', digests.C!, MEDIA.ociManifest)]);
    expect(await get('tag=v1')).toEqual(originRows().slice(0, 2));
    expect(await get('repository=nothing/here')).toEqual([]);
  });

  test('When parameters are malformed, then each is a 400 naming it; an unknown entry is a 404', async () => {
    const base = `/container_registry/${ids.origin}`;
    expectProblem(await call(svc.url, 'GET', `${base}/inventory?repository=Team/App`), 400, 'repository');
    expectProblem(await call(svc.url, 'GET', `${base}/inventory?tag=-x`), 400, 'tag');
    expectProblem(await call(svc.url, 'GET', `${base}/inventory?limit=0`), 400, 'limit');
    expectProblem(await call(svc.url, 'GET', `${base}/inventory?cursor=%7B%7D`), 400, 'cursor');
    expectProblem(await call(svc.url, 'GET', `${base}/inventory?sort=tag`), 400, 'sort');
    expectProblem(await call(svc.url, 'POST', `${base}/refresh_storage?wait=soon`), 400, 'wait');
    expectProblem(await call(svc.url, 'POST', `${base}/refresh_storage?force=1`), 400, 'force');
    expectProblem(await call(svc.url, 'GET', '/container_registry/nope/inventory'), 404);
    expectProblem(await call(svc.url, 'POST', '/container_registry/nope/refresh_storage'), 404);
    // Never refreshed: no inventory, said plainly.
    expect((await call(svc.url, 'GET', `/container_registry/${ids.unrefreshed}/inventory`)).body).toEqual({ container_registry_id: ids.unrefreshed, observed_at: null, truncated: false, repository_count: 0, tag_count: 0, items: [] });
  });
});

describe('presence-aware /resolve', () => {
  beforeAll(() => loaded(svc, 'origin', 'mirror', 'locked'));

  test('When the tag moved on the origin but not on its mirror, then both are present with their digests and both carry drift; the unrefreshed and dead entries are unknown', async () => {
    const r = await resolve(`image=${at.origin}/team/app:1.1`);
    expect(r.status).toBe(200);
    const observed = (name: string) => svc.parts.feed.view.get(ids[name]!)!.doc!.container_registry_storage_info!.observed!.refreshed_at!;
    const later = [observed('origin'), observed('mirror')].sort()[1];
    const drift = { origin_digest: digests.C, mirror_digest: digests.B, observed_at: later };
    expect(r.body.candidates).toEqual([
      { container_registry_id: ids.mirror, container_registry_name: 'mirror', pull_reference: `${at.mirror}/team/app:1.1`, match: 'mirror', prefix: at.origin, status: 'healthy', origin: null, present: true, digest: digests.B, platforms: null, observed_at: observed('mirror'), source: 'inventory', drift },
      { container_registry_id: ids.origin, container_registry_name: 'origin', pull_reference: `${at.origin}/team/app:1.1`, match: 'prefix', prefix: at.origin, status: 'healthy', origin: null, present: true, digest: digests.C, platforms: null, observed_at: observed('origin'), source: 'inventory', drift },
      { container_registry_id: ids.unrefreshed, container_registry_name: 'unrefreshed', pull_reference: `${at.mirror}/team/app:1.1`, match: 'mirror', prefix: at.origin, status: 'healthy', origin: null, present: null, digest: null, platforms: null, observed_at: null, source: 'inventory' },
      { container_registry_id: ids.dead, container_registry_name: 'dead', pull_reference: expect.stringMatching(/\/team\/app:1\.1$/), match: 'mirror', prefix: at.origin, status: 'unhealthy', origin: null, present: null, digest: null, platforms: null, observed_at: null, source: 'inventory' },
    ]);
  });

  test('When a healthy mirror lacks the tag, then within the health class the origin holding it comes first, the unknown one next, the absent mirror last; require=present keeps only the holder', async () => {
    const r = await resolve(`image=${at.origin}/team/app:only-origin`);
    expect(r.body.candidates.map((c: any) => [c.container_registry_name, c.present])).toEqual([
      ['origin', true],
      ['unrefreshed', null],
      ['mirror', false],
      ['dead', null],
    ]);
    const required = await resolve(`image=${at.origin}/team/app:only-origin&require=present`);
    expect(required.body.candidates.map((c: any) => c.container_registry_name)).toEqual(['origin']);
    const none = await resolve(`image=${at.origin}/team/app:never-pushed&require=present`);
    expectProblem(none, 404);
    expect(none.body.detail).toContain('known to hold');
    // Without require, the same reference still resolves (nothing known to hold it).
    expect((await resolve(`image=${at.origin}/team/app:never-pushed`)).body.candidates.map((c: any) => c.present)).toEqual([null, false, false, null]);
  });

  test('When a platform is asked, then an index having it is present, one lacking it is absent, and an image manifest is unknown', async () => {
    const present = (q: string) => resolve(q).then((r) => r.body.candidates.filter((c: any) => c.source === 'inventory' && c.observed_at !== null).map((c: any) => [c.container_registry_name, c.present, c.platforms]));
    expect(await present(`image=${at.origin}/multi:v1&platform=linux/arm64`)).toEqual([
      ['mirror', true, ['linux/amd64', 'linux/arm64']],
      ['origin', true, ['linux/amd64', 'linux/arm64']],
    ]);
    expect((await present(`image=${at.origin}/multi:v1&platform=linux/s390x`)).map((c: any) => c[1])).toEqual([false, false]);
    expect((await present(`image=${at.origin}/team/app:1.0&platform=linux/amd64`)).map((c: any) => c[1])).toEqual([null, null]);
    const idx = (await resolve(`image=${at.origin}/multi:v1`)).body.candidates.find((c: any) => c.container_registry_name === 'origin');
    expect(idx).toMatchObject({ present: true, digest: indexDigest, platforms: ['linux/amd64', 'linux/arm64'] });
  });

  test('When a digest is asked, then a registry holding it under some tag is present, one holding the repository but not that digest is unknown, one without the repository is absent', async () => {
    const r = await resolve(`image=${at.origin}/team/app@${digests.C}`);
    const by = Object.fromEntries(r.body.candidates.map((c: any) => [c.container_registry_name, c.present]));
    expect(by).toEqual({ origin: true, mirror: null, unrefreshed: null, dead: null });
    const missing = await resolve(`image=${at.origin}/nothing/here@${digests.C}`);
    expect(Object.fromEntries(missing.body.candidates.map((c: any) => [c.container_registry_name, c.present]))).toEqual({ origin: false, mirror: false, unrefreshed: null, dead: null });
  });

  test('When POST /resolve asks with require and platform, then each image is answered as GET would', async () => {
    const images = [`${at.origin}/multi:v1`, `${at.origin}/team/app:only-origin`];
    const r = await call(svc.url, 'POST', '/resolve', { images, require: 'present', platform: 'linux/amd64' });
    expect(r.status).toBe(200);
    expect(r.body.results[0]).toEqual({ input: images[0], ...(await resolve(`image=${images[0]}&require=present&platform=linux/amd64`)).body });
    expect(r.body.results[1]).toMatchObject({ input: images[1], error: { status: 404 } });
  });

  test('When presence parameters are malformed, then each is a 400 naming it', async () => {
    const absent = await resolve(`image=${at.origin}/team/app&require=absent`);
    expectProblem(absent, 400, 'require');
    // An enumeration's problem says what it takes.
    expect(absent.body.errors).toContainEqual({ path: 'require', message: 'must be one of "present"' });
    expectProblem(await resolve(`image=${at.origin}/team/app&platform=linux`), 400, 'platform');
    expectProblem(await resolve(`image=${at.origin}/team/app&platform=linux/amd64/v8/x`), 400, 'platform');
    expectProblem(await resolve(`image=${at.origin}/team/app&verify=yes`), 400, 'verify');
    expectProblem(await call(svc.url, 'POST', '/resolve', { images: ['nginx'], require: 'maybe' }), 400, '/require');
    expectProblem(await call(svc.url, 'POST', '/resolve', { images: ['nginx'], verify: 'true' }), 400, '/verify');
    expectProblem(await call(svc.url, 'POST', '/resolve', { images: Array.from({ length: 21 }, () => 'nginx'), verify: true }), 400, '/images');
  });
});

describe('verify=true', () => {
  test('When candidates are asked live, then each answers from its registry (source live), the dead one with its error, and drift follows the live digests', async () => {
    const r = await resolve(`image=${at.origin}/team/app:1.1&verify=true`);
    expect(r.status).toBe(200);
    const by = Object.fromEntries(r.body.candidates.map((c: any) => [c.container_registry_name, c]));
    expect(by.origin).toMatchObject({ present: true, digest: digests.C, source: 'live', platforms: null, drift: { origin_digest: digests.C, mirror_digest: digests.B } });
    expect(by.mirror).toMatchObject({ present: true, digest: digests.B, source: 'live', drift: { origin_digest: digests.C, mirror_digest: digests.B } });
    // Never refreshed, but live it answers.
    expect(by.unrefreshed).toMatchObject({ present: true, digest: digests.B, source: 'live' });
    expect(by.dead).toMatchObject({ present: null, digest: null, source: 'live', error: 'connection_refused' });
    expect(Date.parse(by.origin.observed_at)).toBeGreaterThan(Date.now() - 60_000);
    expect(r.body.candidates.map((c: any) => c.container_registry_name)).toEqual(['mirror', 'unrefreshed', 'origin', 'dead']);
  });

  test('When a registry needs credentials, then the stored ones are used; without them it is unknown (auth_failed); a missing tag is absent', async () => {
    const r = await resolve(`image=${at.locked}/secret/app:1.0&verify=true`);
    const by = Object.fromEntries(r.body.candidates.map((c: any) => [c.container_registry_name, c]));
    expect(by.locked).toMatchObject({ present: true, digest: digests.D, source: 'live' });
    expect(by['locked-anonymous']).toMatchObject({ present: null, source: 'live', error: 'auth_failed' });
    const missing = await resolve(`image=${at.locked}/secret/app:nope&verify=true&require=present`);
    expectProblem(missing, 404);
    const absent = await resolve(`image=${at.locked}/secret/app:nope&verify=true`);
    expect(absent.body.candidates.find((c: any) => c.container_registry_name === 'locked')).toMatchObject({ present: false, source: 'live' });
  });

  test('When a digest is asked live, then only the registry answering that exact digest is present', async () => {
    const r = await resolve(`image=${at.locked}/secret/app@${digests.D}&verify=true`);
    expect(r.body.candidates.find((c: any) => c.container_registry_name === 'locked')).toMatchObject({ present: true, digest: digests.D, source: 'live' });
    const other = `sha256:${randomBytes(32).toString('hex')}`;
    const r2 = await resolve(`image=${at.locked}/secret/app@${other}&verify=true`);
    expect(r2.body.candidates.find((c: any) => c.container_registry_name === 'locked')).toMatchObject({ present: false, source: 'live' });
  });

  test('When POST /resolve verifies several images, then each is asked live', async () => {
    const r = await call(svc.url, 'POST', '/resolve', { images: [`${at.locked}/secret/app:1.0`, `${at.origin}/multi:v1`], verify: true, platform: 'linux/arm64' });
    expect(r.status).toBe(200);
    expect(r.body.results[0].candidates.find((c: any) => c.container_registry_name === 'locked')).toMatchObject({ present: null, digest: digests.D, source: 'live' });
    expect(r.body.results[1].candidates.find((c: any) => c.container_registry_name === 'origin')).toMatchObject({ present: true, digest: indexDigest, platforms: ['linux/amd64', 'linux/arm64'], source: 'live' });
  });
});

describe('GET /images', () => {
  test('When a repository is asked without a host, then every registry whose inventory holds it answers with the tag asked and its digest', async () => {
    const r = await call(svc.url, 'GET', '/images?name=team/app:1.1');
    expect(r.status).toBe(200);
    const observed = (name: string) => svc.parts.feed.view.get(ids[name]!)!.doc!.container_registry_storage_info!.observed!.refreshed_at!;
    expect(r.body).toEqual({
      image: 'docker.io/team/app:1.1',
      repository: 'team/app',
      tag: '1.1',
      digest: null,
      registries: [
        { container_registry_id: ids.mirror, container_registry_name: 'mirror', status: 'healthy', origin: null, match: 'inventory', repository: 'team/app', pull_reference: `${at.mirror}/team/app:1.1`, held: true, observed_at: observed('mirror'), truncated: false, tags: [row('team/app', '1.1', digests.B!, MEDIA.ociManifest)] },
        { container_registry_id: ids.origin, container_registry_name: 'origin', status: 'healthy', origin: null, match: 'inventory', repository: 'team/app', pull_reference: `${at.origin}/team/app:1.1`, held: true, observed_at: observed('origin'), truncated: false, tags: [row('team/app', '1.1', digests.C!, MEDIA.ociManifest)] },
      ],
    });
  });

  test('When a name with its host is asked, then the registries serving it are listed: those holding it with their tags, those unknown with held null; one known not to hold it is left out', async () => {
    const r = await call(svc.url, 'GET', `/images?name=${at.origin}/team/app`);
    expect(r.body.registries.map((h: any) => [h.container_registry_name, h.match, h.held, h.tags.map((t: any) => t.tag)])).toEqual([
      ['mirror', 'mirror', true, ['1.0', '1.1']],
      ['origin', 'prefix', true, ['1.0', '1.1', 'latest', 'only-origin']],
      ['unrefreshed', 'mirror', null, []],
      ['dead', 'mirror', null, []],
    ]);
    const only = await call(svc.url, 'GET', `/images?name=${at.origin}/team/app:only-origin`);
    expect(only.body.registries.map((h: any) => h.container_registry_name)).toEqual(['origin', 'unrefreshed', 'dead']);
    const byDigest = await call(svc.url, 'GET', `/images?name=${at.origin}/team/app@${digests.B}`);
    expect(byDigest.body.registries.filter((h: any) => h.held).map((h: any) => [h.container_registry_name, h.tags.map((t: any) => t.tag)])).toEqual([
      ['mirror', ['1.1']],
      ['origin', ['latest', 'only-origin']],
    ]);
  });

  test('When the name is missing or invalid, then it is a 400 naming it', async () => {
    expectProblem(await call(svc.url, 'GET', '/images'), 400, 'name');
    expectProblem(await call(svc.url, 'GET', '/images?name=Bad/Name'), 400, 'name');
    expectProblem(await call(svc.url, 'GET', '/images?name=a&extra=1'), 400, 'extra');
  });
});

describe('mirror drift in the catalog', () => {
  test('When the mirror drifts, then its entry says so, the metric counts it and a registry.mirror_drift event is delivered; when it catches up, all three say it ended', async () => {
    const drift = await eventually(async () => (await call(svc.url, 'GET', `/container_registry/${ids.mirror}`)).body.container_registry_storage_info.observed.mirror_drift);
    const item = { repository: 'team/app', tag: '1.1', origin_registry_id: ids.origin, origin_digest: digests.C, mirror_digest: digests.B };
    expect(drift).toEqual({ tags: 1, observed_at: expect.any(String), items: [item] });
    const metrics = (await call(svc.url, 'GET', '/metrics')).text;
    expect(metrics).toContain(`registry_db_mirror_drift_tags{registry_id="${ids.mirror}",registry_name="mirror"} 1`);
    expect(metrics).toContain(`registry_db_mirror_drift_tags{registry_id="${ids.unrefreshed}",registry_name="unrefreshed"} 0`);
    expect(metrics).not.toContain(`registry_db_mirror_drift_tags{registry_id="${ids.origin}"`);
    await rx.waitFor((x) => x.distinct().some((e) => e.body.type === 'registry.mirror_drift'));
    const event = rx.distinct().find((e) => e.body.type === 'registry.mirror_drift')!.body;
    expect(event.data).toMatchObject({ container_registry_id: ids.mirror, container_registry_name: 'mirror', repository: 'team/app', tag: '1.1', drift: { origin_registry_id: ids.origin, origin_digest: digests.C, mirror_digest: digests.B, observed_at: drift.observed_at } });
    expect(event.data.entry.container_registry_storage_info.observed.mirror_drift).toEqual(drift);

    // The mirror takes the origin's 1.1: the drift ends.
    await push(mirror, 'team/app', '1.1', C);
    expect((await refresh(ids.mirror!)).status).toBe(200);
    await eventually(async () => !(await call(svc.url, 'GET', `/container_registry/${ids.mirror}`)).body.container_registry_storage_info.observed.mirror_drift);
    await rx.waitFor((x) => x.distinct().some((e) => e.body.type === 'registry.mirror_drift' && e.body.data.drift === null));
    const ended = rx.distinct().filter((e) => e.body.type === 'registry.mirror_drift');
    expect(ended.map((e) => [e.body.data.tag, e.body.data.drift === null])).toEqual([
      ['1.1', false],
      ['1.1', true],
    ]);
    expect((await call(svc.url, 'GET', '/metrics')).text).toContain(`registry_db_mirror_drift_tags{registry_id="${ids.mirror}",registry_name="mirror"} 0`);
    expect(rx.rejected).toEqual([]);
  });
});

describe('one refresh at a time, replicas, deletes', () => {
  let slow: Server;
  let catalogRequests = 0;
  let release: () => void = () => undefined;

  beforeAll(async () => {
    // A registry whose catalog answers only when the test lets it.
    slow = createServer((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200, { 'Docker-Distribution-API-Version': 'registry/2.0', 'Content-Type': 'application/json' }).end('{}');
      if (req.url?.startsWith('/v2/_catalog')) {
        catalogRequests++;
        release = () => {
          if (!res.headersSent) res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"repositories":[]}');
        };
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', () => r()));
  });
  afterAll(async () => {
    release();
    slow.closeAllConnections();
    await new Promise((r) => slow.close(r));
  });

  test('When a refresh of an entry is running, then another one, here or on another replica, answers 202 without crawling again, and the first one answers when done', async () => {
    const id = await create('slow', `http://127.0.0.1:${(slow.address() as AddressInfo).port}`);
    const replica = await startTestService({}, { dbName: svc.db.databaseName });
    const first = refresh(id, 60);
    try {
      await eventually(async () => catalogRequests === 1);
      const second = await refresh(id, 0);
      expect(second.status).toBe(202);
      expect(second.body).toEqual({ container_registry_id: id, status: 'running' });
      const elsewhere = await call(replica.url, 'POST', `/container_registry/${id}/refresh_storage?wait=0`);
      expect(elsewhere.status).toBe(202);
      expect(elsewhere.headers.get('location')).toBe(`/container_registry/${id}/inventory`);
      // The replica's refresher itself finds the turn taken (a crawl of its own would wait on the slow catalog).
      expect((await replica.parts.health.refresher.refresh(await replica.parts.registries.get(id))).kind).toBe('busy');
      expect(catalogRequests).toBe(1);
    } finally {
      await replica.close({ keepDatabase: true });
    }
    release();
    const done = await first;
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: 'refreshed', observed: { catalog_supported: true, repository_count: 0, tag_count: 0 }, inventory: { repository_count: 0, tag_count: 0, truncated: false } });
    expect(catalogRequests).toBe(1);
  });

  test("When a peer's entry is refreshed, then it is a 409 naming the peer; its inventory is not here; /images lists it as unknown", async () => {
    const peer = await startTestService();
    try {
      const r = await call(peer.url, 'POST', '/container_registry', entry({ container_registry_name: 'peer-origin', container_registry_public_url: origin.url }));
      expect(r.status).toBe(201);
      const local = await startTestService({ PEERS: `p=${peer.url}` });
      try {
        const mirrored = `p:${r.body.container_registry_id}`;
        await eventually(async () => (await call(local.url, 'GET', `/container_registry/${mirrored}`)).status === 200);
        expectProblem(await call(local.url, 'POST', `/container_registry/${mirrored}/refresh_storage`), 409, '/container_registry_origin/peer');
        expect((await call(local.url, 'GET', `/container_registry/${mirrored}/inventory`)).body).toEqual({ container_registry_id: mirrored, observed_at: null, truncated: false, repository_count: 0, tag_count: 0, items: [] });
        const images = await call(local.url, 'GET', `/images?name=${at.origin}/team/app:1.1`);
        expect(images.body.registries).toEqual([expect.objectContaining({ container_registry_id: mirrored, origin: 'p', held: null, observed_at: null, tags: [] })]);
      } finally {
        await local.close();
      }
    } finally {
      await peer.close();
    }
  });

  test('When another replica of the catalog reads after a refresh here, then its /resolve knows the inventory too (through the feed)', async () => {
    const replica = await startTestService({}, { dbName: svc.db.databaseName });
    try {
      await loaded(replica, 'origin');
      const r = await call(replica.url, 'GET', `/resolve?image=${at.origin}/team/app:1.0`);
      expect(r.body.candidates.find((c: any) => c.container_registry_name === 'origin')).toMatchObject({ present: true, digest: digests.A, source: 'inventory' });
    } finally {
      await replica.close({ keepDatabase: true });
    }
  });

  test('When an entry is deleted, then its inventory is removed from the database and from memory', async () => {
    const states = svc.db.collection('container_registry_inventory_states');
    const chunks = svc.db.collection('container_registry_inventory');
    expect(await states.findOne({ _id: ids.locked } as never)).not.toBeNull();
    expect(await chunks.countDocuments({ registry_id: ids.locked })).toBeGreaterThan(0);
    expect((await call(svc.url, 'DELETE', `/container_registry/${ids.locked}`)).status).toBe(204);
    await eventually(async () => (await states.findOne({ _id: ids.locked } as never)) === null && (await chunks.countDocuments({ registry_id: ids.locked })) === 0);
    expect(svc.parts.inventory.index.inventoryOf(ids.locked!)).toBeUndefined();
  });
});
