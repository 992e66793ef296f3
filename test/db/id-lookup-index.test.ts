/**
 * Lookups by _id use an index on the test database server. On FerretDB v1 that index is not FerretDB's
 * own: tools/ferretdb adds one on the expression FerretDB pushes `_id` filters down to, within a second of a
 * collection's creation (without it every findOne/updateOne by _id scans the table): on SQLite an index on
 * that expression (idindex.go), on PostgreSQL a GIN index serving its containment test (pgidindex.go).
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
  // Enough rows that PostgreSQL's planner prefers an index to reading the table (it reads a tiny one whole).
  const count = 1000;
  await coll.insertMany(Array.from({ length: count }, (_, n) => ({ _id: `id-${n}`, n })));
  const ferret = 'ferretdbVersion' in (await db.admin().command({ buildInfo: 1 }));
  const indexed = (plan: string): boolean => {
    if (!ferret) return !plan.includes('COLLSCAN');
    // FerretDB answers with its backend's plan: SQLite's EXPLAIN QUERY PLAN (a list of lines) or PostgreSQL's EXPLAIN (JSON).
    const sqlite = /SEARCH \S+ USING INDEX \S+__id_pushdown \(<expr>=\?\)/;
    const postgres = /"Node Type":"Bitmap Index Scan"[^}]*"Index Name":"\w+_idgin"|"Index Name":"\w+_idgin"[^}]*"Node Type":"Bitmap Index Scan"/;
    return sqlite.test(plan) || postgres.test(plan);
  };
  let plan = '';
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
    plan = await planOf(db.databaseName, 'lookups', 'id-7');
    if (indexed(plan)) break;
  }
  expect({ plan, indexed: indexed(plan) }).toEqual({ plan, indexed: true });
  // The index changes the plan, never the answer.
  expect(await coll.findOne({ _id: 'id-7' })).toEqual({ _id: 'id-7', n: 7 });
  expect((await coll.updateOne({ _id: 'id-8' }, { $set: { n: 80 } })).modifiedCount).toBe(1);
  expect(await coll.findOne({ _id: 'id-8' })).toEqual({ _id: 'id-8', n: 80 });
  expect((await coll.deleteOne({ _id: 'id-9' })).deletedCount).toBe(1);
  expect(await coll.countDocuments()).toBe(count - 1);
  await db.dropDatabase();
}, 30_000);
