/**
 * GET /check_container_health/:id against the real service, real database and loopback registries.
 */
import { call, startTestService, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { refusedUrl, startLoopback, type Loopback } from './loopback';
import { startFakeServer } from '../support/fake-servers';

let svc: TestService;
let lb: Loopback;

beforeAll(async () => {
  svc = await startTestService({ PROBE_TIMEOUT_MS: '1500' });
  lb = await startLoopback();
});
afterAll(async () => {
  await lb?.close();
  await svc?.close();
});

async function create(url: string): Promise<string> {
  const res = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_public_url: url }));
  expect(res.status).toBe(201);
  return res.body.container_registry_id as string;
}

const history = (id: string) => svc.db.collection('container_registry_health_history').find({ registry_id: id }).sort({ checked_at: 1 }).toArray();

test('When a registry is checked on demand, then its health is stored and one history row is appended', async () => {
  const id = await create(lb.url('open'));
  const res = await call(svc.url, 'GET', `/check_container_health/${id}`);
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ status: 'healthy', api_version: 'registry/2.0', http_status: 200, consecutive_failures: 0, error: null });
  expect(res.body.last_healthy_at).toBe(res.body.checked_at);
  expect(res.body.last_status_change_at).toBe(res.body.checked_at);
  expect(lb.count('open')).toBe(1);

  const stored = await call(svc.url, 'GET', `/container_registry/${id}`);
  expect(stored.body.container_registry_health).toEqual(res.body);
  for (const k of Object.keys(stored.body)) expect(k.startsWith('_')).toBe(false);

  const rows = await history(id);
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({ registry_id: id, status: 'healthy', http_status: 200, error: null, latency_ms: res.body.latency_ms });
  expect((rows[0]!.checked_at as Date).toISOString()).toBe(res.body.checked_at);
});

test('When the registry does not exist, then the check answers 404', async () => {
  const res = await call(svc.url, 'GET', '/check_container_health/6f1c1c9e-0000-4000-8000-000000000000');
  expect(res.status).toBe(404);
  expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
});

test('When a registry fails twice and then recovers, then consecutive failures and status changes are tracked', async () => {
  const id = await create(lb.url('flaky'));
  const first = (await call(svc.url, 'GET', `/check_container_health/${id}`)).body;
  expect(first.status).toBe('healthy');

  lb.set('flaky', 'error500');
  const down1 = (await call(svc.url, 'GET', `/check_container_health/${id}`)).body;
  expect(down1).toMatchObject({ status: 'unhealthy', http_status: 500, consecutive_failures: 1, last_healthy_at: first.checked_at });
  expect(down1.error).not.toBeNull();
  expect(down1.last_status_change_at).toBe(down1.checked_at);

  const down2 = (await call(svc.url, 'GET', `/check_container_health/${id}`)).body;
  expect(down2).toMatchObject({ status: 'unhealthy', consecutive_failures: 2, last_healthy_at: first.checked_at, last_status_change_at: down1.checked_at });

  lb.set('flaky', 'registry');
  const up = (await call(svc.url, 'GET', `/check_container_health/${id}`)).body;
  expect(up).toMatchObject({ status: 'healthy', consecutive_failures: 0, last_healthy_at: up.checked_at, last_status_change_at: up.checked_at });

  const rows = await history(id);
  expect(rows.map((r) => r.status)).toEqual(['healthy', 'unhealthy', 'unhealthy', 'healthy']);
});

test('When the registry refuses connections, then the stored health is unhealthy with connection_refused', async () => {
  const id = await create(await refusedUrl());
  const res = await call(svc.url, 'GET', `/check_container_health/${id}`);
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ status: 'unhealthy', error: 'connection_refused', consecutive_failures: 1, last_healthy_at: null });
});

test('When health is written, then the entry version and ETag stay the same', async () => {
  const id = await create(lb.url('etag'));
  const before = await call(svc.url, 'GET', `/container_registry/${id}`);
  await call(svc.url, 'GET', `/check_container_health/${id}`);
  await svc.parts.health.scheduler.sweepHealth({ sweepId: `etag-${id}` });
  const after = await call(svc.url, 'GET', `/container_registry/${id}`);
  expect(after.headers.get('etag')).toBe(before.headers.get('etag'));
  expect(after.body.version).toBe(before.body.version);
  expect(after.body.container_registry_health.status).toBe('healthy');
  const put = await call(svc.url, 'PUT', `/container_registry/${id}`, { $set: { container_registry_name: `renamed-${id}` } }, { 'If-Match': before.headers.get('etag')! });
  expect(put.status).toBe(200);
});

test('When the registry hangs, then the check answers unhealthy within the timeout plus one second', async () => {
  lb.set('hang', 'hang');
  const id = await create(lb.url('hang'));
  const res = await call(svc.url, 'GET', `/check_container_health/${id}`);
  expect(res.body).toMatchObject({ status: 'unhealthy', error: 'timeout' });
  expect(res.body.latency_ms).toBeLessThan(1500 + 1000);
});

test('When a sweep is still running, then a second sweep on the same instance is refused instead of overlapping', async () => {
  lb.set('slow', 'hang');
  await create(lb.url('slow'));
  const scheduler = svc.parts.health.scheduler;
  const first = scheduler.sweepHealth({ sweepId: 'overlap-1' });
  expect(await scheduler.sweepHealth({ sweepId: 'overlap-2' })).toBeNull();
  const done = await first;
  expect(done!.summary.claimed).toBeGreaterThan(0);
  expect(done!.summary.statuses.unhealthy).toBeGreaterThan(0);
  expect(svc.logs()).toMatch(/sweep skipped: the previous one is still running/);
});

test('When the entry is updated through the API while its probe is in flight, then both the update and the probe result are stored', async () => {
  // A registry that answers after 600 ms: the update lands between the check's read of the entry and its write.
  let answered = 0;
  const slow = await startFakeServer((_req, res) => {
    setTimeout(() => {
      answered++;
      res.writeHead(200, { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0' }).end('{}');
    }, 600);
  });
  try {
    const id = await create(slow.url);
    const check = call(svc.url, 'GET', `/check_container_health/${id}`);
    await new Promise((r) => setTimeout(r, 200));
    const updated = await call(svc.url, 'PUT', `/container_registry/${id}`, { $set: { 'container_registry_metadata.owner': 'changed-mid-probe' } });
    expect(updated.status).toBe(200);
    expect(answered).toBe(0);
    const checked = await check;
    expect(checked).toMatchObject({ status: 200, body: { status: 'healthy' } });
    const stored = await call(svc.url, 'GET', `/container_registry/${id}`);
    expect(stored.body.container_registry_metadata.owner).toBe('changed-mid-probe');
    expect(stored.body.container_registry_health).toEqual(checked.body);
    expect(stored.body.version).toBe(updated.body.version);
  } finally {
    await slow.close();
  }
});

test('When a registry answers with a huge API version and a challenge with a huge realm and service, then what is stored is cut to the schema bounds', async () => {
  const realm = `http://127.0.0.1:9/token?${'r'.repeat(8000)}`; // all headers together stay under undici's 16 KiB
  const huge = await startFakeServer((_req, res) => {
    res
      .writeHead(401, { 'Docker-Distribution-API-Version': `registry/${'9'.repeat(3000)}`, 'WWW-Authenticate': `Bearer realm="${realm}",service="${'s'.repeat(1500)}"` })
      .end('{}');
  });
  const id = await create(huge.url);
  const res = await call(svc.url, 'GET', `/check_container_health/${id}`).finally(() => huge.close());
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ status: 'healthy', auth_required: true });
  const stored = (await call(svc.url, 'GET', `/container_registry/${id}`)).body.container_registry_health;
  expect(stored.api_version).toHaveLength(128);
  expect(stored.api_version).toMatch(/^registry\/9+…$/);
  expect(stored.auth.realm).toHaveLength(2048);
  expect(stored.auth.realm.startsWith(realm.slice(0, 2047))).toBe(true);
  expect(stored.auth.service).toHaveLength(512);
  const [row] = await history(id);
  expect(JSON.stringify(row).length).toBeLessThan(6000);
});
