/**
 * The onboarding script (SPEC section 9), run as operators run it: the built CLI in a child process,
 * against a database of its own on the run's test server.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { entry } from './support/entries';
import { TEST_CREDENTIALS_KEY, testDbName } from './support/service';

const CLI = path.resolve(__dirname, '..', 'dist', 'src', 'seed', 'cli.js');
const dbName = testDbName();
let dir: string;
let client: MongoClient;

function seed(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, MONGODB_URI: process.env.TEST_MONGODB_URI, CREDENTIALS_KEY: TEST_CREDENTIALS_KEY, MONGODB_DB: dbName, DATA_DIR: dir, HEALTH_CRON: 'off', STORAGE_CRON: 'off' } },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
}

const count = () => client.db(dbName).collection('container_registries').countDocuments();

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'registry-db-seed-'));
  client = new MongoClient(process.env.TEST_MONGODB_URI!);
  await client.connect();
});
afterAll(async () => {
  await client.db(dbName).dropDatabase();
  await client.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('When a directory holds valid entries, an invalid one and a malformed file', () => {
  let entries: string;
  beforeAll(() => {
    entries = path.join(dir, 'entries');
    require('node:fs').mkdirSync(entries);
    writeFileSync(path.join(entries, '01-one.json'), JSON.stringify(entry({ container_registry_name: 'seed-one', container_registry_credentials: { username: 'u', password: 'seed-pw-1' } })));
    writeFileSync(path.join(entries, '02-many.json'), JSON.stringify([entry({ container_registry_name: 'seed-two' }), entry({ container_registry_name: 'seed-three' })]));
    writeFileSync(path.join(entries, '03-bad.json'), JSON.stringify(entry({ container_registry_name: 'seed-bad', container_registry_public_url: 'ftp://127.0.0.1', version: 4 })));
    writeFileSync(path.join(entries, '04-broken.json'), '{"container_registry_name": ');
    writeFileSync(path.join(entries, 'notes.txt'), 'not an entry');
  });

  test('then the valid ones are onboarded, the bad ones reported with reasons, and the exit code is non-zero', async () => {
    const r = await seed([entries]);
    expect({ code: r.code, stderr: r.stderr.split('\n').filter((l) => l.startsWith('seed:')) }).toEqual({ code: 1, stderr: [] });
    const lines = r.stdout.trim().split('\n');
    expect(lines.filter((l) => l.startsWith('created'))).toHaveLength(3);
    const bad = lines.find((l) => l.includes('03-bad.json'))!;
    expect(bad).toMatch(/^invalid/);
    expect(bad).toContain('/container_registry_public_url');
    expect(bad).toContain('/version');
    expect(lines.find((l) => l.includes('04-broken.json'))).toMatch(/^invalid .*not valid JSON/);
    expect(lines[lines.length - 1]).toBe('5 entries: 3 created, 0 updated, 0 unchanged, 2 invalid, 0 failed');
    expect(r.stdout + r.stderr).not.toContain('seed-pw-1');
    expect(await count()).toBe(3);
  });

  test('then a second run reports every valid entry unchanged and writes nothing', async () => {
    const before = await client.db(dbName).collection('container_registries').find().sort({ _id: 1 }).toArray();
    const r = await seed([entries]);
    expect(r.stdout.trim().split('\n').pop()).toBe('5 entries: 0 created, 0 updated, 3 unchanged, 2 invalid, 0 failed');
    const after = await client.db(dbName).collection('container_registries').find().sort({ _id: 1 }).toArray();
    expect(after).toEqual(before);
  });

  test('then a changed entry is updated in place, matched by name', async () => {
    const file = path.join(dir, 'changed.json');
    writeFileSync(file, JSON.stringify(entry({ container_registry_name: 'seed-two', container_registry_tags: ['changed'] })));
    const r = await seed([file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^updated\s+.*seed-two/m);
    const doc = await client.db(dbName).collection('container_registries').findOne({ container_registry_name: 'seed-two' });
    expect(doc!.container_registry_tags).toEqual(['changed']);
    expect(doc!.version).toBe(2);
  });
});

test('When --dry-run is given, then it reports what it would do and writes nothing', async () => {
  const file = path.join(dir, 'dry.json');
  writeFileSync(file, JSON.stringify([entry({ container_registry_name: 'dry-1' }), entry({ container_registry_name: 'dry-2' })]));
  const before = await count();
  const r = await seed(['--dry-run', file]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('[dry run, nothing written] 2 entries: 2 created');
  expect(await count()).toBe(before);
});

test('When entries come on stdin, then they are onboarded', async () => {
  const r = await seed(['-'], JSON.stringify(entry({ container_registry_name: 'from-stdin' })));
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^created\s+<stdin> from-stdin/m);
});

test('When no path is given, then it prints usage and exits 2', async () => {
  const r = await seed([]);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain('usage: npm run seed');
});

/** An entry valid against the schema but over the database's 16 MiB document limit: 64 × 64 metadata strings of 4,096 characters. */
function oversized(name: string): Record<string, unknown> {
  const inner = Object.fromEntries(Array.from({ length: 64 }, (_, j) => [`v${j}`, 'x'.repeat(4096)]));
  return entry({ container_registry_name: name, container_registry_metadata: Object.fromEntries(Array.from({ length: 64 }, (_, k) => [`k${k}`, inner])) });
}

test('When the third of four entries is over the database document limit, then the other three are onboarded and each line tells what became of its entry', async () => {
  const file = path.join(dir, 'oversized.json');
  writeFileSync(file, JSON.stringify([entry({ container_registry_name: 'big-1' }), entry({ container_registry_name: 'big-2' }), oversized('big-3'), entry({ container_registry_name: 'big-4' })]));
  const r = await seed([file]);
  expect(r.code).toBe(1);
  const lines = r.stdout.trim().split('\n');
  expect(lines.slice(0, 4).map((l) => l.split(/\s+/)[0])).toEqual(['created', 'created', 'invalid', 'created']);
  expect(lines[2]).toMatch(/^invalid\s+.*oversized\.json#2 big-3: \/container_registry_metadata: makes the entry \d+ bytes as stored; at most \d+$/);
  expect(lines[4]).toBe('4 entries: 3 created, 0 updated, 0 unchanged, 1 invalid, 0 failed');
  const stored = await client.db(dbName).collection('container_registries').find({ container_registry_name: /^big-/ }).toArray();
  expect(stored.map((d) => d.container_registry_name).sort()).toEqual(['big-1', 'big-2', 'big-4']);
  // What the lines say is what the change log says: no change of big-3, one of each other.
  const changes = await client.db(dbName).collection('catalog_changes').find({ 'doc.container_registry_name': /^big-/ }).toArray();
  expect(changes.map((c) => c.doc.container_registry_name).sort()).toEqual(['big-1', 'big-2', 'big-4']);
}, 120_000);

test('When a file gives one id twice with two names, then the first is onboarded, the second is refused naming the id and both positions, and a rerun changes nothing', async () => {
  const file = path.join(dir, 'twice.json');
  const id = randomUUID();
  writeFileSync(file, JSON.stringify([entry({ container_registry_id: id, container_registry_name: 'twice-a' }), entry({ container_registry_id: id, container_registry_name: 'twice-b' })]));
  const first = await seed([file]);
  expect(first.code).toBe(1);
  const lines = first.stdout.trim().split('\n');
  expect(lines[0]).toMatch(new RegExp(`^created\\s+.*twice\\.json#0 twice-a \\(${id}\\)$`));
  expect(lines[1]).toBe(`invalid   ${file}#1 twice-b: /container_registry_id: ${id} is given twice, at ${file}#0 and at ${file}#1; only the first is onboarded`);
  const again = await seed([file]);
  expect(again.code).toBe(1);
  expect(again.stdout.trim().split('\n').pop()).toBe('2 entries: 0 created, 0 updated, 1 unchanged, 1 invalid, 0 failed');
  const doc = await client.db(dbName).collection('container_registries').findOne({ _id: id as never });
  expect(doc).toMatchObject({ container_registry_name: 'twice-a', version: 1 });
});
