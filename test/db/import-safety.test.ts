/**
 * `npm run db:import` is all or nothing (issue 24, item 4): hand-edited exports of a real catalog (a duplicated
 * change log record, a `$` key in an entry, an invalid entry, a change log that disagrees with the entries)
 * are refused before anything is written, naming the line, the document and the problem; a document only the
 * database refuses, and a process killed while it writes, leave the catalog as it was; a process killed while
 * it swaps the new collections in is finished by the next export or start of the service. The commands run as
 * processes against a database of their own on the run's server; the catalogs are made by the real service.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MongoClient, type Db } from 'mongodb';
import { cliEnv, contents, ROOT, runDbCli } from '../support/db-cli';
import { entry } from '../support/entries';
import { call, startTestService, testDbName, TEST_CREDENTIALS_KEY } from '../support/service';

const uri = process.env.TEST_MONGODB_URI!;
let client: MongoClient;
let tmp: string;
const dropLater: string[] = [];

function newDb(): Db {
  const name = testDbName();
  dropLater.push(name);
  return client.db(name);
}

const atDb = (db: Db) => cliEnv({ MONGODB_URI: uri, MONGODB_DB: db.databaseName, CREDENTIALS_KEY: TEST_CREDENTIALS_KEY });

/** A catalog made by the real service: entries (one with credentials, one probed, one deleted), exported to a file. */
async function exportedCatalog(name: string): Promise<{ file: string; ids: string[] }> {
  const svc = await startTestService({ RATE_LIMIT_MAX: '0', PROBE_RATE_LIMIT_MAX: '0' });
  dropLater.push(svc.db.databaseName);
  const ids: string[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const res = await call(svc.url, 'POST', '/container_registry', entry(i === 0 ? { container_registry_credentials: { username: 'robot', password: 'import-pw-0' } } : {}));
      expect(res.status).toBe(201);
      ids.push(res.body.container_registry_id);
    }
    // A probe of a closed loopback port: a second change of the entry and a health history row.
    expect((await call(svc.url, 'GET', `/check_container_health/${ids[1]}`)).status).toBe(200);
    expect((await call(svc.url, 'DELETE', `/container_registry/${ids.pop()}`)).status).toBe(204);
  } finally {
    await svc.close({ keepDatabase: true });
  }
  const file = path.join(tmp, `${name}.ejsonl`);
  expect((await runDbCli(['export', file], atDb(svc.db))).code).toBe(0);
  return { file, ids };
}

type Line = { text: string; value: any };

/** An export as lines (documents parsed), edited by `edit`, its counts made right again, written to a new file. */
function edited(file: string, name: string, edit: (sections: Map<string, Line[]>) => void): string {
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  const sections = new Map<string, Line[]>();
  let current: Line[] | undefined;
  for (const text of lines) {
    const value = JSON.parse(text);
    if (Array.isArray(value) && value[0] === 'collection') sections.set(value[1].name, (current = []));
    else if (!Array.isArray(value)) current!.push({ text, value });
  }
  edit(sections);
  const out = [lines[0]!];
  for (const [collection, docs] of sections) {
    const header = lines.find((l) => l.startsWith('["collection"') && JSON.parse(l)[1].name === collection)!;
    out.push(header, ...docs.map((d) => (d.value === undefined ? d.text : JSON.stringify(d.value))), JSON.stringify(['end', { name: collection, count: docs.length }]));
  }
  out.push(JSON.stringify(['end-of-export', { collections: sections.size, documents: [...sections.values()].reduce((n, d) => n + d.length, 0) }]));
  const to = path.join(tmp, `${name}.ejsonl`);
  writeFileSync(to, out.join('\n') + '\n');
  return to;
}

const docsOf = (sections: Map<string, Line[]>, name: string) => sections.get(name)!;
const entryOf = (sections: Map<string, Line[]>, id: string) => docsOf(sections, 'container_registries').find((l) => l.value._id === id)!;
/** The change log records of entry `id`, latest first. */
const changesOf = (sections: Map<string, Line[]>, id: string) =>
  docsOf(sections, 'catalog_changes')
    .filter((l) => l.value.key === id)
    .sort((a, b) => Number(b.value.r.$numberInt ?? b.value.r.$numberDouble ?? b.value.r) - Number(a.value.r.$numberInt ?? a.value.r.$numberDouble ?? a.value.r));

async function importCollections(db: Db): Promise<string[]> {
  return (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).filter((n) => n.startsWith('__import_'));
}

let catalogA: { file: string; ids: string[] };
let catalogB: { file: string; ids: string[] };

beforeAll(async () => {
  client = new MongoClient(uri);
  await client.connect();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-import-'));
  catalogA = await exportedCatalog('a');
  catalogB = await exportedCatalog('b');
}, 120_000);
afterAll(async () => {
  for (const name of dropLater) await client.db(name).dropDatabase().catch(() => undefined);
  await client.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('When a hand-edited export is imported with --force over a catalog', () => {
  const cases: Array<[string, (s: Map<string, Line[]>) => void, RegExp[]]> = [
    [
      'a change log record given twice',
      (s) => docsOf(s, 'catalog_changes').splice(1, 0, docsOf(s, 'catalog_changes')[0]!),
      [/line \d+: catalog_changes "\d{16}": revision \d+ appears twice \(first at line \d+\)/],
    ],
    [
      'a "$" key at the top of one entry',
      (s) => (entryOf(s, catalogA.ids[2]!).value.$bad = 1),
      [/line \d+: container_registries "[0-9a-f-]{36}": \/\$bad: a field name may not start with "\$"/],
    ],
    [
      'an entry with a number for a name and a string for its tags, in the collection and the change log alike',
      (s) => {
        for (const l of [entryOf(s, catalogA.ids[3]!), changesOf(s, catalogA.ids[3]!)[0]!]) {
          const doc = l.value.doc ?? l.value;
          doc.container_registry_name = 42;
          doc.container_registry_tags = 'gpu';
        }
      },
      [/container_registries "[0-9a-f-]{36}": is not a valid stored entry: .*\/container_registry_name must be string/, /\/container_registry_tags must be array/],
    ],
    [
      "a change log without an entry's latest change",
      (s) => docsOf(s, 'catalog_changes').splice(docsOf(s, 'catalog_changes').indexOf(changesOf(s, catalogA.ids[1]!)[0]!), 1),
      [/container_registries "[0-9a-f-]{36}": has revision \d+, but its latest change in the change log is revision \d+/],
    ],
    [
      'an entry missing that the change log says exists',
      (s) => docsOf(s, 'container_registries').splice(docsOf(s, 'container_registries').indexOf(entryOf(s, catalogA.ids[0]!)), 1),
      [/catalog_changes "\d{16}": the latest change of entry [0-9a-f-]{36} stores it \(revision \d+\), but container_registries has no such entry/],
    ],
    [
      'an entry that differs from its state in the change log',
      (s) => (entryOf(s, catalogA.ids[2]!).value.container_registry_tags = ['edited']),
      [/container_registries "[0-9a-f-]{36}": differs from its state in the change log at revision \d+/],
    ],
    [
      // Ids are checked in memory for the catalog's collections only (the history can hold millions of rows):
      // the database finds this one while the new collections are written, after the catalog's were.
      'a health history row given twice (a document only the database refuses)',
      (s) => docsOf(s, 'container_registry_health_history').push(docsOf(s, 'container_registry_health_history')[0]!),
      [/line \d+: container_registry_health_history \{"\$oid":"[0-9a-f]{24}"\}: the database refused it \(.*(E11000|duplicate|UNIQUE)/i],
    ],
  ];

  let dst: Db;
  let before: Awaited<ReturnType<typeof contents>>;
  beforeAll(async () => {
    dst = newDb();
    expect((await runDbCli(['import', catalogB.file], atDb(dst))).code).toBe(0);
    before = await contents(dst);
    expect(before.container_registries!.count).toBe(4);
  });

  test.each(cases)('then %s is refused, the message names the line, the document and the problem, and the catalog is exactly as it was', async (name, edit, messages) => {
    const file = edited(catalogA.file, name.replace(/\W+/g, '-'), edit);
    const run = await runDbCli(['import', file, '--force'], atDb(dst));
    expect(run.code).toBe(1);
    for (const m of messages) expect(run.stderr).toMatch(m);
    expect(run.stderr).toMatch(/nothing was imported, the database is as it was/);
    expect(run.stdout).not.toContain('counts verified');
    expect(await contents(dst)).toEqual(before);
    expect(await importCollections(dst)).toEqual([]);
  });

  test('then the unedited export is imported, and replaces the catalog whole', async () => {
    const run = await runDbCli(['import', catalogA.file, '--force'], atDb(dst));
    expect(run.stderr).not.toMatch(/problem|refused/);
    expect(run.code).toBe(0);
    const src = newDb();
    expect((await runDbCli(['import', catalogA.file], atDb(src))).code).toBe(0);
    expect(await contents(dst, { withoutEpoch: true })).toEqual(await contents(src, { withoutEpoch: true }));
  });
});

/** Imports `file` in a child process (the built modules) that kills itself with SIGKILL at the first step starting with `killAt`. */
function importKilledAt(db: Db, file: string, killAt: string): Promise<{ signal: NodeJS.Signals | null; steps: string }> {
  const script = `
    const { MongoClient } = require(${JSON.stringify(path.join(ROOT, 'node_modules', 'mongodb'))});
    const { importDatabase } = require(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'db', 'dump.js'))});
    const { catalogImportRules } = require(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'registries', 'import-rules.js'))});
    MongoClient.connect(process.env.URI).then((c) => importDatabase(c.db(process.env.DB), process.env.FILE, {
      force: true,
      rules: catalogImportRules(),
      onStep: (step) => { process.stdout.write(step + '\\n'); if (step.startsWith(process.env.KILL_AT)) process.kill(process.pid, 'SIGKILL'); },
    })).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`;
  const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, URI: uri, DB: db.databaseName, FILE: file, KILL_AT: killAt }, stdio: ['ignore', 'pipe', 'inherit'] });
  let steps = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (steps += d));
  return new Promise((resolve) => child.once('exit', (_code, signal) => resolve({ signal, steps })));
}

describe('When an import is killed', () => {
  test('while it writes the new collections, then the catalog is exactly as it was, and the next import clears what it left', async () => {
    const dst = newDb();
    expect((await runDbCli(['import', catalogB.file], atDb(dst))).code).toBe(0);
    const before = await contents(dst);
    const killed = await importKilledAt(dst, catalogA.file, 'staged container_registries');
    expect(killed.signal).toBe('SIGKILL');
    expect(killed.steps).toMatch(/^checked\nstaged .*container_registries\n$/s);
    expect(await importCollections(dst)).not.toEqual([]);
    expect(await contents(dst)).toEqual(before);
    // The leftovers are no part of an export, and the next import drops them.
    const exported = path.join(tmp, 'after-kill.ejsonl');
    expect((await runDbCli(['export', exported], atDb(dst))).code).toBe(0);
    expect(readFileSync(exported, 'utf8')).not.toContain('__import_');
    expect((await runDbCli(['import', catalogA.file, '--force'], atDb(dst))).code).toBe(0);
    expect(await importCollections(dst)).toEqual([]);
  }, 120_000);

  test('while it swaps the new collections in, then the next export finishes the swap: it reads the new catalog whole', async () => {
    const dst = newDb();
    expect((await runDbCli(['import', catalogB.file], atDb(dst))).code).toBe(0);
    const killed = await importKilledAt(dst, catalogA.file, 'swapped ');
    expect(killed.signal).toBe('SIGKILL');
    expect(killed.steps).toMatch(/\nswapped \w+\n$/);
    const exported = path.join(tmp, 'after-swap-kill.ejsonl');
    expect((await runDbCli(['export', exported], atDb(dst))).code).toBe(0);
    // Every document of the file, but the change log's epoch, which the import renews.
    const documents = (f: string) => readFileSync(f, 'utf8').split('\n').filter((l) => l.startsWith('{') && !l.startsWith('{"_id":"epoch"')).sort();
    expect(documents(exported)).toEqual(documents(catalogA.file));
    expect(await importCollections(dst)).toEqual([]);
  }, 120_000);

  test('while it swaps the new collections in, then the next start of the service finishes the swap and serves the new catalog', async () => {
    const dst = newDb();
    expect((await runDbCli(['import', catalogA.file], atDb(dst))).code).toBe(0);
    expect((await importKilledAt(dst, catalogB.file, 'swapped ')).signal).toBe('SIGKILL');
    const svc = await startTestService({}, { dbName: dst.databaseName });
    try {
      expect(svc.logs()).toContain('an interrupted db:import was finished');
      const listed = await call(svc.url, 'POST', '/container_registries', {});
      expect(listed.status).toBe(200);
      expect(listed.body.map((e: { container_registry_id: string }) => e.container_registry_id).sort()).toEqual([...catalogB.ids].sort());
      expect(await importCollections(dst)).toEqual([]);
    } finally {
      await svc.close({ keepDatabase: true });
    }
  }, 120_000);
});
