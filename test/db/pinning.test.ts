/**
 * The embedded database is pinned to its DATA_DIR (SPEC section 3; src/db/pin.ts, src/db/embedded.ts), through
 * the built commands as processes: `npm run db` (dist/src/bin/db.js) and `npm start` (dist/src/main.js).
 * "A mongod became available" is a fake mongod named by MONGOMS_SYSTEM_BINARY: a script that logs every call,
 * answers `--version` and fails to start. A start must never come up on an empty catalog beside existing data,
 * and never downloads a mongod unless asked (mongodb-memory-server's download pointed at a loopback server).
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { cliEnv, runDbCli, runMainUntilListening, serveDb } from '../support/db-cli';

let tmp: string;
let fake: string;
let calls: string;

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-pin-'));
  calls = path.join(tmp, 'fake-mongod.calls');
  fake = path.join(tmp, 'fake-mongod');
  writeFileSync(fake, `#!/bin/sh\necho "$*" >> '${calls}'\nif [ "$1" = "--version" ]; then echo "db version v8.2.6"; exit 0; fi\necho "fake mongod: not starting" >&2\nexit 1\n`);
  chmodSync(fake, 0o755);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const fakeCalls = (): string => (existsSync(calls) ? readFileSync(calls, 'utf8') : '');
const withFakeMongod = (dataDir: string, more: Record<string, string> = {}) => cliEnv({ DATA_DIR: dataDir, MONGOMS_SYSTEM_BINARY: fake, ...more });
const marker = (dataDir: string) => JSON.parse(readFileSync(path.join(dataDir, 'backend.json'), 'utf8')).backend as string;

/** Starts `npm run db` on DATA_DIR, runs `work` on its database, stops it; returns its log. */
async function withEmbedded(env: NodeJS.ProcessEnv, work: (db: ReturnType<MongoClient['db']>) => Promise<void>): Promise<string> {
  const server = await serveDb(env);
  const client = new MongoClient(server.uri, { serverSelectionTimeoutMS: 5000 });
  try {
    await client.connect();
    await work(client.db('registry_db'));
  } finally {
    await client.close();
    const run = await server.stop();
    expect(run.code).toBe(0);
  }
  return server.stderr();
}

describe('a DATA_DIR that FerretDB owns, on a machine where a mongod became available', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = path.join(tmp, 'ferretdb-owned');
  });

  test('When a new DATA_DIR starts where a mongod is offered, then mongod is tried (the fake is real), FerretDB takes over and the DATA_DIR is pinned to it', async () => {
    const log = await withEmbedded(withFakeMongod(dataDir), async (db) => {
      await db.collection('container_registries').insertOne({ _id: 'kept' as never, container_registry_name: 'kept' });
    });
    expect(fakeCalls()).not.toBe('');
    expect(marker(dataDir)).toBe('ferretdb');
    expect(log).toContain('database: embedded FerretDB');
    expect(existsSync(path.join(dataDir, 'mongod'))).toBe(false);
  }, 120_000);

  test('When it starts again with the mongod still offered, then FerretDB serves the existing catalog and the mongod is never run', async () => {
    unlinkSync(calls);
    const recorded = readFileSync(path.join(dataDir, 'backend.json'), 'utf8');
    const log = await withEmbedded(withFakeMongod(dataDir), async (db) => {
      expect(await db.collection('container_registries').findOne({ _id: 'kept' as never })).toMatchObject({ container_registry_name: 'kept' });
    });
    expect(log).toMatch(/"why":"pinned by [^"]*backend\.json"/);
    expect(fakeCalls()).toBe('');
    expect(readFileSync(path.join(dataDir, 'backend.json'), 'utf8')).toBe(recorded);
  }, 120_000);

  test('When EMBEDDED_DB=mongod asks for the other backend, then npm run db and npm start stop non-zero saying where the data is and how to move it, and start nothing', async () => {
    for (const run of [await runDbCli([], withFakeMongod(dataDir, { EMBEDDED_DB: 'mongod' })), await runMainUntilListening(withFakeMongod(dataDir, { EMBEDDED_DB: 'mongod' }))]) {
      expect(run.code).not.toBe(0);
      expect(run.stderr).toContain(`DATA_DIR ${dataDir} belongs to ferretdb: the catalog is in ${path.join(dataDir, 'ferretdb')}`);
      expect(run.stderr).toContain('npm run db:export -- ');
      expect(run.stderr).toContain('EMBEDDED_DB=mongod npm run db:import -- ');
      expect(run.stdout).not.toContain('listening');
    }
    expect(fakeCalls()).toBe('');
    expect(existsSync(path.join(dataDir, 'mongod'))).toBe(false);
    expect(marker(dataDir)).toBe('ferretdb');
  }, 120_000);

  test('When the DATA_DIR comes from an older version (FerretDB data, no backend.json), then it is recognised, pinned, and its catalog served', async () => {
    unlinkSync(path.join(dataDir, 'backend.json'));
    const log = await withEmbedded(withFakeMongod(dataDir), async (db) => {
      expect(await db.collection('container_registries').countDocuments({ _id: 'kept' as never })).toBe(1);
    });
    expect(log).toContain(`"why":"existing data in ${path.join(dataDir, 'ferretdb')} (older version, no backend.json); pinned now"`);
    expect(marker(dataDir)).toBe('ferretdb');
    expect(fakeCalls()).toBe('');
  }, 120_000);

  test('When an older DATA_DIR holds data of both backends and no backend.json, then auto refuses; EMBEDDED_DB picks one and pins it', async () => {
    unlinkSync(path.join(dataDir, 'backend.json'));
    mkdirSync(path.join(dataDir, 'mongod'));
    writeFileSync(path.join(dataDir, 'mongod', 'WiredTiger'), 'WiredTiger\n');
    const refused = await runDbCli([], withFakeMongod(dataDir));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`holds data of both embedded backends (${path.join(dataDir, 'mongod')} and ${path.join(dataDir, 'ferretdb')})`);
    expect(existsSync(path.join(dataDir, 'backend.json'))).toBe(false);
    await withEmbedded(withFakeMongod(dataDir, { EMBEDDED_DB: 'ferretdb' }), async (db) => {
      expect(await db.collection('container_registries').countDocuments({})).toBe(1);
    });
    expect(marker(dataDir)).toBe('ferretdb');
    expect(fakeCalls()).toBe('');
  }, 120_000);
});

test('When a DATA_DIR holds mongod data and no mongod starts on this machine, then npm start and npm run db stop non-zero instead of serving an empty FerretDB catalog', async () => {
  const dataDir = path.join(tmp, 'mongod-owned');
  mkdirSync(path.join(dataDir, 'mongod'), { recursive: true });
  writeFileSync(path.join(dataDir, 'mongod', 'WiredTiger'), 'WiredTiger\n');
  for (const run of [await runMainUntilListening(withFakeMongod(dataDir)), await runDbCli(['export', path.join(tmp, 'never.ejsonl')], withFakeMongod(dataDir))]) {
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(`DATA_DIR ${dataDir} belongs to mongod`);
    expect(run.stderr).toContain('but mongod did not start');
    expect(run.stderr).toContain('MONGOMS_SYSTEM_BINARY');
    expect(run.stdout).not.toContain('listening');
  }
  expect(existsSync(path.join(dataDir, 'ferretdb'))).toBe(false);
  expect(existsSync(path.join(tmp, 'never.ejsonl'))).toBe(false);
  // Pinned by its data now (recorded once a start succeeds): the message said where it is.
  expect(existsSync(path.join(dataDir, 'backend.json'))).toBe(false);
}, 120_000);

test('When no mongod is on the machine, then a start never downloads one; only EMBEDDED_DB=mongod with EMBEDDED_DB_DOWNLOAD=true tries', async () => {
  // mongodb-memory-server's download pointed at a loopback server that counts requests and has nothing to give.
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const download = {
    MONGOMS_DOWNLOAD_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mongodb-linux-x86_64-ubuntu2204-8.2.6.tgz`,
    MONGOMS_USE_HTTP: 'true',
    MONGOMS_DOWNLOAD_DIR: path.join(tmp, 'mongod-downloads'),
    MONGOMS_RUNTIME_DOWNLOAD: 'true',
  };
  try {
    const auto = path.join(tmp, 'no-download-auto');
    const log = await withEmbedded(cliEnv({ DATA_DIR: auto, ...download }), async () => undefined);
    expect(requests).toEqual([]);
    expect(log).toContain('nothing is downloaded unless EMBEDDED_DB=mongod and EMBEDDED_DB_DOWNLOAD=true');
    expect(marker(auto)).toBe('ferretdb');
    const forced = await runDbCli([], cliEnv({ DATA_DIR: path.join(tmp, 'no-download-mongod'), EMBEDDED_DB: 'mongod', ...download }));
    expect(forced.code).not.toBe(0);
    expect(forced.stderr).toContain('nothing is downloaded unless');
    expect(requests).toEqual([]);
    // The operator's explicit request does download (here: tries, and fails on the 404).
    const asked = await runDbCli([], cliEnv({ DATA_DIR: path.join(tmp, 'download-asked'), EMBEDDED_DB: 'mongod', EMBEDDED_DB_DOWNLOAD: 'true', ...download }));
    expect(asked.code).not.toBe(0);
    expect(requests.length).toBeGreaterThan(0);
  } finally {
    server.close();
  }
}, 120_000);
