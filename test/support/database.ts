/**
 * A database of its own on the run's database server (TEST_MONGODB_URI), for tests that drive a module of
 * src/db directly: connected before the file's tests, dropped after them.
 */
import { MongoClient, type Db } from 'mongodb';
import { testDbName } from './service';

export interface TestDatabase {
  readonly client: MongoClient;
  readonly db: Db;
}

/** Registers the file's beforeAll/afterAll; the returned object's fields are set once beforeAll has run. */
export function useTestDatabase(): TestDatabase {
  const it = {} as { client: MongoClient; db: Db };
  beforeAll(async () => {
    it.client = new MongoClient(process.env.TEST_MONGODB_URI!);
    await it.client.connect();
    it.db = it.client.db(testDbName());
  });
  afterAll(async () => {
    await it.db?.dropDatabase().catch(() => undefined);
    await it.client?.close();
  });
  return it;
}
