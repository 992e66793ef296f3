/**
 * Concurrent updates never lose each other's changes: within one instance (queued per entry) and across
 * two instances on one database (version compare-and-set, re-read and re-apply). A write that cannot get its
 * turn within the write deadline (8 s from its arrival: a slow machine) is answered 503 "try again" with
 * Retry-After, having written nothing; the clients here retry it as the answer says, and every change is stored.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { LATE_WRITE_MS } from '../../src/registries/writes';
import { entry } from '../support/entries';
import { call, startTestService, withReplicas, type TestService } from '../support/service';

let a: TestService;
let b: TestService;
beforeAll(async () => {
  a = await startTestService();
  b = await startTestService({}, { dbName: a.db.databaseName });
});
afterAll(async () => {
  await b.close();
  await a.close();
});

/** PUT until it is not a 503 "try again" (waiting Retry-After each time; at most 10 tries). */
async function put(base: string, path: string, body: unknown): Promise<{ status: number; retried: number; revision: number }> {
  for (let retried = 0; ; retried++) {
    const r = await call(base, 'PUT', path, body);
    if (r.status !== 503 || retried === 9) return { status: r.status, retried, revision: r.body.revision as number };
    expect({ type: r.headers.get('content-type')?.split(';')[0], retryAfter: r.headers.get('retry-after') }).toEqual({ type: 'application/problem+json', retryAfter: '1' });
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

test('When 50 concurrent $addToSet requests add 50 different tags to one entry, then all 50 are stored', async () => {
  const created = await call(a.url, 'POST', '/container_registry', entry({ container_registry_tags: [] }));
  const path = `/container_registry/${created.body.container_registry_id}`;
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => put(i % 2 ? b.url : a.url, path, { $addToSet: { container_registry_tags: `tag-${i}` } })),
  );
  expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
  // Half were acknowledged by the other instance: a read names the latest revision it must include.
  const stored = await call(a.url, 'GET', `${path}?min_revision=${Math.max(...results.map((r) => r.revision))}`);
  expect([...stored.body.container_registry_tags].sort()).toEqual(Array.from({ length: 50 }, (_, i) => `tag-${i}`).sort());
  expect(stored.body.version).toBe(51);
});

test('When two instances update different fields of one entry at once, then both changes are kept', async () => {
  const created = await call(a.url, 'POST', '/container_registry', entry());
  const path = `/container_registry/${created.body.container_registry_id}`;
  const writes = Array.from({ length: 20 }, (_, i) =>
    put(i % 2 ? b.url : a.url, path, { $set: { [`container_registry_metadata.k${i}`]: i } }),
  );
  const done = await Promise.all(writes);
  expect(done.every((r) => r.status === 200)).toBe(true);
  const stored = await call(a.url, 'GET', `${path}?min_revision=${Math.max(...done.map((r) => r.revision))}`);
  for (let i = 0; i < 20; i++) expect(stored.body.container_registry_metadata[`k${i}`]).toBe(i);
});

// Found by `npm run robustness` on PostgreSQL (docs/robustness.md): a replica frozen between its check of the
// stored revision and its write of the collection (FerretDB v1 cannot put the condition in the write) wrote an
// older state over a later one, and its next write of the entry, a DELETE with the current If-Match, read that
// older state and answered 412. Here the write of instance a is held after its check until instance b has
// written a later state; a's feed reads others' writes every 10 s only, so nothing else corrects it meanwhile.
test('When a write reaches the collection long after its check and another instance wrote a later state meanwhile, then the collection holds the later state before the next write of the entry', async () => {
  await withReplicas([{ FEED_POLL_MS: '10000' }, {}], async ([a, b]) => {
    const created = await call(a.url, 'POST', '/container_registry', entry());
    expect(created.status).toBe(201);
    const id = created.body.container_registry_id as string;
    const path = `/container_registry/${id}`;
    const writer = a.parts.repository.writer;
    const bulkWrite = writer.collection.bulkWrite.bind(writer.collection);
    let entered!: () => void;
    const inWrite = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    writer.collection.bulkWrite = (async (...args: Parameters<typeof bulkWrite>) => {
      writer.collection.bulkWrite = bulkWrite;
      entered();
      await released;
      return bulkWrite(...args);
    }) as typeof bulkWrite;

    const first = call(a.url, 'PUT', path, { $set: { container_registry_metadata: { by: 'a' } } });
    await inWrite;
    const heldAt = Date.now();
    const second = await put(b.url, path, { $set: { container_registry_metadata: { by: 'b' } } });
    expect(second.status).toBe(200);
    await sleep(Math.max(0, LATE_WRITE_MS - (Date.now() - heldAt)) + 100);
    release();
    const firstDone = await first;
    expect(firstDone.status).toBe(200);
    expect(firstDone.body.revision).toBeLessThan(second.revision);

    const stored = await a.db.collection('container_registries').findOne({ _id: id as never });
    expect({ revision: stored?.revision, metadata: stored?.container_registry_metadata }).toEqual({ revision: second.revision, metadata: { by: 'b' } });
    expect((await call(a.url, 'DELETE', path, undefined, { 'If-Match': '"3"' })).status).toBe(204);
  });
});

