/**
 * Durable, at-least-once webhook delivery (SPEC 16) across replicas and restarts: the receiver is down,
 * events pile up, one replica (maybe the delivering one) stops and a new one starts on the same database;
 * when the receiver comes back, every event arrives, in revision order per subscription, duplicates
 * carrying the same webhook-id and body.
 */
import { call, startTestService, testDbName, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { Receiver } from '../support/webhook-receiver';

const ENV = { WEBHOOK_RETRY_MIN_MS: '100', WEBHOOK_RETRY_MAX_MS: '500', WEBHOOK_LEASE_MS: '1000' };
const services: TestService[] = [];
let rx: Receiver;

afterAll(async () => {
  await rx?.down();
  for (const s of services.reverse()) await s.close();
});

test('When the receiver is down while entries change on two replicas and a replica restarts, then after it returns every event arrives exactly as first signed, in revision order', async () => {
  const dbName = testDbName();
  const start = async () => {
    const s = await startTestService(ENV, { dbName });
    services.push(s);
    return s;
  };
  const a = await start();
  const b = await start();
  rx = new Receiver();
  await rx.up();
  const port = rx.port;
  const sub = await call(a.url, 'POST', '/webhooks', { url: rx.url, events: ['registry.created', 'registry.updated', 'registry.deleted'] });
  rx.setSecret(sub.body.secret);

  // One event delivered while everything is up.
  const first = await call(a.url, 'POST', '/container_registry', entry({ container_registry_name: 'dur-0' }));
  await rx.waitFor((r) => r.distinct().length === 1);

  // Receiver down: changes on both replicas pile up.
  await rx.down();
  const ids: string[] = [first.body.container_registry_id];
  for (let i = 1; i <= 4; i++) {
    const via = i % 2 ? a : b;
    ids.push((await call(via.url, 'POST', '/container_registry', entry({ container_registry_name: `dur-${i}` }))).body.container_registry_id);
  }
  await call(b.url, 'PUT', `/container_registry/${ids[1]}`, { container_registry_tags: ['x'] });
  await call(a.url, 'DELETE', `/container_registry/${ids[2]}`);
  const deliveries = async () => (await call(b.url, 'GET', `/webhooks/${sub.body.id}/deliveries`)).body.deliveries as Array<{ error: string | null }>;
  for (let i = 0; i < 100 && (await deliveries()).filter((d) => d.error).length < 2; i++) await new Promise((r) => setTimeout(r, 100));
  expect((await deliveries()).filter((d) => d.error).length).toBeGreaterThanOrEqual(2);

  // Both replicas restart one after the other while events are pending; a change is made in between.
  await a.close({ keepDatabase: true });
  const c = await start();
  await call(c.url, 'POST', '/container_registry', entry({ container_registry_name: 'dur-5' }));
  await b.close({ keepDatabase: true });
  const d = await start();

  // The receiver returns on the same port.
  rx.port = port;
  await rx.up();
  await rx.waitFor((r) => r.distinct().length >= 5, 30_000);
  await new Promise((r) => setTimeout(r, 500));

  expect(rx.rejected).toEqual([]);
  const events = rx.distinct().map((r) => r.body);
  // dur-1 was created and updated while the receiver was down: a subscriber that was down sees the
  // latest state per entry, so its first event is the create (with the update in it); dur-2 was created
  // and deleted unseen: no event at all.
  const names = events.map((e) => `${e.type} ${e.data.container_registry_name}`);
  expect(names).toHaveLength(5);
  expect(new Set(names)).toEqual(new Set(['registry.created dur-0', 'registry.created dur-1', 'registry.created dur-3', 'registry.created dur-4', 'registry.created dur-5']));
  const revisions = events.map((e) => e.revision);
  expect([...revisions].sort((x, y) => x - y)).toEqual(revisions);
  expect(events.find((e) => e.data.container_registry_name === 'dur-1').data.entry.container_registry_tags).toEqual(['x']);
  // Duplicates (an attempt answered after a restart, a lease taken over) carry the same id and body.
  const byId = new Map<string, string>();
  for (const r of rx.received) {
    if (byId.has(r.id)) expect(r.body).toEqual(JSON.parse(byId.get(r.id)!));
    else byId.set(r.id, r.raw);
  }

  // Still delivering after all that: a change through the last replica arrives.
  await call(d.url, 'DELETE', `/container_registry/${ids[3]}`);
  await rx.waitFor((r) => r.distinct().some((e) => e.body.type === 'registry.deleted'));
  expect(rx.distinct().at(-1)!.body.data).toMatchObject({ container_registry_id: ids[3], entry: null });
  // With both replicas up and the receiver answering, one replica delivers it, once.
  await new Promise((r) => setTimeout(r, 1000));
  expect(rx.received.filter((r) => r.body.type === 'registry.deleted')).toHaveLength(1);
}, 120_000);
