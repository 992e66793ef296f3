/**
 * A password sent at create time is used by probes and sweeps but never appears in a response or a log line.
 */
import { call, startTestService, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { startLoopback, type Loopback } from './loopback';

const PASSWORD = 'pw-Zq7!never-shown-9f3c';
const USERNAME = 'prober';
let svc: TestService;
let lb: Loopback;

beforeAll(async () => {
  svc = await startTestService({ PROBE_TIMEOUT_MS: '1500', LOG_LEVEL: 'debug' });
  lb = await startLoopback('basic', { username: USERNAME, password: PASSWORD });
});
afterAll(async () => {
  await lb?.close();
  await svc?.close();
});

test('When a password is sent at create time, then it never appears in any response or any log line', async () => {
  const texts: string[] = [];
  const send = async (...args: Parameters<typeof call>) => {
    const res = await call(...args);
    texts.push(res.text, JSON.stringify([...res.headers.entries()]));
    return res;
  };
  const created = await send(svc.url, 'POST', '/container_registry', entry({
    container_registry_public_url: lb.url('secret'),
    container_registry_credentials: { username: USERNAME, password: PASSWORD },
  }));
  expect(created.status).toBe(201);
  const id = created.body.container_registry_id;
  expect(created.body.container_registry_credentials).toEqual({ username: USERNAME, password_set: true });

  // Without the credentials the registry would say 401 + challenge; with them the probe is healthy.
  const checked = await send(svc.url, 'GET', `/check_container_health/${id}`);
  expect(checked.status).toBe(200);
  expect(checked.body).toMatchObject({ status: 'healthy', http_status: 200 });
  expect(lb.authorizations).toContain(`Basic ${Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64')}`);

  const outcome = await svc.parts.health.scheduler.sweepHealth({ sweepId: 'secret-sweep' });
  expect(outcome!.summary.statuses).toEqual({ healthy: 1 });
  const got = await send(svc.url, 'GET', `/container_registry/${id}`);
  expect(got.status).toBe(200);
  expect(got.body.container_registry_credentials).toEqual({ username: USERNAME, password_set: true });
  const withCreds = await send(svc.url, 'POST', '/container_registries', { container_registry_credentials: { $exists: true } });
  // Credentials are write-only: not a queryable field.
  expect(withCreds.status).toBe(400);
  expect(withCreds.body.errors[0].path).toMatch(/container_registry_credentials/);
  const all = await send(svc.url, 'POST', '/container_registries', {});
  expect(all.status).toBe(200);
  expect(all.body).toHaveLength(1);
  expect(all.body[0].container_registry_credentials).toEqual({ username: USERNAME, password_set: true });
  const report = await send(svc.url, 'GET', '/health_report');
  expect(report.status).toBe(200);
  expect(report.body.totals).toMatchObject({ healthy: 1, total: 1 });
  const notAString = await send(svc.url, 'PUT', `/container_registry/${id}`, { $set: { container_registry_credentials: { username: USERNAME, password: 42 } } });
  expect(notAString.status).toBe(400);
  expect(notAString.body.errors).toEqual([expect.objectContaining({ path: '/container_registry_credentials/password' })]);
  // The refused update changed nothing: the stored password still works.
  expect((await send(svc.url, 'GET', `/check_container_health/${id}`)).body).toMatchObject({ status: 'healthy' });

  // Wrong credentials: degraded, and the failure detail does not echo what was sent.
  const wrong = await send(svc.url, 'PUT', `/container_registry/${id}`, { $set: { container_registry_credentials: { username: USERNAME, password: `${PASSWORD}-old` } } });
  expect(wrong.status).toBe(200);
  const refused = await send(svc.url, 'GET', `/check_container_health/${id}`);
  expect(refused.status).toBe(200);
  expect(refused.body).toMatchObject({ status: 'degraded', error: 'auth_failed' });

  const logs = svc.logs();
  expect(logs).toMatch(/health sweep finished/);
  const encoded = Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64');
  for (const text of [...texts, logs]) {
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(encoded);
  }
});
