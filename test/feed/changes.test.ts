/**
 * GET /container_registries/changes and the reads served from the view (SPEC 12 and 13), against the real
 * service over HTTP on the run's test database: JSON pages, long polls, filters, origin=local, Server-Sent
 * Events with bookmarks and Last-Event-ID resume, parameter validation, min_revision, read-your-writes,
 * roles, 410 past the retention, and compaction of superseded records.
 */
import { randomUUID } from 'node:crypto';
import { entry } from '../support/entries';
import { catalogFromDb, FeedCopy, openSse, type FeedChange, type SseEvent } from '../support/feed';
import { ChangeLog, revisionId } from '../../src/db/changelog';
import { VERIFY_AFTER_MS } from '../../src/feed/reader';
import { NAME_KEY, nameKey, type StoredRegistry } from '../../src/registries/model';
import { call, startTestService, testDbName, type TestService } from '../support/service';

let svc: TestService;
const extra: TestService[] = [];

beforeAll(async () => {
  svc = await startTestService({ FEED_BOOKMARK_S: '1' });
});
afterAll(async () => {
  await Promise.all(extra.map((s) => s.close()));
  await svc?.close();
});

async function create(base: string, overrides: Record<string, unknown> = {}): Promise<{ id: string; revision: number; version: number }> {
  const r = await call(base, 'POST', '/container_registry', entry(overrides));
  expect(r.status).toBe(201);
  return { id: r.body.container_registry_id, revision: r.body.revision, version: r.body.version };
}

async function update(base: string, id: string, body: unknown): Promise<{ revision: number; version: number }> {
  const r = await call(base, 'PUT', `/container_registry/${id}`, body);
  expect(r.status).toBe(200);
  return { revision: r.body.revision, version: r.body.version };
}

async function remove(base: string, id: string): Promise<void> {
  expect((await call(base, 'DELETE', `/container_registry/${id}`)).status).toBe(204);
}

async function changes(base: string, qs: string, headers: Record<string, string> = {}) {
  return call(base, 'GET', `/container_registries/changes${qs ? `?${qs}` : ''}`, undefined, headers);
}

const feedRevision = (s: TestService) => s.parts.feed.view.revision;
/** The revision once the view holds every write this instance acknowledged. */
async function settled(s: TestService): Promise<number> {
  expect(await s.parts.feed.waitFor(s.parts.feed.acked, 3000)).toBe(true);
  return feedRevision(s);
}
const ids = (cs: FeedChange[]) => cs.map((c) => `${c.type}:${c.container_registry_id}`);

/** Follows the JSON feed from `since` until it answers an empty page; applies everything to `copy`. */
async function drain(base: string, copy: FeedCopy, limit = 3, qs = ''): Promise<number> {
  let pages = 0;
  for (;;) {
    const r = await changes(base, `since=${copy.revision}&limit=${limit}${qs}`);
    expect(r.status).toBe(200);
    pages++;
    for (const c of r.body.changes as FeedChange[]) copy.apply(c);
    copy.reach(r.body.revision);
    if (r.body.changes.length === 0) return pages;
  }
}

function expectProblem(r: { status: number; headers: Headers; body: any }, status: number, path: string): void {
  expect({ status: r.status, type: r.headers.get('content-type') }).toEqual({ status, type: expect.stringContaining('application/problem+json') });
  expect(r.body.status).toBe(status);
  expect((r.body.errors ?? []).map((e: { path: string }) => e.path)).toContainEqual(expect.stringMatching(new RegExp(`^${path.replace(/[.$]/g, '\\$&')}`)));
}

describe('JSON pages', () => {
  test('When entries are created, updated and deleted, then since/limit pages give the changes in revision order, each entry once in its latest state, and the revision to continue from', async () => {
    await create(svc.url);
    const start = await settled(svc);
    expect(start).toBeGreaterThan(0);
    const a = await create(svc.url);
    const b = await create(svc.url);
    const c = await create(svc.url);
    const b2 = await update(svc.url, b.id, { $set: { 'container_registry_metadata.owner': 'feed-test' } });
    await remove(svc.url, a.id);
    const d = await create(svc.url);

    const all = await changes(svc.url, `since=${start}`);
    expect(all.status).toBe(200);
    expect(Number(all.headers.get('x-catalog-revision'))).toBeGreaterThanOrEqual(all.body.revision);
    const cs = all.body.changes as FeedChange[];
    // c, then b (collapsed into its update), then a's delete, then d.
    expect(ids(cs)).toEqual([`upsert:${c.id}`, `upsert:${b.id}`, `delete:${a.id}`, `upsert:${d.id}`]);
    expect(cs.map((x) => x.revision)).toEqual([...cs.map((x) => x.revision)].sort((x, y) => x - y));
    expect(new Set(cs.map((x) => x.revision)).size).toBe(cs.length);
    expect(cs[1]).toMatchObject({ revision: b2.revision, entry: { container_registry_id: b.id, version: b2.version, revision: b2.revision } });
    expect(cs[2]!.entry).toBeUndefined();
    expect(all.body.revision).toBe(d.revision);

    // Page by page with limit=1: the same changes, each page's revision is its last change's.
    const paged: FeedChange[] = [];
    let since = start;
    for (let i = 0; i < 10; i++) {
      const p = await changes(svc.url, `since=${since}&limit=1`);
      expect(p.status).toBe(200);
      if (p.body.changes.length === 0) {
        expect(p.body.revision).toBe(since);
        break;
      }
      expect(p.body.changes).toHaveLength(1);
      expect(p.body.revision).toBe(p.body.changes[0].revision);
      paged.push(...p.body.changes);
      since = p.body.revision;
    }
    expect(paged).toEqual(cs);

    // since=0 is a list: live entries only, no deletes.
    const list = await changes(svc.url, 'since=0&limit=5000');
    const listed = list.body.changes as FeedChange[];
    expect(listed.every((x) => x.type === 'upsert')).toBe(true);
    expect(listed.map((x) => x.container_registry_id)).toEqual(expect.arrayContaining([b.id, c.id, d.id]));
    expect(listed.map((x) => x.container_registry_id)).not.toContain(a.id);
  });

  test('When a consumer follows the feed in small pages from 0, then its copy equals the catalog in the database', async () => {
    for (let i = 0; i < 4; i++) await create(svc.url);
    const copy = new FeedCopy();
    await drain(svc.url, copy, 2);
    expect(copy.violations).toEqual([]);
    expect(copy.snapshot()).toEqual(await catalogFromDb(svc.db.collection('container_registries')));
  });
});

describe('long poll', () => {
  test('When a change comes while a consumer waits, then the long poll answers early with it', async () => {
    const since = feedRevision(svc);
    const started = Date.now();
    const poll = changes(svc.url, `since=${since}&wait=20`);
    await new Promise((r) => setTimeout(r, 300));
    const x = await create(svc.url);
    const r = await poll;
    expect(r.status).toBe(200);
    expect(ids(r.body.changes)).toEqual([`upsert:${x.id}`]);
    expect(r.body.revision).toBe(x.revision);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('When nothing changes, then the long poll answers an empty page with the current revision when the wait is over', async () => {
    const since = feedRevision(svc);
    const started = Date.now();
    const r = await changes(svc.url, `since=${since}&wait=1`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ revision: since, changes: [], epoch: svc.parts.feed.epoch });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });
});

describe('filter and origin', () => {
  test('When an entry stops matching a consumer\'s filter, then that consumer gets a delete for it, and others an upsert', async () => {
    const tag = `feedfilter-${randomUUID().slice(0, 6)}`;
    const filter = encodeURIComponent(JSON.stringify({ container_registry_tags: tag }));
    const since = feedRevision(svc);
    const inside = await create(svc.url, { container_registry_tags: [tag] });
    const outside = await create(svc.url);
    let r = await changes(svc.url, `since=${since}&filter=${filter}`);
    expect(r.status).toBe(200);
    // The view keeps each entry's latest state only, so an entry that changed after `since` and does not
    // match may come as a delete even if this consumer never held it (harmless: nothing to remove).
    expect(ids(r.body.changes).filter((x) => x !== `delete:${outside.id}`)).toEqual([`upsert:${inside.id}`]);
    const mark = r.body.revision;

    // A long poll with the filter is woken by the entry leaving it.
    const poll = changes(svc.url, `since=${mark}&wait=20&filter=${filter}`);
    await new Promise((res) => setTimeout(res, 200));
    const left = await update(svc.url, inside.id, { $set: { container_registry_tags: ['other'] } });
    r = await poll;
    expect(r.body.changes).toEqual([expect.objectContaining({ type: 'delete', container_registry_id: inside.id, revision: left.revision })]);
    expect(r.body.changes[0].entry).toBeUndefined();
    // Without the filter the same change is an upsert; the outside entry is there too.
    r = await changes(svc.url, `since=${since}`);
    expect(ids(r.body.changes)).toEqual([`upsert:${outside.id}`, `upsert:${inside.id}`]);
    // The filtered list (since=0) no longer holds it.
    r = await changes(svc.url, `since=0&limit=5000&filter=${filter}`);
    expect(r.body.changes).toEqual([]);
  });

  test('When the filter is invalid, then the answer is a 400 problem naming filter', async () => {
    for (const f of ['{"$where":"1"}', '{"container_registry_name":{"$regex":"(a)\\\\1"}}', '{"no_such_field":1}', 'not json', '[1]']) {
      const r = await changes(svc.url, `filter=${encodeURIComponent(f)}`);
      expectProblem(r, 400, 'filter');
    }
  });

  test('When an entry is mirrored from a peer, then origin=local leaves it out while the plain feed has it', async () => {
    const local = await create(svc.url);
    const since = local.revision - 1;
    const stored = await svc.db.collection('container_registries').findOne({ _id: local.id } as never);
    const mirrored = { ...stored!, _id: randomUUID(), container_registry_name: `mirror-${randomUUID().slice(0, 6)}`, container_registry_origin: { peer: 'peer-a', url: 'http://127.0.0.1:9', revision: 7, synced_at: new Date().toISOString(), stale: false } };
    delete (mirrored as Record<string, unknown>).revision;
    await svc.parts.repository.writer.create(mirrored as never);
    await svc.parts.feed.waitFor(svc.parts.feed.acked, 2000);
    const all = await changes(svc.url, `since=${since}`);
    expect(ids(all.body.changes)).toEqual([`upsert:${local.id}`, `upsert:${mirrored._id}`]);
    const localOnly = await changes(svc.url, `since=${since}&origin=local`);
    expect(ids(localOnly.body.changes)).toEqual([`upsert:${local.id}`]);
    const listed = await changes(svc.url, 'since=0&limit=5000&origin=local');
    expect(ids(listed.body.changes)).not.toContain(`upsert:${mirrored._id}`);
    // Its delete is not news to a local-only consumer either.
    const before = feedRevision(svc);
    await svc.parts.repository.writer.modify(mirrored._id as string, () => ({ kind: 'delete', result: undefined }));
    await svc.parts.feed.waitFor(svc.parts.feed.acked, 2000);
    expect((await changes(svc.url, `since=${before}&origin=local`)).body.changes).toEqual([]);
    expect(ids((await changes(svc.url, `since=${before}`)).body.changes)).toEqual([`delete:${mirrored._id}`]);
  });
});

describe('parameters', () => {
  test.each([
    ['since=-1', 'since'],
    ['since=abc', 'since'],
    ['since=1.5', 'since'],
    ['since=1&since=2', 'since'],
    ['limit=0', 'limit'],
    ['limit=5001', 'limit'],
    ['limit=x', 'limit'],
    ['wait=61', 'wait'],
    ['wait=-1', 'wait'],
    ['wait=soon', 'wait'],
    ['origin=remote', 'origin'],
    ['origin=', 'origin'],
    ['bogus=1', 'bogus'],
  ])('When the query is %s, then the answer is a 400 problem+json naming %s', async (qs, path) => {
    expectProblem(await changes(svc.url, qs), 400, path);
  });

  test('When since is beyond the latest revision, then the answer is a 400 naming since', async () => {
    const r = await changes(svc.url, `since=${feedRevision(svc) + 100_000}`);
    expectProblem(r, 400, 'since');
  });

  test('When since is the largest integer the message names (2^53 - 1), then it is taken as a position (beyond the catalog), and one above it is out of range', async () => {
    const max = await changes(svc.url, `since=${Number.MAX_SAFE_INTEGER}`);
    expectProblem(max, 400, 'since');
    expect(max.body.detail).toMatch(/beyond the catalog's latest revision/);
    for (const over of ['9007199254740992', '9007199254740993', '99999999999999999']) {
      const r = await changes(svc.url, `since=${over}`);
      expectProblem(r, 400, 'since');
      expect(r.body.detail).toBe(`since must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}.`);
    }
  });

  test('When Last-Event-ID is not a revision, then the stream is refused with a 400 naming it', async () => {
    const r = await changes(svc.url, '', { Accept: 'text/event-stream', 'Last-Event-ID': 'yesterday' });
    expectProblem(r, 400, 'Last-Event-ID');
  });
});

describe('reads from the view', () => {
  test('When the catalog is queried, then X-Catalog-Revision is the revision the answer includes', async () => {
    const x = await create(svc.url);
    const r = await call(svc.url, 'POST', '/container_registries?limit=1000', {});
    expect(r.status).toBe(200);
    expect(Number(r.headers.get('x-catalog-revision'))).toBeGreaterThanOrEqual(x.revision);
    expect(r.body.map((e: { container_registry_id: string }) => e.container_registry_id)).toContain(x.id);
  });

  test('When min_revision is reached, then the query answers; when it is in the log but not reached within 5 s, then 503; when no such revision exists, then 400', async () => {
    const own = await startTestService({}, { dbName: testDbName() });
    extra.push(own);
    await create(own.url);
    const now = await settled(own);
    const ok = await call(own.url, 'POST', `/container_registries?min_revision=${now}`, {});
    expect(ok.status).toBe(200);
    // A revision another writer logged far ahead (behind a long run of holes this replica fills in rounds).
    const ahead = now + 1000;
    const doc = (await own.db.collection<StoredRegistry>('container_registries').findOne({}))!;
    await new ChangeLog<StoredRegistry>(own.db, { name: 'catalog_changes' }).records.insertOne({ _id: revisionId(ahead), r: ahead, key: randomUUID(), prev: 0, op: 'upsert', doc: { ...doc, revision: ahead }, at: new Date(), w: 'elsewhere' });
    const started = Date.now();
    const late = await call(own.url, 'POST', `/container_registries?min_revision=${ahead}`, {});
    expect(late.status).toBe(503);
    expect(late.headers.get('content-type')).toContain('application/problem+json');
    expect(Date.now() - started).toBeGreaterThanOrEqual(4500);
    // A revision nobody wrote (found by the fuzzer: it waited 5 s and answered 503) is the client's mistake.
    expectProblem(await call(own.url, 'POST', `/container_registries?min_revision=${ahead + 100_000}`, {}), 400, 'min_revision');
    expectProblem(await call(own.url, 'POST', '/container_registries?min_revision=soon', {}), 400, 'min_revision');
  });

  test('When a client writes and then queries the same instance, then the answer always includes the write', async () => {
    const tag = `ryw-${randomUUID().slice(0, 6)}`;
    const misses: string[] = [];
    for (let i = 0; i < 20; i++) {
      const x = await create(svc.url, { container_registry_tags: [tag] });
      let r = await call(svc.url, 'POST', '/container_registries?limit=1000', { container_registry_tags: tag });
      if (!r.body.some((e: { container_registry_id: string }) => e.container_registry_id === x.id)) misses.push(`create ${i}`);
      const u = await update(svc.url, x.id, { $set: { 'container_registry_metadata.owner': `o${i}` } });
      r = await call(svc.url, 'POST', '/container_registries?limit=1000', { container_registry_tags: tag });
      const seen = r.body.find((e: { container_registry_id: string }) => e.container_registry_id === x.id);
      if (seen?.version !== u.version) misses.push(`update ${i}: version ${seen?.version} != ${u.version}`);
      if (i % 2 === 0) {
        await remove(svc.url, x.id);
        r = await call(svc.url, 'POST', '/container_registries?limit=1000', { container_registry_tags: tag });
        if (r.body.some((e: { container_registry_id: string }) => e.container_registry_id === x.id)) misses.push(`delete ${i}`);
      }
    }
    expect(misses).toEqual([]);
  });
});

describe('Server-Sent Events', () => {
  const changeOf = (e: SseEvent) => JSON.parse(e.data) as FeedChange;

  test('When a consumer streams from 0, then it gets the catalog as upsert events with ids, a bookmark, live events, and bookmarks every FEED_BOOKMARK_S', async () => {
    await create(svc.url);
    const head = await settled(svc);
    const s = await openSse(`${svc.url}/container_registries/changes?since=0`);
    try {
      expect(s.status).toBe(200);
      expect(s.headers.get('content-type')).toContain('text/event-stream');
      const first = await s.until((e) => e.event === 'bookmark');
      expect(JSON.parse(first.data)).toEqual({ revision: head });
      const caughtUp = s.events.slice(0, s.events.indexOf(first));
      expect(caughtUp.every((e) => e.event === 'upsert' && e.id === String(changeOf(e).revision))).toBe(true);
      const copy = new FeedCopy();
      for (const e of caughtUp) copy.apply(changeOf(e));
      expect(copy.snapshot()).toEqual(await catalogFromDb(svc.db.collection('container_registries')));

      const from = s.events.length;
      const x = await create(svc.url);
      const live = await s.until((e) => e.event === 'upsert', 5000, from);
      expect(live.id).toBe(String(x.revision));
      expect(changeOf(live)).toMatchObject({ type: 'upsert', container_registry_id: x.id, revision: x.revision });
      await remove(svc.url, x.id);
      const del = await s.until((e) => e.event === 'delete', 5000, from);
      expect(changeOf(del)).toMatchObject({ type: 'delete', container_registry_id: x.id });
      expect(Number(del.id)).toBeGreaterThan(x.revision);

      // Bookmarks keep coming while nothing changes, carrying the current revision as their id.
      const quiet = s.events.length;
      const b1 = await s.until((e) => e.event === 'bookmark', 3000, quiet);
      const b2 = await s.until((e) => e.event === 'bookmark', 3000, s.events.indexOf(b1) + 1);
      for (const b of [b1, b2]) expect(b.id).toBe(String(JSON.parse(b.data).revision));
      expect(Number(b2.id)).toBe(feedRevision(svc));
    } finally {
      s.abort();
    }
  });

  test('When a stream is dropped and resumed with Last-Event-ID, then the consumer gets exactly the changes it missed', async () => {
    const keep = await create(svc.url);
    const gone = await create(svc.url);
    const s = await openSse(`${svc.url}/container_registries/changes?since=${feedRevision(svc)}`);
    await s.until((e) => e.event === 'bookmark');
    const seen = await create(svc.url);
    const lastSeen = await s.until((e) => e.id === String(seen.revision), 5000);
    s.abort();
    await s.ended;

    const added = await create(svc.url);
    await update(svc.url, keep.id, { $set: { 'container_registry_metadata.owner': 'resumed' } });
    await remove(svc.url, gone.id);
    const expected = (await changes(svc.url, `since=${lastSeen.id}`)).body.changes as FeedChange[];
    expect(ids(expected)).toEqual([`upsert:${added.id}`, `upsert:${keep.id}`, `delete:${gone.id}`]);

    // The resume position comes from Last-Event-ID (since in the URL is the older one the client started with).
    const r = await openSse(`${svc.url}/container_registries/changes?since=0`, { 'Last-Event-ID': lastSeen.id! });
    try {
      const bm = await r.until((e) => e.event === 'bookmark');
      const got = r.events.slice(0, r.events.indexOf(bm));
      expect(got.map((e) => e.id)).toEqual(expected.map((c) => String(c.revision)));
      expect(got.map(changeOf)).toEqual(expected);
    } finally {
      r.abort();
    }
  });
});

describe('roles', () => {
  test('When API keys are configured, then the feed needs a key (401 without one) and a reader key is enough, for JSON and SSE', async () => {
    const readerKey = `reader-${randomUUID()}`;
    const keyed = await startTestService({ API_KEYS: `reader:${readerKey},admin:admin-${randomUUID()}` });
    extra.push(keyed);
    const none = await changes(keyed.url, 'since=0');
    expect(none.status).toBe(401);
    expect(none.headers.get('content-type')).toContain('application/problem+json');
    expect((await changes(keyed.url, 'since=0', { Authorization: 'Bearer wrong-key-0123456789' })).status).toBe(401);
    expect((await changes(keyed.url, 'since=0', { Authorization: `Bearer ${readerKey}` })).status).toBe(200);
    const noKeyStream = await changes(keyed.url, 'since=0', { Accept: 'text/event-stream' });
    expect(noKeyStream.status).toBe(401);
    const s = await openSse(`${keyed.url}/container_registries/changes?since=0`, { Authorization: `Bearer ${readerKey}` });
    try {
      expect(s.status).toBe(200);
      await s.until((e) => e.event === 'bookmark');
    } finally {
      s.abort();
    }
  });
});

describe('retention and compaction', () => {
  test('When tombstones expire, then a since below the retained revision is a 410 revision-expired problem carrying the revision, and since=0 still lists', async () => {
    const own = await startTestService();
    extra.push(own);
    const a = await create(own.url);
    const b = await create(own.url);
    const before = feedRevision(own);
    await remove(own.url, a.id);
    expect((await changes(own.url, `since=${before}`)).status).toBe(200);
    await own.parts.feed.waitFor(own.parts.feed.acked, 2000);

    const done = await own.parts.feed.compact(new Date(Date.now() + 200 * 3600e3));
    expect(done.expired).toBe(1);
    const retained = own.parts.feed.view.retained;
    expect(retained).toBeGreaterThan(before);

    const r = await changes(own.url, `since=${before}`);
    expect(r.status).toBe(410);
    expect(r.headers.get('content-type')).toContain('application/problem+json');
    expect(r.body.type).toMatch(/\/revision-expired$/);
    expect(r.body.revision).toBe(feedRevision(own));
    // The stream refuses the same position the same way.
    const sse = await changes(own.url, '', { Accept: 'text/event-stream', 'Last-Event-ID': String(before) });
    expect(sse.status).toBe(410);

    const list = await changes(own.url, 'since=0');
    expect(list.status).toBe(200);
    expect(ids(list.body.changes)).toEqual([`upsert:${b.id}`]);
    expect((await changes(own.url, `since=${retained}`)).status).toBe(200);

    // A replica started afterwards knows the boundary too.
    const later = await startTestService({}, { dbName: own.db.databaseName });
    extra.push(later);
    expect((await changes(later.url, `since=${before}`)).status).toBe(410);
    expect(ids((await changes(later.url, 'since=0')).body.changes)).toEqual([`upsert:${b.id}`]);
  });

  test('When superseded records are compacted, then the log keeps one record per live entry plus tombstones, and a consumer continuing from an old revision and a replica started afterwards both end with exactly the catalog', async () => {
    const dbName = testDbName();
    const own = await startTestService({ FEED_COMPACT_AFTER_S: '10' }, { dbName });
    extra.push(own);
    const made = [];
    for (let i = 0; i < 6; i++) made.push(await create(own.url));
    // An old consumer that has read the creates only.
    const old = new FeedCopy();
    await drain(own.url, old, 2);
    for (const [i, x] of made.entries()) for (let k = 0; k <= i % 3; k++) await update(own.url, x.id, { $set: { 'container_registry_metadata.owner': `o${k}` } });
    await remove(own.url, made[0]!.id);
    await remove(own.url, made[1]!.id);
    await own.parts.feed.waitFor(own.parts.feed.acked, 2000);
    const recordsBefore = await own.db.collection('catalog_changes').countDocuments();

    const done = await own.parts.feed.compact(new Date(Date.now() + 3600e3));
    const recordsAfter = await own.db.collection('catalog_changes').countDocuments();
    const catalog = await catalogFromDb(own.db.collection('container_registries'));
    expect(Object.keys(catalog)).toHaveLength(4);
    expect(done.compacted).toBe(recordsBefore - recordsAfter);
    expect(recordsAfter).toBe(4 + 2);

    // The old consumer continues from where it stopped.
    await drain(own.url, old, 2);
    expect(old.violations).toEqual([]);
    expect(old.snapshot()).toEqual(catalog);

    // A replica started after the compaction loads the same catalog, lists it and follows new writes.
    const later = await startTestService({ FEED_COMPACT_AFTER_S: '10' }, { dbName });
    extra.push(later);
    const fresh = new FeedCopy();
    await drain(later.url, fresh, 2);
    expect(fresh.violations).toEqual([]);
    expect(fresh.snapshot()).toEqual(catalog);
    const x = await create(own.url);
    await later.parts.feed.waitFor(x.revision, 3000);
    await drain(later.url, fresh, 2);
    await drain(own.url, old, 2);
    const after = await catalogFromDb(own.db.collection('container_registries'));
    expect(fresh.snapshot()).toEqual(after);
    expect(old.snapshot()).toEqual(after);
  });
});

describe('a writer that dies between the log and the collection', () => {
  test('When another process logged changes and died before writing the collection, then a replica following the feed and a replica started afterwards both bring the collection to the log, and never over a later write', async () => {
    const dbName = testDbName();
    const own = await startTestService({}, { dbName });
    extra.push(own);
    const [a, b, c] = [await create(own.url), await create(own.url), await create(own.url)];
    const entries = own.db.collection<StoredRegistry>('container_registries');
    const stored = async (id: string) => (await entries.findOne({ _id: id }))!;
    // The dead process: its own log handle (its own writer id), three changes appended, nothing materialized.
    const dead = new ChangeLog<StoredRegistry>(own.db, { name: 'catalog_changes' });
    const named = (doc: StoredRegistry) => ({ ...doc, [NAME_KEY]: nameKey(doc) }) as StoredRegistry;
    const aNext = named({ ...(await stored(a.id)), version: a.version + 1, container_registry_name: `renamed-${a.id.slice(0, 8)}` });
    const ra = await dead.append({ key: a.id, prev: a.revision, op: 'upsert', doc: aNext });
    const rb = await dead.append({ key: b.id, prev: b.revision, op: 'delete' });
    const newId = randomUUID();
    const created = named({ ...(await stored(c.id)), _id: newId, container_registry_id: newId, container_registry_name: `orphan-${newId.slice(0, 8)}`, version: 1 } as StoredRegistry);
    const rn = await dead.append({ key: newId, prev: 0, op: 'upsert', doc: created });
    expect(await own.parts.feed.waitFor(rn, 3000)).toBe(true);

    // The feed has the changes; the collection does not (what the check must repair).
    expect((await stored(a.id)).revision).toBe(a.revision);
    expect(await entries.countDocuments({ _id: { $in: [b.id, newId] } } as never)).toBe(1);
    // Too young: a live writer may still be writing them.
    expect(await own.parts.feed.verify()).toBe(0);

    // A replica started now checks the newest changes of the log.
    const later = await startTestService({}, { dbName });
    extra.push(later);
    expect(await later.parts.feed.verify(Date.now() + VERIFY_AFTER_MS)).toBe(3);
    expect(await stored(a.id)).toMatchObject({ revision: ra, version: a.version + 1, container_registry_name: aNext.container_registry_name });
    expect(await entries.findOne({ _id: b.id } as never)).toBeNull();
    expect((await own.db.collection('container_registry_tombstones').findOne({ _id: b.id } as never))?.revision).toBe(rb);
    expect((await stored(newId)).revision).toBe(rn);
    // The replica that was running finds nothing left to do, and the entries go on normally.
    expect(await own.parts.feed.verify(Date.now() + VERIFY_AFTER_MS)).toBe(0);
    const u = await update(own.url, a.id, { $set: { 'container_registry_metadata.owner': 'after' } });
    expect(u.revision).toBeGreaterThan(ra);
    expect((await call(own.url, 'GET', `/container_registry/${b.id}`)).status).toBe(404);
    expect(await catalogFromDb(entries)).toEqual(await catalogFromDb(later.db.collection('container_registries')));

    // A check whose view has not yet read a later delete (another replica's, a moment ago) does not bring the entry back.
    const gone = await create(own.url);
    const goneDoc = await stored(gone.id);
    await remove(own.url, gone.id);
    expect(await own.parts.repository.writer.materializeState(gone.id, gone.revision, goneDoc)).toBe(false);
    expect(await entries.findOne({ _id: gone.id } as never)).toBeNull();

    // A check that comes late never writes an older state over a later one.
    const d = await create(own.url);
    const rd = await dead.append({ key: d.id, prev: d.revision, op: 'upsert', doc: { ...(await stored(d.id)), version: d.version + 1 } });
    await own.parts.feed.waitFor(rd, 3000);
    const newer = await update(own.url, d.id, { $set: { 'container_registry_metadata.owner': 'newest' } });
    await own.parts.feed.waitFor(newer.revision, 3000);
    await own.parts.feed.verify(Date.now() + VERIFY_AFTER_MS);
    expect((await stored(d.id)).revision).toBe(newer.revision);
  });
});

describe('a writer that dies between the log and the collection: what clients are answered meanwhile', () => {
  // Found by `npm run robustness` (docs/robustness.md): a replica killed between a delete's log record and its
  // collection write; another replica answered a PUT 404 from its feed, then GETs and PUTs (a 412, a PUT that
  // changed nothing) answered the deleted entry from the collection for seconds: not linearizable.
  test('When a process logged a change and died before writing the collection, then reads and writes of the entry on a replica whose feed has the change answer from it, never from the older state the collection holds', async () => {
    const dbName = testDbName();
    const own = await startTestService({}, { dbName });
    extra.push(own);
    const entries = own.db.collection<StoredRegistry>('container_registries');
    const stored = async (id: string) => entries.findOne({ _id: id } as never);
    const dead = new ChangeLog<StoredRegistry>(own.db, { name: 'catalog_changes' });
    // Deleted by the dead process; updated by it (version 2).
    const x = await create(own.url, { container_registry_tags: ['a'] });
    const rx = await dead.append({ key: x.id, prev: x.revision, op: 'delete' });
    const y = await create(own.url, { container_registry_tags: ['a'] });
    const yDoc = (await stored(y.id))!;
    const ry = await dead.append({ key: y.id, prev: y.revision, op: 'upsert', doc: { ...yDoc, version: 2, container_registry_metadata: { owner: 'dead' } } });
    expect(await own.parts.feed.waitFor(Math.max(rx, ry), 3000)).toBe(true);
    // The collection still holds the older states (the feed's check repairs them only once they are 10 s old).
    expect(await stored(x.id)).not.toBeNull();
    expect((await stored(y.id))!.version).toBe(1);

    expect((await call(own.url, 'GET', `/container_registry/${x.id}`)).status).toBe(404);
    expect((await call(own.url, 'PUT', `/container_registry/${x.id}`, { $addToSet: { container_registry_tags: 'a' } })).status).toBe(404);
    expect((await call(own.url, 'PUT', `/container_registry/${x.id}`, { $addToSet: { container_registry_tags: 'b' } }, { 'If-Match': '"1"' })).status).toBe(404);
    const got = await call(own.url, 'GET', `/container_registry/${y.id}`);
    expect(got.body).toMatchObject({ version: 2, revision: ry, container_registry_metadata: { owner: 'dead' } });
    expect((await call(own.url, 'PUT', `/container_registry/${y.id}`, { $addToSet: { container_registry_tags: 'b' } }, { 'If-Match': '"1"' })).status).toBe(412);
    const same = await call(own.url, 'PUT', `/container_registry/${y.id}`, { $addToSet: { container_registry_tags: 'a' } });
    expect(same.body).toMatchObject({ version: 2, revision: ry });
    // And the collection now holds what was answered.
    expect(await stored(x.id)).toBeNull();
    expect(await stored(y.id)).toMatchObject({ version: 2, revision: ry });
  });

  // Found by `npm run robustness`: a create on a frozen replica (SIGSTOP) was written from the log by another
  // replica and updated there; when the frozen one went on, its insert met the later state and it answered 409
  // for a create that had happened.
  test('When a create is held up between the log and the collection while another replica writes it from the log and updates it, then the create is answered 201, not refused', async () => {
    const dbName = testDbName();
    const own = await startTestService({}, { dbName });
    extra.push(own);
    const writer = own.parts.repository.writer;
    const coll = writer.collection as unknown as { insertOne: (doc: StoredRegistry, opts?: unknown) => Promise<unknown> };
    const insertOne = coll.insertOne.bind(coll);
    let updated: { status: number } | undefined;
    coll.insertOne = async (doc, opts) => {
      coll.insertOne = insertOne;
      // This process is held up here; meanwhile the entry is written from the log and updated.
      await writer.materializeState(doc._id, doc.revision as number, doc);
      updated = await call(own.url, 'PUT', `/container_registry/${doc._id}`, { $set: { 'container_registry_metadata.owner': 'other' } });
      return insertOne(doc, opts);
    };
    const created = await call(own.url, 'POST', '/container_registry', entry());
    expect(updated?.status).toBe(200);
    expect(created.status).toBe(201);
    const id = created.body.container_registry_id as string;
    const got = await call(own.url, 'GET', `/container_registry/${id}`);
    expect(got.body).toMatchObject({ version: 2, container_registry_metadata: { owner: 'other' } });
    expect((await own.db.collection('catalog_changes').find({ key: id }).toArray()).map((r) => r.op)).toEqual(['upsert', 'upsert']);
  });

  // Found by `npm run robustness` (full run): a PUT that changed nothing answered the entry at the revision
  // another replica had just written; the same client's next query on that replica, served from a view a
  // moment behind, showed the entry older.
  test('When a replica answers an entry from the collection ahead of its view (a GET, a PUT that changes nothing), then its next query shows that state or a later one', async () => {
    const dbName = testDbName();
    // Holes are filled only after a minute: the view stays where it is, and fresh.
    const own = await startTestService({ FEED_HOLE_FILL_MS: '60000' }, { dbName });
    extra.push(own);
    const x = await create(own.url, { container_registry_tags: ['a'] });
    const at = await settled(own);
    // Another replica's write of x lands at at + 2 (at + 1 is a slower writer's, still missing) and in the collection.
    const entries = own.db.collection<StoredRegistry>('container_registries');
    const next = { ...(await entries.findOne({ _id: x.id } as never))!, version: x.version + 1, revision: at + 2, container_registry_metadata: { owner: 'other replica' } };
    const other = new ChangeLog<StoredRegistry>(own.db, { name: 'catalog_changes' });
    await other.records.insertOne({ _id: revisionId(at + 2), r: at + 2, key: x.id, prev: x.revision, op: 'upsert', doc: next, at: new Date(), w: 'other' });
    await entries.replaceOne({ _id: x.id } as never, next);
    await new Promise((r) => setTimeout(r, 300));
    expect(feedRevision(own)).toBe(at);

    const same = await call(own.url, 'PUT', `/container_registry/${x.id}`, { $addToSet: { container_registry_tags: 'a' } });
    expect(same.body).toMatchObject({ revision: at + 2, version: x.version + 1 });
    const q = await call(own.url, 'POST', '/container_registries', { container_registry_name: same.body.container_registry_name });
    expect(q.body.map((e: { revision: number }) => e.revision)).toEqual([at + 2]);
  });

  test('When a write loses its race to such a change, which the feed read after the write read the entry, and ends without writing (404), then the collection holds that change before the answer: other replicas never read the older state after it', async () => {
    const dbName = testDbName();
    const own = await startTestService({}, { dbName });
    extra.push(own);
    const x = await create(own.url);
    const dead = new ChangeLog<StoredRegistry>(own.db, { name: 'catalog_changes' });
    // The view is fed by hand from here: it reads the dead writer's delete just after the write below read the entry.
    await own.parts.feed.stop();
    const rx = await dead.append({ key: x.id, prev: x.revision, op: 'delete' });
    let fed = false;
    const write = own.parts.repository.writer.modify(x.id, (doc) => {
      if (!fed) own.parts.feed.view.apply({ revision: rx, id: x.id, op: 'delete', at: new Date() });
      fed = true;
      if (!doc) throw new Error('not found');
      return { kind: 'replace', next: { ...doc, version: doc.version + 1 }, result: 'written' };
    });
    await expect(write).rejects.toThrow('not found');
    expect(await own.db.collection('container_registries').findOne({ _id: x.id } as never)).toBeNull();
    expect((await own.db.collection('container_registry_tombstones').findOne({ _id: x.id } as never))?.revision).toBe(rx);
  });
});

describe('holes', () => {
  test('When writers left a run of holes (revisions taken and never written) below a later change, then the run is filled together and the feed moves on to the change', async () => {
    const dbName = testDbName();
    const own = await startTestService({}, { dbName });
    extra.push(own);
    const a = await create(own.url);
    const at = await settled(own);
    const doc = (await own.db.collection<StoredRegistry>('container_registries').findOne({ _id: a.id }))!;
    // A change 20 revisions on: the 19 between were allocated by writers that lost the database mid-append.
    const r = at + 20;
    const dead = new ChangeLog<StoredRegistry>(own.db, { name: 'catalog_changes' });
    await dead.records.insertOne({ _id: revisionId(r), r, key: a.id, prev: a.revision, op: 'upsert', doc: { ...doc, version: a.version + 1, revision: r }, at: new Date(), w: 'dead' });
    // One hole at a time would take 19 × FEED_HOLE_FILL_MS (38 s); together, about one.
    expect(await own.parts.feed.waitFor(r, 10_000)).toBe(true);
    expect(await own.db.collection('catalog_changes').countDocuments({ op: 'fill', r: { $gt: at, $lt: r } })).toBe(19);
    const page = await changes(own.url, `since=${at}`);
    expect(page.body.changes.map((c: FeedChange) => [c.container_registry_id, c.revision])).toEqual([[a.id, r]]);
  });
});
