/**
 * Names are unique per origin (SPEC 15): the unique index is on `_name_key` (`<peer>/<name>`, `/<name>` for
 * local entries), stamped by the entry writer on every write. A database written before it (a unique index
 * on the name alone, entries without the key) is migrated at start-up. Real database of the test server.
 */
import { MongoClient } from 'mongodb';
import { ConflictError } from '../../src/errors';
import { RegistryRepository } from '../../src/registries/repository';
import type { StoredRegistry } from '../../src/registries/model';
import { testDbName } from '../support/service';

let client: MongoClient;
beforeAll(async () => {
  client = new MongoClient(process.env.TEST_MONGODB_URI!);
  await client.connect();
});
afterAll(() => client.close());

function doc(id: string, name: string, peer?: string): StoredRegistry {
  const now = new Date().toISOString();
  return {
    _id: id,
    container_registry_name: name,
    container_registry_public_url: 'http://127.0.0.1:5999',
    container_registry_health: { status: 'unknown', consecutive_failures: 0 },
    created_at: now,
    updated_at: now,
    version: 1,
    ...(peer ? { container_registry_origin: { peer, url: 'http://127.0.0.1:1', revision: 1, synced_at: now, stale: false } } : {}),
  } as StoredRegistry;
}

test('When a database with the old unique name index is opened, then entries get their name key, the old index goes, and a name is unique per origin only', async () => {
  const db = client.db(testDbName());
  const coll = db.collection<StoredRegistry>('container_registries');
  await coll.createIndex({ container_registry_name: 1 }, { name: 'name_unique', unique: true });
  await coll.insertMany([doc('11111111-1111-4111-8111-111111111111', 'alpha'), doc('22222222-2222-4222-8222-222222222222', 'beta')]);

  const repo = new RegistryRepository(db, 5000);
  await repo.ensureIndexes();
  await repo.writer.log.init();
  const indexes = (await coll.listIndexes().toArray()).map((i) => i.name);
  expect(indexes).toContain('name_key_unique');
  expect(indexes).not.toContain('name_unique');
  expect((await coll.find({}).sort({ _id: 1 }).toArray()).map((d) => d._name_key)).toEqual(['/alpha', '/beta']);

  // A peer's entry may share a local name; two entries of one origin may not.
  const mirrored = await repo.writer.create(doc('eu:11111111-1111-4111-8111-111111111111', 'alpha', 'eu'));
  expect(mirrored._name_key).toBe('eu/alpha');
  await expect(repo.writer.create(doc('33333333-3333-4333-8333-333333333333', 'alpha'))).rejects.toBeInstanceOf(ConflictError);
  await expect(repo.writer.create(doc('eu:44444444-4444-4444-8444-444444444444', 'alpha', 'eu'))).rejects.toBeInstanceOf(ConflictError);
  expect(await repo.findByName('alpha')).toMatchObject({ _id: '11111111-1111-4111-8111-111111111111' });
  // A rename keeps the key in step: the old name is free again for local entries.
  await repo.writer.modify('22222222-2222-4222-8222-222222222222', (cur) => ({ kind: 'replace', next: { ...cur!, container_registry_name: 'gamma' }, result: undefined }));
  expect((await coll.findOne({ _id: '22222222-2222-4222-8222-222222222222' }))?._name_key).toBe('/gamma');
  await expect(repo.writer.create(doc('55555555-5555-4555-8555-555555555555', 'beta'))).resolves.toMatchObject({ _name_key: '/beta' });
  // Starting again changes nothing.
  await repo.ensureIndexes();
  expect(await coll.countDocuments()).toBe(4);
});
