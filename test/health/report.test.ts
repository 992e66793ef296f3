/**
 * History pruning and health reports, checked against the history rows in the real database.
 */
import type { Collection } from 'mongodb';
import { call, startTestService, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { startLoopback, type Loopback } from './loopback';

const DAY = 86_400_000;
let svc: TestService;
let lb: Loopback;
let history: Collection;

beforeAll(async () => {
  svc = await startTestService({ PROBE_TIMEOUT_MS: '1500', HEALTH_HISTORY_DAYS: '7' });
  lb = await startLoopback();
  history = svc.db.collection('container_registry_health_history');
});
afterAll(async () => {
  await lb?.close();
  await svc?.close();
});

async function create(name: string): Promise<string> {
  const res = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: name, container_registry_public_url: lb.url(name) }));
  expect(res.status).toBe(201);
  return res.body.container_registry_id;
}

function row(id: string, agoMs: number, status: string, latency: number, error: string | null = null) {
  return {
    registry_id: id,
    checked_at: new Date(Date.now() - agoMs),
    status,
    latency_ms: latency,
    http_status: status === 'unhealthy' && error === 'timeout' ? null : status === 'healthy' ? 200 : 503,
    error,
    detail: error ? `detail of ${error}` : null,
  };
}

test('When no report is stored yet, then /health_report computes one on demand', async () => {
  await create('fresh');
  const res = await call(svc.url, 'GET', '/health_report');
  expect(res.status).toBe(200);
  expect(res.body.sweep).toBeNull();
  expect(res.body.totals).toMatchObject({ unknown: 1, total: 1 });
  expect(res.body.registries[0]).toMatchObject({ status: 'unknown', uptime_24h: null, probes_7d: 0, latency_p50_ms: null });
});

test('When history is pruned, then only rows older than the retention are removed', async () => {
  const id = 'prune-target';
  await history.insertMany([row(id, 9 * DAY, 'healthy', 5), row(id, 7 * DAY + 60_000, 'healthy', 5), row(id, 7 * DAY - 60_000, 'healthy', 5), row(id, 1000, 'healthy', 5)]);
  const removed = await svc.parts.health.writer.pruneHistory();
  expect(removed).toBe(2);
  const left = await history.find({ registry_id: id }).toArray();
  expect(left).toHaveLength(2);
  for (const r of left) expect((r.checked_at as Date).getTime()).toBeGreaterThan(Date.now() - 7 * DAY);
  await history.deleteMany({ registry_id: id });
});

function nearestRank(sorted: number[], p: number): number | null {
  return sorted.length === 0 ? null : sorted[Math.ceil((p / 100) * sorted.length) - 1]!;
}

test('When a sweep finishes, then the stored report and /health_report figures match the history', async () => {
  const a = await create('steady');
  const b = await create('shaky');
  lb.set('shaky', 'error500');
  await history.insertMany([
    row(a, 2 * DAY, 'unhealthy', 1500, 'timeout'),
    row(a, 3 * DAY, 'healthy', 40),
    row(a, 2 * 3600_000, 'healthy', 10),
    row(a, 3600_000, 'degraded', 30, 'rate_limited'),
    row(b, 5 * DAY, 'healthy', 20),
    row(b, 8 * DAY, 'healthy', 20), // beyond the window: pruned by the sweep
    row(b, 3600_000, 'unhealthy', 1500, 'timeout'),
  ]);
  const outcome = await svc.parts.health.scheduler.sweepHealth({ sweepId: 'report-sweep' });
  expect(outcome).not.toBeNull();
  expect(svc.logs()).toMatch(/"message":"health sweep finished".*"sweep_id":"report-sweep"/);

  const res = await call(svc.url, 'GET', '/health_report');
  expect(res.status).toBe(200);
  const report = res.body;
  expect(report.report_id).toBe('report-sweep');
  expect(report.sweep).toMatchObject({ sweep_id: 'report-sweep', claimed: 3 });
  expect(report.totals).toEqual({ healthy: 2, degraded: 0, unhealthy: 1, unknown: 0, total: 3 });

  const now = Date.parse(report.generated_at);
  // The 8-day row is gone (pruned by the sweep); b keeps its 5-day and 1-hour rows plus this sweep's probe.
  const ofB = await history.find({ registry_id: b }).toArray();
  expect(ofB.filter((r) => (r.checked_at as Date).getTime() < now - 7 * DAY)).toEqual([]);
  expect(ofB).toHaveLength(3);
  const rows = await history.find({ checked_at: { $gte: new Date(now - 7 * DAY) } }).toArray();
  for (const id of [a, b]) {
    const mine = rows.filter((r) => r.registry_id === id && (r.checked_at as Date).getTime() <= now);
    const day = mine.filter((r) => (r.checked_at as Date).getTime() >= now - DAY);
    const up = (list: typeof mine) => Math.round((list.filter((r) => r.status !== 'unhealthy').length / list.length) * 10_000) / 10_000;
    const lat = day.filter((r) => r.http_status !== null).map((r) => r.latency_ms as number).sort((x, y) => x - y);
    const errors = mine.filter((r) => r.error !== null).sort((x, y) => (y.checked_at as Date).getTime() - (x.checked_at as Date).getTime());
    const doc = (await call(svc.url, 'GET', `/container_registry/${id}`)).body;
    const entryReport = report.registries.find((r: { container_registry_id: string }) => r.container_registry_id === id);
    expect(entryReport).toEqual({
      container_registry_id: id,
      container_registry_name: doc.container_registry_name,
      status: doc.container_registry_health.status,
      uptime_24h: up(day),
      uptime_7d: up(mine),
      probes_24h: day.length,
      probes_7d: mine.length,
      latency_p50_ms: nearestRank(lat, 50),
      latency_p95_ms: nearestRank(lat, 95),
      consecutive_failures: doc.container_registry_health.consecutive_failures,
      last_error: errors[0] ? { error: errors[0].error, detail: errors[0].detail, at: (errors[0].checked_at as Date).toISOString() } : null,
      last_status_change_at: doc.container_registry_health.last_status_change_at,
    });
  }
  const steady = report.registries.find((r: { container_registry_id: string }) => r.container_registry_id === a);
  expect(steady).toMatchObject({ probes_7d: 5, probes_24h: 3, uptime_7d: 0.8, uptime_24h: 1 });
  const shaky = report.registries.find((r: { container_registry_id: string }) => r.container_registry_id === b);
  expect(shaky).toMatchObject({ status: 'unhealthy', probes_7d: 3, uptime_24h: 0, last_error: { error: 'http_error' } });
});
