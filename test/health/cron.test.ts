/**
 * The cron path: two instances on one database with HEALTH_CRON firing every second share each tick's sweep.
 */
import { call, startTestService, testDbName, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { startLoopback, type Loopback } from './loopback';

let replicas: TestService[] = [];
let lb: Loopback;

beforeAll(async () => {
  const dbName = testDbName();
  for (let i = 0; i < 2; i++) replicas.push(await startTestService({ HEALTH_CRON: '* * * * * *', PROBE_TIMEOUT_MS: '1500' }, { dbName }));
  lb = await startLoopback();
});
afterAll(async () => {
  for (const r of replicas) await r.parts.health.scheduler.stop();
  await lb?.close();
  for (const r of replicas) await r.close();
  replicas = [];
});

test('When two instances run HEALTH_CRON every second, then each tick is one sweep that probes every registry once', async () => {
  const names = Array.from({ length: 6 }, (_, i) => `cron-${i}`);
  const ids: string[] = [];
  for (const name of names) {
    const res = await call(replicas[0]!.url, 'POST', '/container_registry', entry({ container_registry_name: name, container_registry_public_url: lb.url(name) }));
    expect(res.status).toBe(201);
    ids.push(res.body.container_registry_id);
  }
  for (const r of replicas) r.parts.health.scheduler.start();
  const history = replicas[0]!.db.collection('container_registry_health_history');
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const sweeps = await history.distinct('sweep_id');
    if (sweeps.filter((s) => s !== null).length >= 3) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  for (const r of replicas) await r.parts.health.scheduler.stop();

  const rows = await history.find({}).toArray();
  const sweeps = new Set(rows.map((r) => r.sweep_id as string));
  expect(sweeps.size).toBeGreaterThanOrEqual(3);
  for (const id of sweeps) expect(id).toMatch(/^health@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
  // Exactly once per registry per sweep, and nothing probed outside a recorded sweep.
  // Every sweep but the last (which stop() may have cut short) probed each of the six registries, each once.
  const ordered = [...sweeps].sort();
  for (const sweep of ordered.slice(0, -1)) {
    const probed = rows.filter((r) => r.sweep_id === sweep).map((r) => r.registry_id as string).sort();
    expect([sweep, probed]).toEqual([sweep, [...ids].sort()]);
  }
  const perPair = new Map<string, number>();
  for (const r of rows) perPair.set(`${r.registry_id}|${r.sweep_id}`, (perPair.get(`${r.registry_id}|${r.sweep_id}`) ?? 0) + 1);
  for (const n of perPair.values()) expect(n).toBe(1);
  const total = names.reduce((n, name) => n + lb.count(name), 0);
  expect(total).toBe(rows.length);
  expect(replicas.map((r) => r.logs()).join('')).toMatch(/"message":"health sweep finished"/);
});
