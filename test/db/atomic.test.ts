/**
 * The write primitives of src/db/atomic.ts on a real database server, where concurrency bugs show: FerretDB
 * runs an upsert as a find and then an insert, so processes creating one document at once collide.
 */
import type { Collection } from 'mongodb';
import { isDuplicateKey, upsertShared } from '../../src/db/atomic';
import { useTestDatabase } from '../support/database';

const database = useTestDatabase();

interface Mark {
  _id: string;
  r: number;
}

const ROUNDS = 20;
const RACERS = 8;

/** Runs `write(collection, id, r)` for r = 1..RACERS at once on a new id, ROUNDS times; the errors and the documents left. */
async function race(write: (c: Collection<Mark>, id: string, r: number) => Promise<unknown>): Promise<{ errors: unknown[]; docs: Mark[] }> {
  const c = database.db.collection<Mark>(`race-${Math.random().toString(36).slice(2)}`);
  const errors: unknown[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const results = await Promise.allSettled(Array.from({ length: RACERS }, (_, i) => write(c, `id-${round}`, i + 1)));
    for (const x of results) if (x.status === 'rejected') errors.push(x.reason);
  }
  return { errors, docs: await c.find().toArray() };
}

test('When several processes upsert one new document at once, then none of them fails and one document is left with a value one of them wrote', async () => {
  const { errors, docs } = await race((c, id, r) => upsertShared(c, { _id: id, r: { $lt: r } }, { $set: { r } }));
  expect(errors).toEqual([]);
  expect(docs).toHaveLength(ROUNDS);
  for (const d of docs) expect(d.r).toBeGreaterThanOrEqual(1);
});

test('When a document holds a later value, then an upsert guarded by it leaves it as it is', async () => {
  const c = database.db.collection<Mark>('guarded');
  await upsertShared(c, { _id: 'x', r: { $lt: 9 } }, { $set: { r: 9 } });
  await upsertShared(c, { _id: 'x', r: { $lt: 4 } }, { $set: { r: 4 } });
  expect(await c.findOne({ _id: 'x' })).toEqual({ _id: 'x', r: 9 });
  await upsertShared(c, { _id: 'x', r: { $lt: 12 } }, { $set: { r: 12 } });
  expect(await c.findOne({ _id: 'x' })).toEqual({ _id: 'x', r: 12 });
});

test('When plain upserts race on one new document (what upsertShared replaces), then the database refuses some of them: the collision this primitive exists for is real here', async () => {
  const { errors } = await race((c, id, r) => c.updateOne({ _id: id }, { $set: { r } }, { upsert: true }));
  expect(errors.length).toBeGreaterThan(0);
  for (const e of errors) expect(isDuplicateKey(e)).toBe(true);
});
