/**
 * The change log's allocator when writers race (src/db/changelog.ts), on the run's database server: two
 * processes' logs (two ChangeLog objects, each its own writer id) that have not seen each other's records.
 */
import { MongoClient } from 'mongodb';
import { ChangeConflict, ChangeLog, LogTail } from '../../src/db/changelog';
import { useTestDatabase } from '../support/database';

const database = useTestDatabase();

test('When two writers append the change after the same state at the same revision, then the loser learns of the conflict at once and uses up no revision (no fill in the log)', async () => {
  const a = new ChangeLog(database.db, { name: 'race_changes' });
  const b = new ChangeLog(database.db, { name: 'race_changes' });
  await a.ensureIndexes();
  expect(await a.append({ key: 'k', prev: 0, op: 'upsert', doc: { v: 'a' } })).toBe(1);
  // b has seen nothing: it tries revision 1 too, where a's change after (k, 0) is.
  await expect(b.append({ key: 'k', prev: 0, op: 'upsert', doc: { v: 'b' } })).rejects.toBeInstanceOf(ChangeConflict);
  expect((await a.records.find({}, { projection: { _id: 0, r: 1, key: 1, op: 1 } }).sort({ r: 1 }).toArray())).toEqual([{ r: 1, key: 'k', op: 'upsert' }]);
  // Re-planned on the state it lost to, b's change follows at the next revision.
  expect(await b.append({ key: 'k', prev: 1, op: 'upsert', doc: { v: 'b' } })).toBe(2);
});

test('When a process follows the log while it writes, then it takes its own records from memory, reads the head no more than its interval allows, and still hands out every change of another process in order', async () => {
  const monitored = new MongoClient(process.env.TEST_MONGODB_URI!, { monitorCommands: true });
  await monitored.connect();
  try {
    // Holes wait a minute here: the tail's looks beyond a gap (every holeFillMs / 2) stay out of the count.
    const mine = new ChangeLog(monitored.db(database.db.databaseName), { name: 'own_changes', holeFillMs: 60_000 });
    const other = new ChangeLog(database.db, { name: 'own_changes' });
    await mine.ensureIndexes();
    let reads = 0;
    monitored.on('commandStarted', (ev) => {
      if (ev.commandName === 'find' && ev.command.find === 'own_changes') reads++;
    });
    // A tail that reads above the head at most every minute: within this test, once.
    const tail = new LogTail(mine, 0, 60_000);
    const seen: Array<{ r: number; key: string }> = [];
    const follow = async () => seen.push(...(await tail.poll()).map((rec) => ({ r: rec.r, key: rec.key })));
    await follow();
    const readsAtStart = reads;
    for (let i = 0; i < 50; i++) {
      await mine.append({ key: `mine-${i}`, prev: 0, op: 'upsert', doc: { i } });
      await follow();
    }
    // 50 own writes, each followed by a poll: no record read back, no read above the head (the last was just now).
    expect(reads - readsAtStart).toBe(0);
    expect(seen.map((s) => s.key)).toEqual(Array.from({ length: 50 }, (_, i) => `mine-${i}`));

    // Another process's change lands between two of ours: the tail reads it, since a later revision is known.
    mine.observe(seen.at(-1)!.r);
    other.observe(seen.at(-1)!.r);
    const theirs = await other.append({ key: 'theirs', prev: 0, op: 'upsert', doc: {} });
    mine.observe(theirs);
    const next = await mine.append({ key: 'mine-after', prev: 0, op: 'upsert', doc: {} });
    await follow();
    expect(seen.slice(-2)).toEqual([
      { r: theirs, key: 'theirs' },
      { r: next, key: 'mine-after' },
    ]);
  } finally {
    await monitored.close();
  }
});
