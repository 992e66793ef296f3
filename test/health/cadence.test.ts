/**
 * Probe cadence (SPEC 16): `container_registry_config.health_check_interval_s` makes sweeps skip a
 * registry probed more recently; a `rate_limited` registry is not swept again before its Retry-After.
 */
import { call, startTestService, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { closeAllFakeServers, startFakeServer } from '../support/fake-servers';
import { startLoopback, type Loopback } from './loopback';

let svc: TestService;
let loop: Loopback;

beforeAll(async () => {
  svc = await startTestService();
  loop = await startLoopback('registry');
}, 60_000);
afterAll(async () => {
  await loop?.close();
  await closeAllFakeServers();
  await svc?.close();
});

const sweep = (id: string) => svc.parts.health.scheduler.sweepHealth({ sweepId: id });

test('When a registry has health_check_interval_s, then a sweep within the interval skips it while the others are probed', async () => {
  const slow = (await call(svc.url, 'POST', '/container_registry', entry({ container_registry_public_url: loop.url('slow'), container_registry_config: { health_check_interval_s: 3600 } }))).body;
  await call(svc.url, 'POST', '/container_registry', entry({ container_registry_public_url: loop.url('every') }));
  await sweep('cadence-1');
  expect([loop.count('slow'), loop.count('every')]).toEqual([1, 1]);
  const second = await sweep('cadence-2');
  expect([loop.count('slow'), loop.count('every')]).toEqual([1, 2]);
  expect(second!.summary.statuses).toMatchObject({ not_due: 1, healthy: 1 });
  // An on-demand check is always run.
  expect((await call(svc.url, 'GET', `/check_container_health/${slow.container_registry_id}`)).status).toBe(200);
  expect(loop.count('slow')).toBe(2);

  const bad = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_config: { health_check_interval_s: 10 } }));
  expect(bad.status).toBe(400);
  expect(bad.body.errors[0].path).toBe('/container_registry_config/health_check_interval_s');
});

test('When a registry answers 429 with Retry-After, then the health result stores the time and sweeps leave it alone until then', async () => {
  let retryAfter = '3600';
  const limited = await startFakeServer((_req, res) => {
    res.writeHead(429, { 'Retry-After': retryAfter, 'Content-Type': 'application/json' }).end('{"errors":[{"code":"TOOMANYREQUESTS"}]}');
  });
  const id = (await call(svc.url, 'POST', '/container_registry', entry({ container_registry_public_url: limited.url }))).body.container_registry_id;
  const checked = await call(svc.url, 'GET', `/check_container_health/${id}`);
  expect(checked.body).toMatchObject({ status: 'degraded', error: 'rate_limited' });
  const until = Date.parse(checked.body.retry_after);
  expect(Math.abs(until - (Date.now() + 3600_000))).toBeLessThan(60_000);
  const seen = limited.requests.length;
  await sweep('rate-1');
  expect(limited.requests.length).toBe(seen);

  // A short Retry-After: swept again once it passed.
  retryAfter = '1';
  await call(svc.url, 'GET', `/check_container_health/${id}`);
  const now = limited.requests.length;
  await new Promise((r) => setTimeout(r, 1100));
  await sweep('rate-2');
  expect(limited.requests.length).toBe(now + 1);
});
