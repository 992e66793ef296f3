/**
 * A malformed entry in the database (written around the API: an import from before db:import checked entries,
 * a hand edit) must not break a whole route (issue 24, item 5): /metrics, /resolve and the health report leave
 * it out and answer for every other entry, and the service logs it once, not once per request. The corrupt
 * state is set up the way such an entry arrives (its change in the change log, then the entry in the
 * collection); every assertion goes through the real service's HTTP.
 */
import { randomUUID } from 'node:crypto';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';

const services: TestService[] = [];
afterAll(async () => {
  for (const s of services.reverse()) await s.close({ keepDatabase: s !== services[services.length - 1] });
});

/** Writes `fields` over a valid stored entry through the change log, then into the collection; answers its id. */
async function writeMalformed(svc: TestService, fields: Record<string, unknown>): Promise<string> {
  const writer = svc.parts.repository.writer;
  const id = randomUUID();
  const now = new Date().toISOString();
  const doc = {
    _id: id,
    container_registry_name: `bad-${id.slice(0, 8)}`,
    container_registry_public_url: 'http://127.0.0.1:5999',
    container_registry_image_prefix: '127.0.0.1:5999',
    container_registry_health: { status: 'unknown', consecutive_failures: 0 },
    created_at: now,
    updated_at: now,
    version: 1,
    ...fields,
  };
  const r = await writer.log.append({ key: id, prev: 0, op: 'upsert', doc: doc as never });
  await writer.collection.insertOne({ ...doc, revision: r } as never);
  expect(await svc.parts.feed.waitFor(r, 5000)).toBe(true);
  return id;
}

async function expectEveryRouteServesOnly(svc: TestService, good: string, bad: string[]): Promise<void> {
  const metrics = await call(svc.url, 'GET', '/metrics');
  expect(metrics.status).toBe(200);
  expect(metrics.text).toContain(`registry_id="${good}"`);
  for (const id of bad) expect(metrics.text).not.toContain(id);

  const resolved = await call(svc.url, 'GET', `/resolve?image=${encodeURIComponent('127.0.0.1:5999/team/app:1')}&prefer=gpu`);
  expect(resolved.status).toBe(200);
  expect(resolved.body.candidates.map((c: { container_registry_id: string }) => c.container_registry_id)).toEqual([good]);
  const batch = await call(svc.url, 'POST', '/resolve', { images: ['127.0.0.1:5999/team/app:1'], prefer: ['gpu'] });
  expect(batch.status).toBe(200);

  const report = await call(svc.url, 'GET', '/health_report');
  expect(report.status).toBe(200);
  expect(report.body.registries.map((r: { container_registry_id: string }) => r.container_registry_id)).toEqual([good]);
  const { healthy, degraded, unhealthy, unknown, total, ...other } = report.body.totals;
  expect(other).toEqual({});
  expect(healthy + degraded + unhealthy + unknown).toBe(total);
  expect(total).toBe(1);
}

test('When stored entries are malformed (a number for a name, a string for the tags, an unknown health status), then /metrics, /resolve and the health report answer for the others and log each bad entry once', async () => {
  const svc = await startTestService();
  services.push(svc);
  const created = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_public_url: 'http://127.0.0.1:5999', container_registry_tags: ['gpu'] }));
  expect(created.status).toBe(201);
  const good = created.body.container_registry_id as string;
  const badName = await writeMalformed(svc, { container_registry_name: 42, container_registry_tags: 'gpu' });
  const badHealth = await writeMalformed(svc, { container_registry_health: { status: 'bogus' } });

  // The live service (the entries arrive through the change feed), asked three times.
  for (let i = 0; i < 3; i++) await expectEveryRouteServesOnly(svc, good, [badName, badHealth]);
  const logged = (id: string) => svc.logs().split('\n').filter((l) => l.includes('a stored entry is malformed') && l.includes(id));
  // Once per consumer (metrics, resolve, health report), however many requests.
  expect(logged(badName).map((l) => JSON.parse(l).consumer).sort()).toEqual(['health report', 'metrics', 'resolve']);
  expect(logged(badName)[0]).toContain('container_registry_name is not a string');
  expect(logged(badHealth)).toHaveLength(3);

  // A replica that starts on this database (the view and the resolver's index loaded at once) answers the same.
  const restarted = await startTestService({}, { dbName: svc.db.databaseName });
  services.push(restarted);
  await expectEveryRouteServesOnly(restarted, good, [badName, badHealth]);
}, 120_000);
