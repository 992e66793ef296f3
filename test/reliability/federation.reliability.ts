/**
 * Federation (SPEC 15) with real service processes, each on its own database of the test server: A and B
 * follow each other, C follows A and two bad peers (one answers garbage, one never answers). Entries flow
 * both ways without echo or duplication, names are unique per origin, mirrored entries are read-only,
 * updates and deletes follow, a stopped peer's entries go stale and recover, and a peer whose revisions go
 * backwards (a fresh process D on A's address) is relisted. Loopback only.
 */
import { createServer, type Server } from 'node:http';
import { entry } from '../support/entries';
import { testDbName } from '../support/service';
import { eventually, freePort, send, startServiceProcess, type ServiceProcess } from './support';

const STALE_S = 3;
const running: ServiceProcess[] = [];
const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop(5000)));
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

/** B serves API keys: A reads it with its reader key (PEER_KEYS), the test with the admin key. */
const B_READER = 'fed-reader-key-0123456789';
const B_ADMIN = 'fed-admin-key-0123456789';
const asAdmin = { authorization: `Bearer ${B_ADMIN}` };

async function service(port: number, db: string, peers: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
  const p = await startServiceProcess({ MONGODB_URI: process.env.TEST_MONGODB_URI!, MONGODB_DB: db, PORT: String(port), PEERS: peers, PEER_STALE_AFTER_S: String(STALE_S), ...env });
  running.push(p);
  return p;
}

async function listen(handler: Parameters<typeof createServer>[1]): Promise<number> {
  const port = await freePort();
  const s = createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', () => r()));
  return port;
}

/** Every entry of a catalog, by id. */
async function all(svc: ServiceProcess, filter: Record<string, unknown> = {}): Promise<Map<string, any>> {
  const o = await send(svc.url, 'POST', '/container_registries?limit=1000', filter, svc === b ? asAdmin : {});
  expect(o.status).toBe(200);
  return new Map((o.body as any[]).map((e) => [e.container_registry_id, e]));
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  if (!(await eventually(check, timeoutMs, 200))) throw new Error(`timed out waiting until ${what}`);
}

const peerOf = async (svc: ServiceProcess, name: string) => ((await send(svc.url, 'GET', '/peers')).body as any[]).find((p) => p.name === name);

let b: ServiceProcess;
const peerEnv = () => ({ PEER_KEYS: `b=${B_READER}` });

test('When A and B follow each other and C follows A, then entries flow both ways once, stay read-only, follow updates and deletes, go stale and recover, and a peer restored from an older state is relisted', async () => {
  const [pA, pB, pC] = [await freePort(), await freePort(), await freePort()];
  const pGarbage = await listen((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"revision": "nope", <garbage'));
  const pHang = await listen(() => undefined);
  const url = (port: number) => `http://127.0.0.1:${port}`;
  const dbA = testDbName();
  let a: ServiceProcess, c: ServiceProcess;
  [a, b, c] = await Promise.all([
    service(pA, dbA, `b=${url(pB)}`, peerEnv()),
    service(pB, testDbName(), `a=${url(pA)}`, { API_KEYS: `reader:${B_READER},admin:${B_ADMIN}` }),
    service(pC, testDbName(), `garbage=${url(pGarbage)},hang=${url(pHang)},a=${url(pA)}`),
  ]);

  // 1. One entry on each side, with the same name: names are unique per origin.
  const a1 = (await send(a.url, 'POST', '/container_registry', entry({ container_registry_name: 'shared' }))).body.container_registry_id as string;
  const b1 = (await send(b.url, 'POST', '/container_registry', entry({ container_registry_name: 'shared' }), asAdmin)).body.container_registry_id as string;
  expect(a1).toBeDefined();
  expect(b1).toBeDefined();
  await until('A and B hold each other\'s entry and C holds A\'s', async () => (await all(a)).has(`b:${b1}`) && (await all(b)).has(`a:${a1}`) && (await all(c)).has(`a:${a1}`));
  const mirrored = (await all(a)).get(`b:${b1}`);
  expect(mirrored.container_registry_name).toBe('shared');
  expect(mirrored.container_registry_origin).toMatchObject({ peer: 'b', url: url(pB), stale: false });
  // A local name is still unique among local entries.
  expect((await send(a.url, 'POST', '/container_registry', entry({ container_registry_name: 'shared' }))).status).toBe(409);

  // 2. No echo, no duplication: after a quiet moment each catalog holds exactly its own entry and its peer's.
  await new Promise((r) => setTimeout(r, 1500));
  expect([...(await all(a)).keys()].sort()).toEqual([a1, `b:${b1}`].sort());
  expect([...(await all(b)).keys()].sort()).toEqual([b1, `a:${a1}`].sort());
  expect([...(await all(c)).keys()]).toEqual([`a:${a1}`]);
  // Mirrored entries can be queried by origin; the peer's key never reaches a log line.
  expect([...(await all(a, { 'container_registry_origin.peer': 'b' })).keys()]).toEqual([`b:${b1}`]);
  expect(JSON.stringify(a.lines)).not.toContain(B_READER);

  // How long a change on A takes to show in a query on C (SPEC 15: within 2 s).
  const lags: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = Date.now();
    const id = (await send(a.url, 'POST', '/container_registry', entry())).body.container_registry_id as string;
    await until('a new entry reaches C', async () => (await all(c)).has(`a:${id}`));
    lags.push(Date.now() - t0);
    expect((await send(a.url, 'DELETE', `/container_registry/${id}`)).status).toBe(204);
  }
  lags.sort((x, y) => x - y);
  process.stdout.write(`federation lag A -> C (write on A to visible in a query on C, 10 writes): p50 ${lags[4]} ms, max ${lags[9]} ms\n`);
  expect(lags[4]).toBeLessThan(2000);
  await until('the deletes reach C', async () => (await all(c)).size === 1);

  // 3. Mirrored entries are read-only: 409 naming the owner; clients cannot set the origin.
  for (const [method, path, body] of [
    ['PUT', `/container_registry/b:${b1}`, { $set: { container_registry_tags: ['x'] } }],
    ['DELETE', `/container_registry/b:${b1}`, undefined],
    ['GET', `/check_container_health/b:${b1}`, undefined],
  ] as const) {
    const o = await send(a.url, method, path, body);
    expect({ method, status: o.status }).toEqual({ method, status: 409 });
    expect(o.body.detail).toContain('peer "b"');
  }
  const forged = await send(a.url, 'POST', '/container_registry', entry({ container_registry_origin: { peer: 'x', url: 'http://127.0.0.1:1', revision: 1, synced_at: new Date().toISOString(), stale: false } }));
  expect(forged.status).toBe(400);
  expect(JSON.stringify(forged.body.errors)).toContain('container_registry_origin');

  // 4. Updates and deletes follow (and a peer that answers garbage or hangs does not hold C up).
  expect((await send(a.url, 'PUT', `/container_registry/${a1}`, { $set: { container_registry_tags: ['updated'] } })).status).toBe(200);
  await until('the update reaches B and C', async () => (await all(b)).get(`a:${a1}`)?.container_registry_tags?.[0] === 'updated' && (await all(c)).get(`a:${a1}`)?.container_registry_tags?.[0] === 'updated');
  const a2 = (await send(a.url, 'POST', '/container_registry', entry())).body.container_registry_id as string;
  expect((await send(a.url, 'DELETE', `/container_registry/${a1}`)).status).toBe(204);
  await until('the delete reaches B and C', async () => {
    const [inB, inC] = [await all(b), await all(c)];
    return !inB.has(`a:${a1}`) && !inC.has(`a:${a1}`) && inC.has(`a:${a2}`);
  });
  const peersOfC = (await send(c.url, 'GET', '/peers')).body as any[];
  expect(peersOfC.map((p) => p.name)).toEqual(['garbage', 'hang', 'a']);
  const [garbage, , peerA] = peersOfC;
  expect(peerA).toMatchObject({ url: url(pA), entries: 1, stale: false, last_error: null });
  expect(peerA.following_replica).toEqual(expect.any(String));
  expect(peerA.revision).toBeGreaterThan(0);
  expect(peerA.lag_s).toBeLessThan(10);
  expect(garbage.last_error).toMatch(/not JSON/);
  expect(garbage.entries).toBe(0);

  // 5. A stopped peer's entries are kept and marked stale, and recover when it is back.
  await a.stop();
  running.splice(running.indexOf(a), 1);
  await until('C marks A\'s entries stale', async () => (await all(c)).get(`a:${a2}`)?.container_registry_origin?.stale === true, 20_000);
  expect((await peerOf(c, 'a')).stale).toBe(true);
  expect((await all(b)).get(`a:${a2}`)).toBeDefined();
  const a3 = await service(pA, dbA, `b=${url(pB)}`, peerEnv());
  await until('C sees A again', async () => (await all(c)).get(`a:${a2}`)?.container_registry_origin?.stale === false, 20_000);
  expect((await peerOf(c, 'a')).stale).toBe(false);

  // 6. A's address now answers from an empty catalog with one new entry (revisions went backwards): C and B relist, dropping what it no longer has.
  await a3.stop();
  running.splice(running.indexOf(a3), 1);
  const d = await service(pA, testDbName(), `b=${url(pB)}`, peerEnv());
  const d1 = (await send(d.url, 'POST', '/container_registry', entry())).body.container_registry_id as string;
  await until('C and B relist A', async () => {
    const [inB, inC] = [await all(b), await all(c)];
    return inC.has(`a:${d1}`) && !inC.has(`a:${a2}`) && inB.has(`a:${d1}`) && !inB.has(`a:${a2}`);
  }, 20_000);
  expect([...(await all(c)).keys()]).toEqual([`a:${d1}`]);
}, 120_000);
