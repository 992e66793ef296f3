/**
 * The peer follower (src/federation/follower.ts) against the real service (production wiring, real HTTP,
 * the run's database) and loopback peers: real catalogs, and fakes that misbehave (test/support/fake-peers.ts).
 * A healthy idle peer with the default settings, a peer that answers at once with nothing new, entries this
 * catalog would never store, an entry its database keeps refusing, and entries too large for one page.
 */
import { randomUUID } from 'node:crypto';
import type { FakeServer } from '../support/fake-servers';
import { closeAllFakeServers } from '../support/fake-servers';
import { pageOf, peerEntry, startFeedPeer, upsert } from '../support/fake-peers';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';
import { PEER_STATE } from '../../src/federation/follower';

const services: TestService[] = [];
afterEach(async () => {
  await Promise.all(services.splice(0).map((s) => s.close()));
  await closeAllFakeServers();
});

async function service(env: Record<string, string> = {}, opts: { dbName?: string } = {}): Promise<TestService> {
  const s = await startTestService(env, opts);
  services.push(s);
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting until ${what}`);
}

async function peerStatus(svc: TestService, name: string): Promise<Record<string, any>> {
  const r = await call(svc.url, 'GET', '/peers');
  expect(r.status).toBe(200);
  return (r.body as Array<Record<string, any>>).find((p) => p.name === name)!;
}

async function mirrored(svc: TestService, peer: string): Promise<Map<string, Record<string, any>>> {
  const r = await call(svc.url, 'POST', '/container_registries?limit=1000', { 'container_registry_origin.peer': peer });
  expect(r.status).toBe(200);
  return new Map((r.body as Array<Record<string, any>>).map((e) => [e.container_registry_id, e]));
}

const changeRequests = (peer: FakeServer) => peer.requests.filter((r) => r.url.startsWith('/container_registries/changes')).length;

test('When a healthy peer is idle, with the default settings, then a whole long poll (30 s) ends without error and the peer is never marked stale', async () => {
  const b = await service();
  const a = await service({ PEERS: `b=${b.url}` });
  expect(a.config.PEER_STALE_AFTER_S).toBe(60);
  await until('A has listed B', async () => (await peerStatus(a, 'b')).revision !== null);
  const listedAt = Date.now();
  // The long poll that follows the list is answered by B after its wait (30 s): A stores that success.
  await until(
    'A has a success after a full idle long poll',
    async () => {
      const s = await peerStatus(a, 'b');
      if (s.last_error !== null) throw new Error(`the follower failed: ${s.last_error}`);
      return Date.parse(s.last_success_at) >= listedAt + 25_000;
    },
    50_000,
  );
  expect(await peerStatus(a, 'b')).toMatchObject({ last_error: null, stale: false, rejected: 0 });
  expect(a.logs()).not.toContain('peer sync failed');
}, 90_000);

test('When a peer answers at once with nothing new (ignoring wait, or with ever larger revisions), then the follower backs off instead of looping, and writes its position only when it moved', async () => {
  let huge = 1;
  const kept = peerEntry();
  const peers = {
    instant: await startFeedPeer((q) => ({ revision: Math.max(q.since, 7), changes: [] })),
    huge: await startFeedPeer(() => ({ revision: (huge += 1e12), changes: [] })),
    // Ignores `wait` and sends the same entry again, at once, every time.
    resend: await startFeedPeer(() => ({ revision: 3, changes: [upsert(3, kept)] })),
  };
  const a = await service({ PEERS: Object.entries(peers).map(([n, p]) => `${n}=${p.url}`).join(',') });
  const states = a.db.collection<Record<string, any>>(PEER_STATE);
  // The idle peer's state as written by its list (the next unforced write is due 10 s later).
  await until('the idle peer is listed', async () => (await states.findOne({ _id: 'instant' } as never))?.revision === 7);
  const instantBefore = await states.findOne({ _id: 'instant' } as never);
  const windowEnd = Date.now() + 4300;
  await until('every peer is listed', async () => (await Promise.all(Object.keys(peers).map((n) => peerStatus(a, n)))).every((s) => s.revision !== null));
  await sleep(300);
  const before = Object.fromEntries(Object.entries(peers).map(([n, p]) => [n, changeRequests(p)]));
  await sleep(Math.max(4000, windowEnd - Date.now()));
  const counts = Object.fromEntries(Object.entries(peers).map(([n, p]) => [n, changeRequests(p) - before[n]!]));
  process.stdout.write(`requests to peers that answer at once, in 4 s: ${JSON.stringify(counts)}\n`);
  for (const [name, n] of Object.entries(counts)) {
    // A pause after each empty answer, doubling from 100-200 ms up to 2.5-5 s: at most 7 in 4 s (hundreds before).
    expect({ name, n }).toEqual({ name, n: expect.any(Number) });
    expect(n).toBeLessThanOrEqual(10);
  }
  // The idle peer's position did not move: its state was not written again (it is refreshed every 10 s at most).
  const instantAfter = await states.findOne({ _id: 'instant' } as never);
  expect(instantAfter!.last_success_at).toEqual(instantBefore!.last_success_at);
  expect(instantAfter!.revision).toBe(7);
  expect((await mirrored(a, 'resend')).has(`resend:${kept.container_registry_id}`)).toBe(true);
  for (const n of Object.keys(peers)) expect(await peerStatus(a, n)).toMatchObject({ last_error: null, stale: false });
}, 60_000);

test('When a peer sends entries this catalog would never store, then each is refused, counted and shown in GET /peers, the rest is stored, and the page is not retried', async () => {
  const epoch = 'epoch-a';
  const good1 = peerEntry();
  const good2 = peerEntry();
  const bad: Array<[string, Record<string, unknown>]> = [
    ['an HTML status', peerEntry({ container_registry_health: { status: '<html><body>502</body></html>' } })],
    ['a date that is none', peerEntry({ created_at: 'not-a-date' })],
    ['a negative version', peerEntry({ version: -1e308 })],
    ['a $where key', peerEntry({ container_registry_health: { status: 'healthy', $where: 'sleep(100)' } })],
    ['a dotted key', peerEntry({ container_registry_metadata: { 'a.b': 1 } })],
    ['300 kB of metadata', peerEntry({ container_registry_metadata: Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, 'm'.repeat(4096)])) })],
    ['a NUL in its id', { ...peerEntry(), container_registry_id: `${randomUUID()}\u0000` }],
    ['an id that is no UUID', { ...peerEntry(), container_registry_id: 'not-a-uuid' }],
  ];
  // 64 keys of 4 kB are valid but over the bound of a 128 kB body limit (plus 16 kB).
  const log = [upsert(1, good1), ...bad.map(([, e], i) => upsert(i + 2, e)), upsert(bad.length + 2, good2)];
  const peer = await startFeedPeer((q) => pageOf(log, q, epoch));
  const a = await service({ PEERS: `p=${peer.url}`, BODY_LIMIT_BYTES: String(128 * 1024) });
  await until('the good entries are stored', async () => (await mirrored(a, 'p')).size === 2 && (await peerStatus(a, 'p')).revision === log.length);
  const status = await peerStatus(a, 'p');
  expect(status).toMatchObject({ revision: log.length, epoch, rejected: bad.length, last_error: null, entries: 2 });
  expect(status.last_rejection).toMatch(/not a UUID/);
  const here = await mirrored(a, 'p');
  expect([...here.keys()].sort()).toEqual([`p:${good1.container_registry_id}`, `p:${good2.container_registry_id}`].sort());
  const warned = a.logs().split('\n').filter((l) => l.includes('change of peer refused'));
  expect(warned).toHaveLength(bad.length);
  for (const reason of ['container_registry_health/status', 'created_at', 'version', '$where', 'container_registry_metadata', 'bytes of JSON', 'not a UUID']) expect(warned.join('\n')).toContain(reason);
  // The status page's totals add up: every entry has one of the four statuses.
  const all = (await call(a.url, 'POST', '/container_registries?limit=1000', {})).body as Array<Record<string, any>>;
  expect(all.every((e) => ['healthy', 'degraded', 'unhealthy', 'unknown'].includes(e.container_registry_health?.status))).toBe(true);

  // An entry stored before that turns invalid is removed here (the peer's current state cannot be stored).
  log.push(upsert(log.length + 1, { ...good1, version: 'two' }));
  // The entry is removed first, the follower's state (its count of refusals) written just after.
  await until('the entry that turned invalid is gone and counted', async () => !(await mirrored(a, 'p')).has(`p:${good1.container_registry_id}`) && (await peerStatus(a, 'p')).rejected === bad.length + 1);
  expect(await peerStatus(a, 'p')).toMatchObject({ rejected: bad.length + 1, last_error: null });
  // The page was not asked for again and again: the follower went on to long-poll after it.
  const requests = changeRequests(peer);
  await sleep(2000);
  expect(changeRequests(peer) - requests).toBeLessThanOrEqual(6);
}, 60_000);

test('When the database refuses one entry of a peer again and again, then it is refused after a few attempts and the entries after it are stored', async () => {
  const log: Array<Record<string, unknown>> = [];
  const peer = await startFeedPeer((q) => pageOf(log, q));
  const a = await service({ PEERS: `p=${peer.url}` });
  await until('the peer is listed', async () => (await peerStatus(a, 'p')).revision !== null);
  // A document written to the collection behind the service's back holds the name key the peer's entry needs:
  // the unique index refuses every write of that entry (a state no write of the service makes, but a real refusal).
  await a.db.collection('container_registries').insertOne({ _id: 'stray', container_registry_name: 'taken', container_registry_public_url: 'http://127.0.0.1:5999', _name_key: 'p/taken' } as never);
  const refused = peerEntry({ container_registry_name: 'taken' });
  const after = peerEntry();
  log.push(upsert(1, refused), upsert(2, after));
  await until('the entry after the refused one is stored', async () => (await mirrored(a, 'p')).has(`p:${after.container_registry_id}`));
  const status = await peerStatus(a, 'p');
  expect(status).toMatchObject({ revision: 2, rejected: 1, last_error: null });
  expect(status.last_rejection).toMatch(/database refused it 3 times/);
  expect((await mirrored(a, 'p')).has(`p:${refused.container_registry_id}`)).toBe(false);
}, 60_000);

test('When an honest peer holds entries so large that a page of the default limit is over the byte bound, then the follower asks for smaller pages and mirrors them all', async () => {
  const b = await service();
  const big = () => entry({ container_registry_metadata: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, String(i % 10).repeat(3500)])) });
  const ids: string[] = [];
  for (let i = 0; i < 60; i++) {
    const r = await call(b.url, 'POST', '/container_registry', big());
    expect(r.status).toBe(201);
    ids.push(r.body.container_registry_id);
  }
  // 60 entries of about 210 kB: a page of 100 would be 12.6 MB, over the 8 MiB bound.
  const a = await service({ PEERS: `b=${b.url}` });
  await until('every entry of B is mirrored', async () => (await mirrored(a, 'b')).size === ids.length, 90_000);
  expect(await peerStatus(a, 'b')).toMatchObject({ rejected: 0, last_error: null });
  expect(a.logs()).toContain('page of peer over the bounds');
}, 120_000);
