/**
 * Lookups by _id use an index on the test database server. On FerretDB v1 (SQLite) that index is not
 * FerretDB's own: tools/ferretdb/idindex.go adds one on the expression FerretDB pushes `_id` filters down
 * to, within a second of a collection's creation (without it every findOne/updateOne by _id scans the table).
 */
import { MongoClient } from 'mongodb';
import { testDbName } from '../support/service';

let client: MongoClient;
beforeAll(async () => {
  client = new MongoClient(process.env.TEST_MONGODB_URI!);
  await client.connect();
});
afterAll(() => client.close());

/** SQLite's EXPLAIN QUERY PLAN answers from a connection's cached schema: a real read first refreshes it. */
async function planOf(dbName: string, coll: string, id: string): Promise<string> {
  await client.db(dbName).collection(coll).findOne({ _id: id as never });
  const explained = await client.db(dbName).command({ explain: { find: coll, filter: { _id: id } } });
  return JSON.stringify(explained.queryPlanner);
}

test('When a collection is created and filled, then a find by _id alone is served by an index, not a scan of the table', async () => {
  const db = client.db(testDbName());
  const coll = db.collection<{ _id: string; n: number }>('lookups');
  await coll.insertMany(Array.from({ length: 200 }, (_, n) => ({ _id: `id-${n}`, n })));
  const ferret = 'ferretdbVersion' in (await db.admin().command({ buildInfo: 1 }));
  let plan = '';
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
    plan = await planOf(db.databaseName, 'lookups', 'id-7');
    if (ferret ? /USING INDEX \S+__id_pushdown/.test(plan) : !plan.includes('COLLSCAN')) break;
  }
  if (ferret) expect(plan).toMatch(/SEARCH \S+ USING INDEX \S+__id_pushdown \(<expr>=\?\)/);
  else expect(plan).not.toContain('COLLSCAN');
  // The index changes the plan, never the answer.
  expect(await coll.findOne({ _id: 'id-7' })).toEqual({ _id: 'id-7', n: 7 });
  expect((await coll.updateOne({ _id: 'id-8' }, { $set: { n: 80 } })).modifiedCount).toBe(1);
  expect(await coll.findOne({ _id: 'id-8' })).toEqual({ _id: 'id-8', n: 80 });
  expect((await coll.deleteOne({ _id: 'id-9' })).deletedCount).toBe(1);
  expect(await coll.countDocuments()).toBe(199);
  await db.dropDatabase();
}, 30_000);
