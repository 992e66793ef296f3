/**
 * The change log's allocator when writers race (src/db/changelog.ts), on the run's database server: two
 * processes' logs (two ChangeLog objects, each its own writer id) that have not seen each other's records.
 */
import { MongoClient, type Db } from 'mongodb';
import { ChangeConflict, ChangeLog } from '../../src/db/changelog';
import { testDbName } from '../support/service';

let client: MongoClient;
let db: Db;
beforeAll(async () => {
  client = new MongoClient(process.env.TEST_MONGODB_URI!);
  await client.connect();
  db = client.db(testDbName());
});
afterAll(async () => {
  await db.dropDatabase();
  await client.close();
});

test('When two writers append the change after the same state at the same revision, then the loser learns of the conflict at once and uses up no revision (no fill in the log)', async () => {
  const a = new ChangeLog(db, { name: 'race_changes' });
  const b = new ChangeLog(db, { name: 'race_changes' });
  await a.ensureIndexes();
  expect(await a.append({ key: 'k', prev: 0, op: 'upsert', doc: { v: 'a' } })).toBe(1);
  // b has seen nothing: it tries revision 1 too, where a's change after (k, 0) is.
  await expect(b.append({ key: 'k', prev: 0, op: 'upsert', doc: { v: 'b' } })).rejects.toBeInstanceOf(ChangeConflict);
  expect((await a.records.find({}, { projection: { _id: 0, r: 1, key: 1, op: 1 } }).sort({ r: 1 }).toArray())).toEqual([{ r: 1, key: 'k', op: 'upsert' }]);
  // Re-planned on the state it lost to, b's change follows at the next revision.
  expect(await b.append({ key: 'k', prev: 1, op: 'upsert', doc: { v: 'b' } })).toBe(2);
});
