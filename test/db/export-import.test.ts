/**
 * `npm run db:export` / `npm run db:import` (src/db/dump.ts through src/bin/db.ts, as processes) against
 * real databases: databases of their own on the run's server (MONGODB_URI), and the embedded default of
 * a DATA_DIR. Every collection is compared document by document, exactly as stored.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BSON, Double, Int32, Long, MongoClient, ObjectId, type Db } from 'mongodb';
import { ownedCollections } from '../../src/db/dump';
import { cliEnv, contents, runDbCli } from '../support/db-cli';
import { entry } from '../support/entries';
import { call, startTestService, testDbName } from '../support/service';

const uri = process.env.TEST_MONGODB_URI!;
let client: MongoClient;
let tmp: string;
const dropLater: string[] = [];

beforeAll(async () => {
  client = new MongoClient(uri);
  await client.connect();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-dump-'));
});
afterAll(async () => {
  for (const name of dropLater) await client.db(name).dropDatabase().catch(() => undefined);
  await client.close();
  rmSync(tmp, { recursive: true, force: true });
});

function newDb(): Db {
  const name = testDbName();
  dropLater.push(name);
  return client.db(name);
}

// With MONGODB_URI a CREDENTIALS_KEY is given, as every replica needs one (the commands themselves never open credentials).
const atDb = (db: Db, more: Record<string, string> = {}) => cliEnv({ MONGODB_URI: uri, MONGODB_DB: db.databaseName, CREDENTIALS_KEY: randomBytes(32).toString('base64'), ...more });

test('When a catalog is exported from one database and imported into another, then every collection, document (types, sealed credentials) and index is the same; a second import is refused; --force replaces', async () => {
  const key = randomBytes(32).toString('base64');
  // Rate limits off: the service then writes nothing in the background while the export reads.
  const svc = await startTestService({ CREDENTIALS_KEY: key, RATE_LIMIT_MAX: '0', PROBE_RATE_LIMIT_MAX: '0' });
  const src = svc.db;
  dropLater.push(src.databaseName);
  try {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const body = entry(i < 2 ? { container_registry_credentials: { username: `user${i}`, password: `pw-secret-${i}-xyz` } } : {});
      const res = await call(svc.url, 'POST', '/container_registry', body);
      expect(res.status).toBe(201);
      ids.push(res.body.container_registry_id);
    }
    // A check of a closed loopback port writes health history and a report.
    expect((await call(svc.url, 'GET', `/check_container_health/${ids[0]}`)).status).toBe(200);
    // Collections the service will own later (a change log, peers) are exported without a change to the exporter.
    await src.collection('change_log').insertMany([
      { _id: new ObjectId(), seq: new Int32(1), at: new Date('2026-01-02T03:04:05.678Z'), big: Long.fromString('9007199254740993'), ratio: new Double(5), raw: new BSON.Binary(Buffer.from([0, 1, 2, 255])), nested: { a: [1, 'two', null, { b: true }] } },
      { _id: new ObjectId(), seq: new Int32(2), at: new Date(0), big: Long.fromNumber(-1), ratio: new Double(0.5), note: 'ünïcödé "quoted" \n newline' },
    ]);
    await src.collection('change_log').createIndex({ seq: 1 }, { unique: true, name: 'seq_unique' });
    await src.createCollection('peers');
    await src.collection('peers').createIndex({ url: 1 }, { name: 'peers_url' });
    // The service's change feed keeps a hint of the log's head up to date in the background: stop it, so the
    // database holds still while it is snapshotted, exported and compared.
    await svc.parts.feed.stop();
    const before = await contents(src, { withoutEpoch: true });
    expect(Object.keys(before)).toEqual(expect.arrayContaining(['container_registries', 'container_registry_health_history', 'change_log', 'peers']));
    expect(before.container_registries!.count).toBe(5);
    expect(before.container_registry_health_history!.count).toBeGreaterThan(0);

    const file = path.join(tmp, 'catalog.ejsonl');
    const exported = await runDbCli(['export', file], atDb(src));
    expect(exported.stderr).not.toMatch(/error/i);
    expect(exported.code).toBe(0);
    expect(exported.stdout).toMatch(/^container_registries: 5$/m);
    expect(exported.stdout).toMatch(/^change_log: 2$/m);
    expect(exported.stdout).toMatch(/^peers: 0$/m);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('password_enc');
    expect(text).not.toContain('pw-secret');

    const dst = newDb();
    const imported = await runDbCli(['import', file], atDb(dst));
    expect(imported.stderr).not.toMatch(/error/i);
    expect(imported.code).toBe(0);
    expect(imported.stdout).toContain('counts verified');
    expect(await contents(dst, { withoutEpoch: true })).toEqual(before);
    // The imported change log is another history for followers of the source: it has a new epoch.
    const epochOf = async (db: Db) => (await db.collection('catalog_changes_meta').findOne({ _id: 'epoch' as never }))?.epoch as string | undefined;
    const sourceEpoch = await epochOf(src);
    expect(sourceEpoch).toEqual(expect.any(String));
    expect(await epochOf(dst)).toEqual(expect.any(String));
    expect(await epochOf(dst)).not.toBe(sourceEpoch);

    // Into a non-empty catalog: refused, nothing changes.
    const again = await runDbCli(['import', file], atDb(dst));
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/not empty.*container_registries: 5.*--force/s);
    expect(await contents(dst, { withoutEpoch: true })).toEqual(before);

    // --force replaces the file's collections: a stray entry goes, nothing is doubled.
    await dst.collection('container_registries').insertOne({ _id: 'stray' as never, container_registry_name: 'stray' });
    const forced = await runDbCli(['import', file, '--force'], atDb(dst));
    expect(forced.code).toBe(0);
    expect(await contents(dst, { withoutEpoch: true })).toEqual(before);

    // The service reads the imported catalog with the source's key: sealed credentials still open.
    const svc2 = await startTestService({ CREDENTIALS_KEY: key, RATE_LIMIT_MAX: '0', PROBE_RATE_LIMIT_MAX: '0' }, { dbName: dst.databaseName });
    try {
      const got = await call(svc2.url, 'GET', `/container_registry/${ids[0]}`);
      expect(got.status).toBe(200);
      expect(got.body.container_registry_credentials).toEqual({ username: 'user0', password_set: true });
      const opened = svc2.parts.cipher.open((await dst.collection('container_registries').findOne({ _id: ids[0] as never }))!.container_registry_credentials);
      expect(opened.password).toBe('pw-secret-0-xyz');
    } finally {
      await svc2.close();
    }
  } finally {
    await svc.close();
  }
}, 180_000);

test('When an import meets a truncated or foreign file, then it changes nothing and says which line is wrong', async () => {
  const src = newDb();
  await src.collection('container_registries').insertMany([{ _id: 'a' as never }, { _id: 'b' as never }]);
  const file = path.join(tmp, 'small.ejsonl');
  expect((await runDbCli(['export', file], atDb(src))).code).toBe(0);
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  const truncated = path.join(tmp, 'truncated.ejsonl');
  writeFileSync(truncated, lines.slice(0, -2).join('\n') + '\n');
  const dst = newDb();
  const r1 = await runDbCli(['import', truncated], atDb(dst));
  expect(r1.code).not.toBe(0);
  expect(r1.stderr).toMatch(/truncated\.ejsonl, line \d+: .*(end-of-export|never ends|end line)/);
  const foreign = path.join(tmp, 'foreign.ejsonl');
  writeFileSync(foreign, '{"_id": 1}\n');
  const r2 = await runDbCli(['import', foreign], atDb(dst));
  expect(r2.code).not.toBe(0);
  expect(r2.stderr).toMatch(/line 1: not a registry-db export/);
  expect(await ownedCollections(dst)).toEqual([]);
}, 60_000);

test('When the database is the embedded default of a DATA_DIR, then import starts it (pinning the DATA_DIR) and export reads back the same documents', async () => {
  const src = newDb();
  await src.collection('samples').insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: `id-${i}` as never, n: new Int32(i), at: new Date(i * 1000) })));
  await src.collection('reports').insertOne({ _id: new ObjectId(), total: Long.fromNumber(3) });
  const file = path.join(tmp, 'to-embedded.ejsonl');
  expect((await runDbCli(['export', file], atDb(src))).code).toBe(0);

  const dataDir = path.join(tmp, 'embedded-data');
  const imported = await runDbCli(['import', file], cliEnv({ DATA_DIR: dataDir }));
  expect(imported.code).toBe(0);
  const pinned = JSON.parse(readFileSync(path.join(dataDir, 'backend.json'), 'utf8')).backend;
  expect(imported.stderr).toContain(pinned === 'ferretdb' ? 'embedded FerretDB' : 'embedded mongod');
  const back = path.join(tmp, 'from-embedded.ejsonl');
  const exported = await runDbCli(['export', back], cliEnv({ DATA_DIR: dataDir }));
  expect(exported.code).toBe(0);
  expect(exported.stderr).toContain(`pinned by ${path.join(dataDir, 'backend.json')}`);
  const docLines = (f: string) => readFileSync(f, 'utf8').split('\n').filter((l) => l.startsWith('{')).sort();
  expect(docLines(back)).toEqual(docLines(file));
  expect(docLines(back)).toHaveLength(51);
}, 120_000);

test('When 20,000 entries are exported and imported, then both stream: peak memory stays far below the size of the data', async () => {
  const src = newDb();
  const coll = src.collection('container_registries');
  const filler = 'x'.repeat(3000);
  for (let b = 0; b < 20; b++) {
    await coll.insertMany(
      Array.from({ length: 1000 }, (_, i) => ({
        _id: `reg-${b}-${i}` as never,
        container_registry_name: `registry-${b}-${i}`,
        container_registry_public_url: `http://10.0.${b}.${i % 250}:5000`,
        container_registry_tags: ['ai', 'internal', `batch-${b}`],
        container_registry_metadata: { owner: 'bench', note: filler },
        // Entries as stored before the change log (no revision): the import takes them, the service logs them at start.
        container_registry_health: { status: 'unknown', consecutive_failures: 0 },
        created_at: new Date().toISOString(),
        updated_at: new Date().toISOString(),
        version: 1,
      })),
    );
  }
  // A small heap, as in a memory-limited container: an export or import holding the 20,000 documents at once dies
  // here (measured: the export with the documents collected first aborts, out of heap); a streamed one runs.
  const nodeFlags = ['--max-old-space-size=64', '--max-semi-space-size=1'];
  // The same command on an empty database: the baseline of a node process with the driver loaded.
  const empty = newDb();
  const baseline = await runDbCli(['export', path.join(tmp, 'empty.ejsonl')], atDb(empty), { nodeFlags });
  expect(baseline.code).toBe(0);

  const file = path.join(tmp, 'big.ejsonl');
  const exported = await runDbCli(['export', file], atDb(src), { nodeFlags, timeoutMs: 300_000 });
  expect(exported.code).toBe(0);
  expect(exported.stdout).toMatch(/^container_registries: 20000$/m);
  const dst = newDb();
  const imported = await runDbCli(['import', file], atDb(dst), { nodeFlags, timeoutMs: 300_000 });
  expect(imported.code).toBe(0);
  expect(imported.stdout).toMatch(/^container_registries: 20000$/m);
  expect(await dst.collection('container_registries').countDocuments({})).toBe(20000);

  const fileMb = statSync(file).size / 2 ** 20;
  const mb = (kb: number) => kb / 1024;
  const figures = { file_mb: fileMb, baseline_rss_mb: mb(baseline.peakRssKb), export_rss_mb: mb(exported.peakRssKb), import_rss_mb: mb(imported.peakRssKb) };
  process.stderr.write(`[export-import 20,000 entries] ${JSON.stringify(figures)}\n`);
  expect(fileMb).toBeGreaterThan(50);
  // Loose bound on the peak resident memory above the baseline: less than the data (measured: export +20 MB,
  // import +30 MB for a 63 MB file; the 64 MB heap cap above is what a non-streamed version runs into).
  expect(mb(exported.peakRssKb) - mb(baseline.peakRssKb)).toBeLessThan(fileMb);
  expect(mb(imported.peakRssKb) - mb(baseline.peakRssKb)).toBeLessThan(fileMb);
}, 600_000);
