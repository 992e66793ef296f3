/**
 * Webhooks end to end (SPEC 16): the real service, a real docker-registry stopped and started, and a
 * loopback receiver that checks every signature with the standardwebhooks package's verifier.
 */
import { call, startTestService, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { ensureTestDeps, startRegistry, stopAllRegistries, type RunningRegistry } from '../support/registries';
import { Receiver } from '../support/webhook-receiver';

const ALL = ['registry.created', 'registry.updated', 'registry.deleted', 'registry.health_changed'];

let svc: TestService;
const receivers: Receiver[] = [];

async function receiver(): Promise<Receiver> {
  const r = new Receiver();
  await r.up();
  receivers.push(r);
  return r;
}

beforeAll(async () => {
  ensureTestDeps();
  svc = await startTestService({ PROBE_TIMEOUT_MS: '3000', WEBHOOK_RETRY_MIN_MS: '50', WEBHOOK_RETRY_MAX_MS: '400', WEBHOOK_LEASE_MS: '1000' });
}, 60_000);
afterAll(async () => {
  await stopAllRegistries();
  for (const r of receivers) await r.down();
  await svc?.close();
});

test('When a subscription is created, then the secret is generated once (whsec_, shown only in the 201) and invalid bodies are 400s naming the field', async () => {
  const created = await call(svc.url, 'POST', '/webhooks', { url: 'http://127.0.0.1:9/hook', events: ['registry.created'] });
  expect(created.status).toBe(201);
  expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
  expect(Buffer.from(created.body.secret.slice(6), 'base64').length).toBe(32);
  const got = await call(svc.url, 'GET', `/webhooks/${created.body.id}`);
  expect(got.status).toBe(200);
  expect(got.text).not.toContain(created.body.secret);
  expect(got.body).toMatchObject({ id: created.body.id, status: 'active', delivered: 0, last_error: null });
  const listed = await call(svc.url, 'GET', '/webhooks');
  expect(listed.text).not.toContain(created.body.secret);
  // Sealed at rest, never in the logs.
  const stored = await svc.db.collection('webhook_subscriptions').findOne({ _id: created.body.id });
  expect(JSON.stringify(stored)).not.toContain(created.body.secret.slice(6));
  expect(svc.logs()).not.toContain(created.body.secret.slice(6));

  const bad: Array<[unknown, string]> = [
    [{ url: 'ftp://127.0.0.1/x', events: ['registry.created'] }, '/url'],
    [{ url: 'http://127.0.0.1/x', events: ['registry.exploded'] }, '/events/0'],
    [{ url: 'http://127.0.0.1/x', events: [] }, '/events'],
    [{ url: 'http://127.0.0.1/x', events: ['registry.created'], secret: 'whsec_c2hvcnQ=' }, '/secret'],
    [{ url: 'http://127.0.0.1/x', events: ['registry.created'], secret: 'nope' }, '/secret'],
    [{ url: 'http://127.0.0.1/x', events: ['registry.created'], filter: { container_registry_name: { $where: '1' } } }, '/filter'],
  ];
  for (const [body, path] of bad) {
    const res = await call(svc.url, 'POST', '/webhooks', body);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body.errors.map((e: { path: string }) => e.path).some((p: string) => p.startsWith(path))).toBe(true);
  }
  expect((await call(svc.url, 'GET', '/webhooks/nope')).status).toBe(404);
  expect((await call(svc.url, 'DELETE', `/webhooks/${created.body.id}`)).status).toBe(204);
  expect((await call(svc.url, 'GET', `/webhooks/${created.body.id}`)).status).toBe(404);
});

test('When an entry is created, updated, probed up, down and up again through a real registry, and deleted, then every event arrives signed, in revision order', async () => {
  let registry: RunningRegistry = await startRegistry();
  const rx = await receiver();
  const sub = await call(svc.url, 'POST', '/webhooks', { url: rx.url, events: ALL });
  expect(sub.status).toBe(201);
  rx.setSecret(sub.body.secret);

  const created = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: 'wh-e2e', container_registry_public_url: registry.url }));
  const id = created.body.container_registry_id as string;
  await rx.waitFor((r) => r.distinct().length >= 1);
  expect((await call(svc.url, 'PUT', `/container_registry/${id}`, { container_registry_tags: ['changed'] })).status).toBe(200);
  await rx.waitFor((r) => r.distinct().length >= 2);
  expect((await call(svc.url, 'GET', `/check_container_health/${id}`)).body.status).toBe('healthy');
  await rx.waitFor((r) => r.distinct().length >= 3);
  const port = registry.port;
  await registry.stop();
  expect((await call(svc.url, 'GET', `/check_container_health/${id}`)).body).toMatchObject({ status: 'unhealthy', error: 'connection_refused' });
  await rx.waitFor((r) => r.distinct().length >= 4);
  // A probe that finds the same status is no event.
  expect((await call(svc.url, 'GET', `/check_container_health/${id}`)).body.status).toBe('unhealthy');
  registry = await startRegistry({ port });
  expect((await call(svc.url, 'GET', `/check_container_health/${id}`)).body.status).toBe('healthy');
  await rx.waitFor((r) => r.distinct().length >= 5);
  expect((await call(svc.url, 'DELETE', `/container_registry/${id}`)).status).toBe(204);
  await rx.waitFor((r) => r.distinct().length >= 6);
  await new Promise((r) => setTimeout(r, 300));

  expect(rx.rejected).toEqual([]);
  const events = rx.distinct().map((r) => r.body);
  expect(events.map((e) => [e.type, e.data.previous_status, e.data.status])).toEqual([
    ['registry.created', undefined, undefined],
    ['registry.updated', undefined, undefined],
    ['registry.health_changed', 'unknown', 'healthy'],
    ['registry.health_changed', 'healthy', 'unhealthy'],
    ['registry.health_changed', 'unhealthy', 'healthy'],
    ['registry.deleted', undefined, undefined],
  ]);
  const revisions = events.map((e) => e.revision);
  expect([...revisions].sort((a, b) => a - b)).toEqual(revisions);
  expect(new Set(revisions).size).toBe(revisions.length);
  for (const e of events) {
    expect(Object.keys(e).sort()).toEqual(['at', 'data', 'id', 'revision', 'type']);
    expect(e.data).toMatchObject({ container_registry_id: id, container_registry_name: 'wh-e2e' });
  }
  expect(events[1].data.entry.container_registry_tags).toEqual(['changed']);
  expect(events[3].data).toMatchObject({ error: 'connection_refused', detail: expect.any(String), entry: expect.objectContaining({ container_registry_id: id }) });
  expect(events[4].data).toMatchObject({ error: null });
  // The webhook-id header is the event id.
  for (const r of rx.distinct()) expect(r.id).toBe(r.body.id);

  const state = await call(svc.url, 'GET', `/webhooks/${sub.body.id}`);
  expect(state.body).toMatchObject({ delivered: 6, failed_attempts: 0, status: 'active' });
  const log = await call(svc.url, 'GET', `/webhooks/${sub.body.id}/deliveries`);
  expect(log.body.deliveries).toHaveLength(6);
  expect(log.body.deliveries[0]).toMatchObject({ event_id: events[5].id, attempt: 1, http_status: 204, error: null });
}, 90_000);

test('When a subscription filter has a regex that backtracks exponentially in JavaScript, then the entries it meets are evaluated at once and the matching ones delivered', async () => {
  const rx = await receiver();
  const sub = await call(svc.url, 'POST', '/webhooks', { url: rx.url, events: ['registry.created'], filter: { container_registry_name: { $regex: '^(a|a)*$' } } });
  expect(sub.status).toBe(201);
  rx.setSecret(sub.body.secret);
  // 'a' × 40 then '!': 2^40 paths for a backtracking engine before it fails (the process froze before the fix).
  const names = ['a'.repeat(40), `${'a'.repeat(40)}!`, 'a'.repeat(41)];
  const ids: string[] = [];
  for (const name of names) ids.push((await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: name }))).body.container_registry_id);
  await rx.waitFor((r) => r.distinct().length >= 2);
  expect((await call(svc.url, 'GET', '/healthz')).status).toBe(200);
  expect(rx.distinct().map((r) => r.body.data.container_registry_id)).toEqual([ids[0], ids[2]]);
});

test('When a subscription has a filter, then only matching entries are events, and an entry that stops matching is a delete', async () => {
  const rx = await receiver();
  const sub = await call(svc.url, 'POST', '/webhooks', { url: rx.url, events: ['registry.created', 'registry.deleted'], filter: { container_registry_tags: 'watched' } });
  rx.setSecret(sub.body.secret);
  await call(svc.url, 'POST', '/container_registry', entry({ container_registry_tags: ['other'] }));
  const watched = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_tags: ['watched'] }));
  const wid = watched.body.container_registry_id;
  // Delivered before the next change (else both collapse into the entry's latest state: never seen, no event).
  await rx.waitFor((r) => r.distinct().length >= 1);
  await call(svc.url, 'PUT', `/container_registry/${wid}`, { container_registry_tags: ['other'] });
  await rx.waitFor((r) => r.distinct().length >= 2);
  await new Promise((r) => setTimeout(r, 300));
  expect(rx.distinct().map((r) => [r.body.type, r.body.data.container_registry_id])).toEqual([
    ['registry.created', wid],
    ['registry.deleted', wid],
  ]);
});
