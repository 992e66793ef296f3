/**
 * GET /container_registry/:id served from the replica's in-memory view (docs/queries.md, the watch-cache rule),
 * against the real service over HTTP on its own test database: another writer's change that the feed has read
 * is answered before the collection holds it; min_revision waits (503 after 5 s, 400 for a revision never
 * written); X-Catalog-Revision; every write this replica acknowledged is visible at once; and a read that falls
 * back to the database never answers an entry older than the state the feed holds.
 */
import { randomUUID } from 'node:crypto';
import { ChangeLog, revisionId } from '../../src/db/changelog';
import type { StoredRegistry } from '../../src/registries/model';
import { unacknowledgedWrites } from '../../src/registries/writes';
import { entry } from '../support/entries';
import { call, expectProblem, startTestService, withReplicas, type TestService } from '../support/service';

let svc: TestService;

beforeAll(async () => {
  svc = await startTestService();
});
afterAll(async () => {
  await svc?.close();
});

const log = (on = svc) => new ChangeLog<StoredRegistry>(on.db, { name: 'catalog_changes' });
const entries = (on = svc) => on.db.collection<StoredRegistry>('container_registries');

async function create(): Promise<{ id: string; revision: number }> {
  const r = await call(svc.url, 'POST', '/container_registry', entry());
  expect(r.status).toBe(201);
  return { id: r.body.container_registry_id, revision: r.body.revision };
}

/**
 * Another replica's change of entry `id` as it is between its two steps: in the change log (right after the
 * head, so this replica's feed reads it), not yet in the collection. Resolves once the feed has read it.
 */
async function changedElsewhere(id: string, description: string, on = svc): Promise<number> {
  const feed = on.parts.feed;
  expect(await feed.waitFor(feed.acked, 3000)).toBe(true);
  const doc = (await entries(on).findOne({ _id: id }))!;
  const r = feed.view.revision + 1;
  const next = { ...doc, container_registry_metadata: { note: description }, version: doc.version + 1, revision: r };
  await log(on).records.insertOne({ _id: revisionId(r), r, key: id, prev: doc.revision as number, op: 'upsert', doc: next, at: new Date(), w: 'elsewhere' });
  expect(await feed.waitFor(r, 5000)).toBe(true);
  return r;
}

test('When another writer has logged a change the collection does not hold yet, then GET answers it from the view, with its ETag and the revision it includes', async () => {
  const x = await create();
  const r = await changedElsewhere(x.id, 'changed on another replica');
  expect((await entries().findOne({ _id: x.id }))!.container_registry_metadata).not.toEqual({ note: 'changed on another replica' });
  const got = await call(svc.url, 'GET', `/container_registry/${x.id}`);
  expect(got.status).toBe(200);
  expect(got.body).toMatchObject({ container_registry_id: x.id, container_registry_metadata: { note: 'changed on another replica' }, revision: r, version: 2 });
  expect(got.headers.get('etag')).toBe('"2"');
  expect(Number(got.headers.get('x-catalog-revision'))).toBeGreaterThanOrEqual(r);
  expect(got.body).not.toHaveProperty('_name_key');
});

test('When GET falls back to the database (the feed has not read every acknowledged write in time), then it still never answers a state older than the one the feed holds', async () => {
  const x = await create();
  await changedElsewhere(x.id, 'newer than the collection');
  const feed = svc.parts.feed;
  const acked = feed.acked;
  // A write this replica acknowledged that its feed cannot have read: the view may not answer on its own.
  feed.acked = feed.view.revision + 1_000_000;
  try {
    const got = await call(svc.url, 'GET', `/container_registry/${x.id}`);
    expect(got.status).toBe(200);
    expect(got.body.container_registry_metadata).toEqual({ note: 'newer than the collection' });
    expect(got.headers.get('x-catalog-revision')).toBeNull();
  } finally {
    feed.acked = acked;
  }
});

test('When GET asks min_revision, then it answers once the view reached it, 503 after 5 s when it is logged but not reached, 400 when never written or not a number', async () => {
  const x = await create();
  const feed = svc.parts.feed;
  expect(await feed.waitFor(feed.acked, 3000)).toBe(true);
  const now = feed.view.revision;
  const ok = await call(svc.url, 'GET', `/container_registry/${x.id}?min_revision=${now}`);
  expect(ok.status).toBe(200);
  expect(Number(ok.headers.get('x-catalog-revision'))).toBeGreaterThanOrEqual(now);
  // A revision logged far ahead (behind a run of holes this replica fills in rounds, well after 5 s).
  const ahead = now + 1000;
  const doc = (await entries().findOne({ _id: x.id }))!;
  await log().records.insertOne({ _id: revisionId(ahead), r: ahead, key: randomUUID(), prev: 0, op: 'upsert', doc: { ...doc, revision: ahead }, at: new Date(), w: 'elsewhere' });
  const started = Date.now();
  const late = await call(svc.url, 'GET', `/container_registry/${x.id}?min_revision=${ahead}`);
  expect(late.status).toBe(503);
  expect(late.headers.get('content-type')).toContain('application/problem+json');
  expect(Date.now() - started).toBeGreaterThanOrEqual(4500);
  expectProblem(await call(svc.url, 'GET', `/container_registry/${x.id}?min_revision=${ahead + 100_000}`), 400, 'min_revision');
  expectProblem(await call(svc.url, 'GET', `/container_registry/${x.id}?min_revision=soon`), 400, 'min_revision');
});

// Found by a test of names on a replica reading others' writes every 10 s: its tail, having found nothing at
// the head, did not look there again for half the poll interval, so a min_revision of another replica's write
// waited 5 s and answered 503 although the revision was in the log.
test('When a replica that reads other replicas\' writes rarely is asked min_revision of one, then it reads it at once', async () => {
  await withReplicas([{}, { FEED_POLL_MS: '10000' }], async ([a, b]) => {
    for (let i = 0; i < 3; i++) {
      const made = await call(a.url, 'POST', '/container_registry', entry());
      expect(made.status).toBe(201);
      const started = Date.now();
      const read = await call(b.url, 'GET', `/container_registry/${made.body.container_registry_id}?min_revision=${made.body.revision}`);
      expect(read.status).toBe(200);
      expect(read.body.container_registry_id).toBe(made.body.container_registry_id);
      // Well below the 5 s a min_revision waits at most (and the 10 s between polls).
      expect(Date.now() - started).toBeLessThan(4000);
    }
  });
});

// Found by `npm run robustness`: a query answered from the database said X-Catalog-Revision 203 and showed an
// entry at 201; the writer of 203 had lost the database between the log and the collection.
test('When a query is answered from the database, then its X-Catalog-Revision stays below a change the collection does not hold yet', async () => {
  const own = await startTestService();
  try {
    const made = await call(own.url, 'POST', '/container_registry', entry());
    expect(made.status).toBe(201);
    // Another replica's change of the entry, in the log only: its writer died between its two steps.
    const r = await changedElsewhere(made.body.container_registry_id, 'logged only', own);
    // The view stops hearing from the database (as when it is cut off): queries go to the database.
    await own.parts.feed.stop();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const q = await call(own.url, 'POST', '/container_registries', { container_registry_name: made.body.container_registry_name });
    expect(q.status).toBe(200);
    expect(q.body.map((e: StoredRegistry) => e.revision)).toEqual([made.body.revision]);
    const claimed = Number(q.headers.get('x-catalog-revision'));
    expect(claimed).toBeLessThan(r);
    // This replica's own acknowledged write is in the collection: the answer still includes it.
    expect(claimed).toBeGreaterThanOrEqual(made.body.revision);
  } finally {
    await own.close();
  }
});

test('When a client writes and then reads the same instance, then the read always shows the write (updates and deletes included)', async () => {
  const misses: string[] = [];
  for (let i = 0; i < 15; i++) {
    const x = await create();
    if ((await call(svc.url, 'GET', `/container_registry/${x.id}`)).status !== 200) misses.push(`create ${i}`);
    const u = await call(svc.url, 'PUT', `/container_registry/${x.id}`, { $set: { 'container_registry_metadata.owner': `o${i}` } });
    expect(u.status).toBe(200);
    const got = await call(svc.url, 'GET', `/container_registry/${x.id}`);
    if (got.body.version !== u.body.version || got.headers.get('etag') !== `"${u.body.version}"`) misses.push(`update ${i}: ${got.body.version} != ${u.body.version}`);
    expect((await call(svc.url, 'DELETE', `/container_registry/${x.id}`, undefined, { 'If-Match': `"${u.body.version}"` })).status).toBe(204);
    if ((await call(svc.url, 'GET', `/container_registry/${x.id}`)).status !== 404) misses.push(`delete ${i}`);
  }
  expect(misses).toEqual([]);
});

test('When an entry is absent from the view, then the 404 says as of which revision (X-Catalog-Revision), as the answers found in it do', async () => {
  const x = await create();
  expect((await call(svc.url, 'DELETE', `/container_registry/${x.id}`)).status).toBe(204);
  const gone = await call(svc.url, 'GET', `/container_registry/${x.id}`);
  expectProblem(gone, 404);
  expect(Number(gone.headers.get('x-catalog-revision'))).toBeGreaterThan(x.revision);
  const never = await call(svc.url, 'GET', `/container_registry/${randomUUID()}`);
  expectProblem(never, 404);
  expect(Number(never.headers.get('x-catalog-revision'))).toBeGreaterThan(x.revision);
});

test('When a sweep writes results nobody was told of yet, then reads do not wait for each of them; once the sweep ends, its writes count as acknowledged', async () => {
  const x = await create();
  const feed = svc.parts.feed;
  const writer = svc.parts.repository.writer;
  const before = feed.acked;
  let during = 0;
  let written = 0;
  await unacknowledgedWrites(async () => {
    await writer.modify(x.id, (doc) => ({ kind: 'replace', next: { ...doc!, container_registry_metadata: { note: 'probe result' } }, result: undefined }));
    written = (await entries().findOne({ _id: x.id }))!.revision as number;
    during = feed.acked;
  });
  expect(written).toBeGreaterThan(before);
  expect(during).toBe(before);
  expect(feed.acked).toBeGreaterThanOrEqual(written);
  const got = await call(svc.url, 'GET', `/container_registry/${x.id}`);
  expect(got.body.container_registry_metadata).toEqual({ note: 'probe result' });
});
