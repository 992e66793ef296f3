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
  expect(checked.body).toMatchObject({ status: 'healthy', http_status: 200 });
  expect(lb.authorizations).toContain(`Basic ${Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64')}`);

  const outcome = await svc.parts.health.scheduler.sweepHealth({ sweepId: 'secret-sweep' });
  expect(outcome!.summary.statuses).toEqual({ healthy: 1 });
  await send(svc.url, 'GET', `/container_registry/${id}`);
  await send(svc.url, 'POST', '/container_registries', { container_registry_credentials: { $exists: true } });
  await send(svc.url, 'POST', '/container_registries', {});
  await send(svc.url, 'GET', '/health_report');
  await send(svc.url, 'PUT', `/container_registry/${id}`, { $set: { container_registry_credentials: { username: USERNAME, password: 42 } } });

  // Wrong credentials: degraded, and the failure detail does not echo what was sent.
  const wrong = await send(svc.url, 'PUT', `/container_registry/${id}`, { $set: { container_registry_credentials: { username: USERNAME, password: `${PASSWORD}-old` } } });
  expect(wrong.status).toBe(200);
  const refused = await send(svc.url, 'GET', `/check_container_health/${id}`);
  expect(refused.body).toMatchObject({ status: 'degraded', error: 'auth_failed' });

  const logs = svc.logs();
  expect(logs).toMatch(/health sweep finished/);
  const encoded = Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64');
  for (const text of [...texts, logs]) {
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(encoded);
  }
});
