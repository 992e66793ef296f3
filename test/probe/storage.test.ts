/**
 * The storage crawl (SPEC sections 7 and 11) against real distribution 2.8 registries filled through the
 * registry API, and a loopback fake for OCI-style tag pagination. Expected figures are computed from the bytes
 * pushed: every manifest, config and layer digest once, foreign layers left out.
 */
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config';
import { createStorageCrawler, type ClosableStorageCrawler } from '../../src/probe/storage';
import type { InventoryRow, InventorySink } from '../../src/probe/types';
import { closeAllFakeServers, startFakeServer } from '../support/fake-servers';
import { loopingCatalogRegistry, manyBlobsRegistry, syntheticDigest, tagFloodRegistry } from '../support/hostile-registries';
import {
  content,
  ensureTestDeps,
  pushImage,
  pushIndex,
  pushManifest,
  startRegistry,
  stopAllRegistries,
  MEDIA,
  type Content,
  type RunningRegistry,
} from '../support/registries';

const LOOPBACK = { PROBE_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128' };
const crawlers: ClosableStorageCrawler[] = [];
function crawler(env: Record<string, string> = {}, pageSize?: number): ClosableStorageCrawler {
  const c = createStorageCrawler(loadConfig({ ...LOOPBACK, ...env }), { pageSize });
  crawlers.push(c);
  return c;
}

interface Expected {
  repositories: number;
  tags: number;
  usedBytes: number;
  /** The inventory rows the crawl must hand over, in (repository, tag) order. */
  rows: InventoryRow[];
}

/**
 * Pushes four repositories into `registry`: OCI images sharing a base layer (two tags on one manifest), a
 * Docker schema 2 image, an OCI index of two platform images, and a Docker image with a foreign layer.
 */
async function fill(registry: RunningRegistry): Promise<Expected> {
  const counted = new Map<string, number>();
  const count = (...items: Content[]): void => items.forEach((c) => counted.set(c.digest, c.size));
  const blob = (size: number): Content => content(randomBytes(size));
  const config = (name: string): Content => content(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' }, name, salt: randomBytes(4).toString('hex') }));
  const base = blob(3000);
  const lib = blob(2000);

  const web10 = await pushImage(registry, 'app/web', '1.0', { config: config('web-1.0'), layers: [base, lib, blob(1500)] });
  const web11 = await pushImage(registry, 'app/web', '1.1', { config: config('web-1.1'), layers: [base, lib, blob(1700)] });
  const latest = await pushManifest(registry, 'app/web', 'latest', MEDIA.ociManifest, web11.manifest.bytes);
  expect(latest.digest).toBe(web11.manifest.digest);
  const api = await pushImage(registry, 'app/api', 'v1', { config: config('api'), layers: [base, blob(1100)], format: 'docker' });
  const multi = await pushIndex(registry, 'multi', 'v1', [
    { config: config('multi-amd64'), layers: [base, blob(900)], platform: { os: 'linux', architecture: 'amd64' } },
    { config: config('multi-arm64'), layers: [base, blob(800)], platform: { os: 'linux', architecture: 'arm64' } },
  ]);
  const foreignLayer = { digest: blob(10).digest, size: 987_654, urls: ['http://127.0.0.1:9/never-fetched/layer.tar.gz'] };
  const foreign = await pushImage(registry, 'foreign', 'v1', { config: config('foreign'), layers: [base], format: 'docker', foreignLayers: [foreignLayer] });

  for (const image of [web10, web11, api, foreign, ...multi.images]) count(image.manifest, image.config, ...image.layers);
  count(multi.index);
  expect(counted.has(foreignLayer.digest)).toBe(false);
  const row = (repository: string, tag: string, digest: string, media_type: string, platforms: string[] | null = null): InventoryRow => ({ repository, tag, digest, media_type, platforms });
  const rows = [
    row('app/api', 'v1', api.manifest.digest, MEDIA.dockerManifest),
    row('app/web', '1.0', web10.manifest.digest, MEDIA.ociManifest),
    row('app/web', '1.1', web11.manifest.digest, MEDIA.ociManifest),
    row('app/web', 'latest', web11.manifest.digest, MEDIA.ociManifest),
    row('foreign', 'v1', foreign.manifest.digest, MEDIA.dockerManifest),
    row('multi', 'v1', multi.index.digest, MEDIA.ociIndex, ['linux/amd64', 'linux/arm64']),
  ];
  return { repositories: 4, tags: 3 + 1 + 1 + 1, usedBytes: [...counted.values()].reduce((a, b) => a + b, 0), rows };
}

let open: RunningRegistry;
let token: RunningRegistry;
let basic: RunningRegistry;
let expectedOpen: Expected;
let expectedToken: Expected;

beforeAll(async () => {
  ensureTestDeps();
  [open, token, basic] = await Promise.all([startRegistry(), startRegistry({ auth: 'token' }), startRegistry({ auth: 'htpasswd' })]);
  [expectedOpen, expectedToken] = await Promise.all([fill(open), fill(token), fill(basic)]);
}, 120_000);

afterAll(async () => {
  await Promise.all(crawlers.map((c) => c.close()));
  await stopAllRegistries();
  await closeAllFakeServers();
});

const target = (url: string, extra: object = {}) => ({ id: 'test', url, ...extra });

test('When images sharing layers are pushed into an open registry, then repository_count, tag_count and used_bytes are exactly what was pushed, each digest counted once', async () => {
  const observed = await crawler()(target(open.url));
  expect(observed).toMatchObject({
    catalog_supported: true,
    repository_count: expectedOpen.repositories,
    tag_count: expectedOpen.tags,
    used_bytes: expectedOpen.usedBytes,
    truncated: false,
    error: null,
    detail: null,
  });
  expect(Number.isNaN(Date.parse(observed.refreshed_at!))).toBe(false);
  expect(observed.duration_ms).toBeGreaterThanOrEqual(0);
});

/** A sink that keeps every batch it is handed. */
function collecting(): InventorySink & { batches: InventoryRow[][]; rows(): InventoryRow[] } {
  const batches: InventoryRow[][] = [];
  return { batches, add: async (rows) => void batches.push(rows), rows: () => batches.flat() };
}

test('When the crawl is given an inventory sink, then it hands over every tag in (repository, tag) order with its manifest digest, media type and an index\'s platforms, and counts the same', async () => {
  const sink = collecting();
  const observed = await crawler({ STORAGE_CONCURRENCY: '3' })(target(open.url), undefined, sink);
  expect(observed).toMatchObject({ repository_count: expectedOpen.repositories, tag_count: expectedOpen.tags, used_bytes: expectedOpen.usedBytes, truncated: false, error: null });
  expect(sink.rows()).toEqual(expectedOpen.rows);
});

test('When a bound stops the crawl before some manifests are read, then the tags listed so far are still handed over, those unread with digest null', async () => {
  const sink = collecting();
  const observed = await crawler({ STORAGE_MAX_MANIFESTS: '2', STORAGE_CONCURRENCY: '1' })(target(open.url), undefined, sink);
  expect(observed.truncated).toBe(true);
  const rows = sink.rows();
  // Repositories in order, one at a time: app/api:v1 and app/web:1.0 read; app/web's other tags listed but unread.
  expect(rows.slice(0, 2)).toEqual(expectedOpen.rows.slice(0, 2));
  expect(rows.slice(2)).toEqual([
    { repository: 'app/web', tag: '1.1', digest: null, media_type: null, platforms: null },
    { repository: 'app/web', tag: 'latest', digest: null, media_type: null, platforms: null },
  ]);
});

test('When the catalog page size is 1, then the crawler follows the Link pages and counts the same', async () => {
  const observed = await crawler({}, 1)(target(open.url));
  expect(observed).toMatchObject({ repository_count: expectedOpen.repositories, tag_count: expectedOpen.tags, used_bytes: expectedOpen.usedBytes, truncated: false });
});

test('When the registry uses token auth, then the crawl fetches one Bearer token per scope and counts everything', async () => {
  const server = token.tokenServer!;
  const before = server.requests.length;
  const observed = await crawler()(target(token.url, { credentials: token.credentials }));
  expect(observed).toMatchObject({ catalog_supported: true, repository_count: expectedToken.repositories, tag_count: expectedToken.tags, used_bytes: expectedToken.usedBytes, truncated: false, error: null });
  const scopes = server.requests.slice(before).map((r) => r.scopes.join(' '));
  expect(scopes.sort()).toEqual(['registry:catalog:*', 'repository:app/api:pull', 'repository:app/web:pull', 'repository:foreign:pull', 'repository:multi:pull']);
  expect(server.requests.slice(before).every((r) => r.authorized && r.service === server.service)).toBe(true);
});

test('When the htpasswd registry is crawled with its credentials, then Basic auth reads everything', async () => {
  const observed = await crawler()(target(basic.url, { credentials: basic.credentials }));
  expect(observed).toMatchObject({ catalog_supported: true, repository_count: 4, tag_count: 6, truncated: false, error: null });
});

test('When the catalog is refused (no credentials, or credentials the token service refuses), then catalog_supported is false and nothing else is reported', async () => {
  for (const observed of [
    await crawler()(target(basic.url)),
    await crawler()(target(token.url, { credentials: { username: 'prober', password: 'wrong' } })),
  ]) {
    expect(observed).toMatchObject({ catalog_supported: false, error: null });
    expect(observed).not.toHaveProperty('repository_count');
    expect(observed).not.toHaveProperty('used_bytes');
  }
});

test('When the registry answers 404 for /v2/_catalog, then catalog_supported is false', async () => {
  const noCatalog = await startFakeServer((_req, res) => {
    res.writeHead(404, { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0' }).end('{"errors":[{"code":"NOT_FOUND"}]}');
  });
  expect(await crawler()(target(noCatalog.url))).toMatchObject({ catalog_supported: false });
});

test('When the bounds are lower than the content, then the crawl stops and reports truncated', async () => {
  const repos = await crawler({ STORAGE_MAX_REPOSITORIES: '2' })(target(open.url));
  expect(repos).toMatchObject({ catalog_supported: true, repository_count: 2, truncated: true });
  expect(repos.used_bytes!).toBeLessThan(expectedOpen.usedBytes);

  const tags = await crawler({ STORAGE_MAX_TAGS: '2', STORAGE_CONCURRENCY: '1' })(target(open.url));
  expect(tags).toMatchObject({ tag_count: 2, truncated: true });

  const manifests = await crawler({ STORAGE_MAX_MANIFESTS: '1' })(target(open.url));
  expect(manifests).toMatchObject({ truncated: true });
  expect(manifests.used_bytes!).toBeLessThan(expectedOpen.usedBytes);

  const roomy = await crawler({ STORAGE_MAX_REPOSITORIES: '4', STORAGE_MAX_TAGS: '6', STORAGE_MAX_MANIFESTS: '9' })(target(open.url));
  expect(roomy).toMatchObject({ repository_count: 4, tag_count: 6, used_bytes: expectedOpen.usedBytes, truncated: false });
});

test('When the registry is down, then the crawl reports connection_refused and no counts', async () => {
  const gone = await startRegistry();
  await gone.stop();
  const observed = await crawler()(target(gone.url));
  expect(observed).toMatchObject({ error: 'connection_refused' });
  expect(observed).not.toHaveProperty('catalog_supported');
});

test('When tags are paginated OCI-style with relative Links under a path prefix, then every page is read', async () => {
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest: `sha256:${'a'.repeat(64)}`, size: 10 }, layers: [{ mediaType: MEDIA.ociLayer, digest: `sha256:${'b'.repeat(64)}`, size: 100 }] }));
  const allTags = ['a', 'b', 'c', 'd', 'e'];
  const oci = await startFakeServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (body: unknown, headers: Record<string, string> = {}) =>
      res.writeHead(200, { 'Content-Type': 'application/json', ...headers }).end(JSON.stringify(body));
    if (url.pathname === '/prefix/v2/_catalog') return json({ repositories: ['only/repo'] });
    if (url.pathname === '/prefix/v2/only/repo/tags/list') {
      const n = Number(url.searchParams.get('n'));
      const last = url.searchParams.get('last');
      const from = last ? allTags.indexOf(last) + 1 : 0;
      const page = allTags.slice(from, from + n);
      const more = from + n < allTags.length;
      return json({ name: 'only/repo', tags: page }, more ? { Link: `</v2/only/repo/tags/list?n=${n}&last=${page.at(-1)}>; rel="next"` } : {});
    }
    if (url.pathname.startsWith('/prefix/v2/only/repo/manifests/')) {
      res.writeHead(200, { 'Content-Type': MEDIA.ociManifest }).end(manifest);
      return;
    }
    res.writeHead(404).end();
  });
  const observed = await crawler({}, 2)(target(`${oci.url}/prefix`));
  expect(observed).toMatchObject({ catalog_supported: true, repository_count: 1, tag_count: 5, used_bytes: manifest.length + 10 + 100, truncated: false });
  expect(oci.requests.filter((r) => r.url.includes('/tags/list')).map((r) => r.url)).toEqual([
    '/prefix/v2/only/repo/tags/list?n=2',
    '/prefix/v2/only/repo/tags/list?n=2&last=b',
    '/prefix/v2/only/repo/tags/list?n=2&last=d',
  ]);
});

test('When the crawl runs out of time while a registry hangs on a manifest, then what was counted comes back with truncated', async () => {
  const slow = await startFakeServer((req, res) => {
    const json = (body: unknown) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    if (req.url?.startsWith('/v2/_catalog')) return json({ repositories: ['stuck'] });
    if (req.url?.startsWith('/v2/stuck/tags/list')) return json({ name: 'stuck', tags: ['forever'] });
    // manifests: never answered
  });
  const observed = await crawler({ STORAGE_TIMEOUT_MS: '1000' })(target(slow.url));
  expect(observed).toMatchObject({ catalog_supported: true, repository_count: 1, tag_count: 1, used_bytes: 0, truncated: true, error: null });
  expect(observed.detail).toMatch(/time limit/);
});

describe('When a registry is hostile', () => {
  test('with more distinct blobs than STORAGE_MAX_BLOBS, then the crawl stops reading manifests at the bound and reports truncated', async () => {
    const handler = manyBlobsRegistry({ tags: 50, layers: 2000, layerSize: 7 });
    const registry = await startFakeServer(handler);
    const observed = await crawler({ STORAGE_MAX_BLOBS: '5000' })(target(registry.url));
    // Two whole manifests (manifest, config, 2000 layers each), then the third up to the bound: 5000 digests.
    expect(observed).toMatchObject({ catalog_supported: true, repository_count: 1, tag_count: 50, truncated: true, error: null });
    const manifestBytes = (n: number) => Buffer.byteLength(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"${syntheticDigest(0, n)}","size":7},"layers":[${Array.from({ length: 2000 }, (_, i) => `{"digest":"${syntheticDigest(n + 1, i)}","size":7}`).join(',')}]}`);
    expect(observed.used_bytes).toBe(manifestBytes(0) + manifestBytes(1) + manifestBytes(2) + (5000 - 3) * 7);
    expect(handler.manifestsServed()).toBe(3);
  });

  test('with more digests than the process-wide digest memory, then concurrent crawls together stay within it, the ones it stops say so, and the memory is given back', async () => {
    // 50 manifests of 2000 layers: about 100,000 digests, about 4 MB of digest memory for one crawl.
    const registry = await startFakeServer(manyBlobsRegistry({ tags: 50, layers: 2000, layerSize: 7 }));
    const c = crawler({ STORAGE_DIGEST_MEMORY_MB: '6' });
    const results = await Promise.all([1, 2, 3].map(() => c(target(registry.url))));
    expect(c.digestMemory.peak).toBeLessThanOrEqual(6 * 1024 * 1024);
    expect(c.digestMemory.used).toBe(0);
    const stopped = results.filter((r) => r.truncated);
    expect(stopped.length).toBeGreaterThanOrEqual(1);
    for (const r of stopped) expect(r).toMatchObject({ catalog_supported: true, error: null, detail: expect.stringMatching(/STORAGE_DIGEST_MEMORY_MB/) });
    // Alone, the same crawl gets the memory it needs.
    const alone = await c(target(registry.url));
    expect(alone).toMatchObject({ truncated: false, tag_count: 50, error: null });
  });

  test('with tag pages that never end, then STORAGE_MAX_TAGS applies page by page and no page past the bound is read', async () => {
    const handler = tagFloodRegistry({ perPage: 100, length: 100 });
    const registry = await startFakeServer(handler);
    const observed = await crawler({ STORAGE_MAX_TAGS: '250', STORAGE_TIMEOUT_MS: '5000' })(target(registry.url));
    expect(observed).toMatchObject({ catalog_supported: true, repository_count: 1, tag_count: 250, truncated: true, error: null });
    expect(handler.pagesServed()).toBe(3);
  });

  test.each(['self', 'repeat-last'] as const)('with a catalog whose Link loops (%s), then the listing stops at the page that repeats', async (mode) => {
    const handler = loopingCatalogRegistry(mode);
    const registry = await startFakeServer(handler);
    const observed = await crawler({ STORAGE_TIMEOUT_MS: '3000' })(target(registry.url));
    expect(observed).toMatchObject({ catalog_supported: true, error: null });
    expect(handler.catalogRequests()).toBeLessThanOrEqual(2);
    expect(observed.repository_count).toBe(mode === 'self' ? 1 : 2);
  });
});
