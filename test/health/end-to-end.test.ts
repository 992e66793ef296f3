/**
 * One path end to end against a real registry (Debian's docker-registry with htpasswd), no fake in the
 * chain: the HTTP route, the checker, the result writer and its history, a sweep, and the health report.
 * The registry is then stopped, and the same path records the outage.
 */
import { call, startTestService, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { ensureTestDeps, startRegistry, stopAllRegistries, type RunningRegistry } from '../support/registries';

let svc: TestService;
let registry: RunningRegistry;

beforeAll(async () => {
  ensureTestDeps();
  svc = await startTestService({ PROBE_TIMEOUT_MS: '3000' });
  registry = await startRegistry({ auth: 'htpasswd' });
}, 60_000);
afterAll(async () => {
  await stopAllRegistries();
  await svc?.close();
});

test('When a real registry is checked through the route and swept, then the entry, its history and the report say what the registry did, up and then down', async () => {
  const created = await call(svc.url, 'POST', '/container_registry', entry({
    container_registry_name: 'e2e-real-registry',
    container_registry_public_url: registry.url,
    container_registry_credentials: registry.credentials,
  }));
  expect(created.status).toBe(201);
  const id = created.body.container_registry_id as string;
  const history = svc.db.collection('container_registry_health_history');

  // Route → checker → prober (Basic with the stored credentials) → writer.
  const checked = await call(svc.url, 'GET', `/check_container_health/${id}`);
  expect(checked.status).toBe(200);
  expect(checked.body).toMatchObject({ status: 'healthy', http_status: 200, api_version: 'registry/2.0', auth_required: true, error: null });
  const stored = (await call(svc.url, 'GET', `/container_registry/${id}`)).body;
  expect(stored.container_registry_health).toMatchObject({ status: 'healthy', http_status: 200, consecutive_failures: 0, checked_at: checked.body.checked_at });
  expect(stored.version).toBe(1); // a probe is not a client write
  expect(await history.find({ registry_id: id }).toArray()).toEqual([expect.objectContaining({ status: 'healthy', http_status: 200, error: null })]);

  // A sweep probes it again and stores the report that /health_report serves.
  const up = await svc.parts.health.scheduler.sweepHealth({ sweepId: 'e2e-up' });
  expect(up!.summary.statuses).toEqual({ healthy: 1 });
  const report = (await call(svc.url, 'GET', '/health_report')).body;
  expect(report).toMatchObject({ report_id: 'e2e-up', totals: { healthy: 1, total: 1 } });
  expect(report.registries).toEqual([expect.objectContaining({ container_registry_id: id, status: 'healthy', probes_24h: 2, uptime_24h: 1, consecutive_failures: 0, last_error: null })]);

  // The registry goes away: the same path records it, and the next report shows the failure.
  await registry.stop();
  const down = await call(svc.url, 'GET', `/check_container_health/${id}`);
  expect(down.body).toMatchObject({ status: 'unhealthy', error: 'connection_refused', http_status: null });
  await svc.parts.health.scheduler.sweepHealth({ sweepId: 'e2e-down' });
  const after = (await call(svc.url, 'GET', '/health_report')).body;
  const row = after.registries.find((r: { container_registry_id: string }) => r.container_registry_id === id);
  expect(row).toMatchObject({ status: 'unhealthy', probes_24h: 4, uptime_24h: 0.5, consecutive_failures: 2, last_error: { error: 'connection_refused' } });
  const doc = (await call(svc.url, 'GET', `/container_registry/${id}`)).body;
  expect(doc.container_registry_health).toMatchObject({ status: 'unhealthy', consecutive_failures: 2, last_healthy_at: expect.any(String) });
  expect(row.last_status_change_at).toBe(doc.container_registry_health.last_status_change_at);
  expect(await history.countDocuments({ registry_id: id })).toBe(4);
});
