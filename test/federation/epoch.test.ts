/**
 * The feed's epoch (SPEC 20, issue 20 item 4): every catalog has a random epoch in its change log's meta,
 * carried by every changes answer (JSON `epoch`, header X-Catalog-Epoch, SSE too), kept across restarts,
 * new for a new database and after `npm run db:import`. A follower that sees another epoch lists the peer
 * again: tested with a peer restored from an export whose revisions have grown past the follower's position.
 * Real services, real databases, the real db:export / db:import commands, loopback only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { closeAllFakeServers } from '../support/fake-servers';
import { startPeerProxy } from '../support/fake-peers';
import { cliEnv, runDbCli } from '../support/db-cli';
import { entry } from '../support/entries';
import { openSse } from '../support/feed';
import { call, startTestService, TEST_CREDENTIALS_KEY, testDbName, type TestService } from '../support/service';

const uri = process.env.TEST_MONGODB_URI!;
const running = new Set<TestService>();
let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-epoch-'));
});
afterAll(async () => {
  await Promise.all([...running].map((s) => s.close()));
  await closeAllFakeServers();
  rmSync(tmp, { recursive: true, force: true });
});

async function service(env: Record<string, string> = {}, dbName = testDbName()): Promise<TestService> {
  const s = await startTestService(env, { dbName });
  running.add(s);
  return s;
}

async function stop(s: TestService, keepDatabase = true): Promise<void> {
  running.delete(s);
  await s.close({ keepDatabase });
}

const atDb = (dbName: string) => cliEnv({ MONGODB_URI: uri, MONGODB_DB: dbName, CREDENTIALS_KEY: TEST_CREDENTIALS_KEY });

async function create(s: TestService, overrides: Record<string, unknown> = {}): Promise<string> {
  const r = await call(s.url, 'POST', '/container_registry', entry(overrides));
  expect(r.status).toBe(201);
  return r.body.container_registry_id as string;
}

async function put(s: TestService, id: string, tags: string[]): Promise<number> {
  const r = await call(s.url, 'PUT', `/container_registry/${id}`, { $set: { container_registry_tags: tags } });
  expect(r.status).toBe(200);
  return r.body.revision as number;
}

async function entries(s: TestService, filter: Record<string, unknown> = {}): Promise<Map<string, Record<string, any>>> {
  const r = await call(s.url, 'POST', '/container_registries?limit=1000', filter);
  expect(r.status).toBe(200);
  return new Map((r.body as Array<Record<string, any>>).map((e) => [e.container_registry_id, e]));
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting until ${what}`);
}

/** The catalog's latest revision, once it holds every write it acknowledged. */
const headOf = async (s: TestService): Promise<number> => (await call(s.url, 'GET', '/container_registries/changes?since=0&limit=5000')).body.revision as number;

const epochOf = async (s: TestService): Promise<{ body: string; header: string | null }> => {
  const r = await call(s.url, 'GET', '/container_registries/changes?since=0&limit=1');
  expect(r.status).toBe(200);
  return { body: r.body.epoch, header: r.headers.get('x-catalog-epoch') };
};

test('When changes are read, then every answer carries the catalog\'s epoch (JSON, header, SSE), the same after a restart, another for a new database or an import', async () => {
  const dbName = testDbName();
  const a = await service({}, dbName);
  await create(a);
  const first = await epochOf(a);
  expect(first.body).toMatch(/^[A-Za-z0-9_-]{16}$/);
  expect(first.header).toBe(first.body);
  const sse = await openSse(`${a.url}/container_registries/changes?since=0`);
  expect(sse.headers.get('x-catalog-epoch')).toBe(first.body);
  sse.abort();
  const wait = await call(a.url, 'GET', `/container_registries/changes?since=${a.parts.feed.view.revision}&wait=1`);
  expect(wait.body).toMatchObject({ changes: [], epoch: first.body });

  // A restart (another process on the same database) keeps it; a second replica agrees.
  const replica = await service({}, dbName);
  expect((await epochOf(replica)).body).toBe(first.body);
  await stop(a);
  await stop(replica);
  const again = await service({}, dbName);
  expect((await epochOf(again)).body).toBe(first.body);
  // A new database has another.
  const fresh = await service();
  expect((await epochOf(fresh)).body).not.toBe(first.body);

  // An import of its export has another: the only document the import changes.
  const file = path.join(tmp, 'epoch.ejsonl');
  expect((await runDbCli(['export', file], atDb(dbName))).code).toBe(0);
  const imported = testDbName();
  const run = await runDbCli(['import', file], atDb(imported));
  expect(run.code).toBe(0);
  const restored = await service({}, imported);
  expect((await epochOf(restored)).body).not.toBe(first.body);
  expect([...(await entries(restored)).keys()]).toEqual([...(await entries(again)).keys()]);
}, 120_000);

test('When a peer is restored from an export and its revisions grow past the follower\'s position, then the follower sees the new epoch, relists, and ends with exactly the peer\'s entries', async () => {
  const peerDb = testDbName();
  let peer = await service({}, peerDb);
  // The follower reaches the peer through a fixed address, as it would a DNS name: the restored peer answers there.
  const proxy = await startPeerProxy(peer.url);
  const followerDb = testDbName();
  let follower = await service({ PEERS: `p=${proxy.url}` }, followerDb);
  const status = async () => ((await call(follower.url, 'GET', '/peers')).body as Array<Record<string, any>>)[0]!;

  // 1. Three entries, exported (the backup).
  const [e1, e2, e3] = [await create(peer), await create(peer), await create(peer)];
  await until('the follower holds the three', async () => (await entries(follower, { 'container_registry_origin.peer': 'p' })).size === 3);
  const file = path.join(tmp, 'backup.ejsonl');
  expect((await runDbCli(['export', file], atDb(peerDb))).code).toBe(0);
  const backupRevision = await headOf(peer);

  // 2. Life goes on after the backup: e1 deleted, e2 updated, e4 and e5 created; the follower follows.
  expect((await call(peer.url, 'DELETE', `/container_registry/${e1}`)).status).toBe(204);
  await put(peer, e2, ['after-backup']);
  const [e4, e5] = [await create(peer), await create(peer)];
  const head = await headOf(peer);
  await until('the follower is at the peer\'s head', async () => (await status()).revision === head);
  const oldEpoch = (await status()).epoch;
  expect(oldEpoch).toBe((await epochOf(peer)).body);
  expect([...(await entries(follower, { 'container_registry_origin.peer': 'p' })).keys()].sort()).toEqual([e2, e3, e4, e5].map((id) => `p:${id}`).sort());

  // 3. The follower is away while the peer is lost and restored from the backup into a new database.
  await stop(follower);
  await stop(peer, false);
  const restoredDb = testDbName();
  expect((await runDbCli(['import', file], atDb(restoredDb))).code).toBe(0);
  peer = await service({}, restoredDb);
  proxy.retarget(peer.url);
  expect(await headOf(peer)).toBe(backupRevision);
  // The restored peer deletes e3 (at a revision the follower has passed), creates e6 and writes on until its
  // revisions are past the follower's position: without an epoch, the follower would resume from `head` and
  // keep e3, e4 and e5 (gone from the peer) and the newer e2 (the peer has the old one).
  expect((await call(peer.url, 'DELETE', `/container_registry/${e3}`)).status).toBe(204);
  const e6 = await create(peer);
  for (let i = 0, r = 0; r <= head + 1; i++) r = await put(peer, e6, [`t${i}`]);
  const restoredHead = await headOf(peer);
  expect(restoredHead).toBeGreaterThan(head);
  const newEpoch = (await epochOf(peer)).body;
  expect(newEpoch).not.toBe(oldEpoch);

  // 4. The follower comes back: it relists, and holds exactly the peer's entries, as the peer has them.
  follower = await service({ PEERS: `p=${proxy.url}` }, followerDb);
  await until('the follower has the new epoch', async () => (await status()).epoch === newEpoch && (await status()).revision === restoredHead);
  const theirs = await entries(peer);
  const ours = await entries(follower, { 'container_registry_origin.peer': 'p' });
  expect([...ours.keys()].sort()).toEqual([...theirs.keys()].map((id) => `p:${id}`).sort());
  expect([...theirs.keys()].sort()).toEqual([e1, e2, e6].sort());
  for (const [id, e] of theirs) expect(ours.get(`p:${id}`)!.container_registry_tags).toEqual(e.container_registry_tags);
  expect(follower.logs()).toMatch(/relisting peer.*epoch changed/);
}, 180_000);
