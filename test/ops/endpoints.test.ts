/**
 * Liveness, readiness and metrics: /healthz answers while the process runs; /readyz pings the database and
 * answers 503 problem+json once it cannot be reached; /metrics serves Prometheus text with request counts
 * and latency histograms by route template and status, probe outcomes and process metrics.
 */
import { buildOpenApi } from '../../src/openapi';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';

describe('Liveness, readiness and metrics', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(() => svc.close());

  test('When the database answers, then /healthz and /readyz are 200', async () => {
    expect(await call(svc.url, 'GET', '/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await call(svc.url, 'GET', '/readyz')).toMatchObject({ status: 200, body: { status: 'ready' } });
  });

  test('When routes are called and a registry probed, then /metrics counts them by route template and status, with latency histograms, probe outcomes and process metrics', async () => {
    const created = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_public_url: 'http://127.0.0.1:9' }));
    const id = created.body.container_registry_id as string;
    expect((await call(svc.url, 'GET', `/container_registry/${id}`)).status).toBe(200);
    expect((await call(svc.url, 'GET', '/container_registry/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await call(svc.url, 'GET', `/check_container_health/${id}`)).body.status).toBe('unhealthy');

    const res = await call(svc.url, 'GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.text;
    expect(text).toMatch(/registry_db_http_requests_total\{method="GET",route="\/container_registry\/:id",status="200"\} [1-9]/);
    expect(text).toMatch(/registry_db_http_requests_total\{method="GET",route="\/container_registry\/:id",status="404"\} [1-9]/);
    expect(text).toMatch(/registry_db_http_requests_total\{method="POST",route="\/container_registry",status="201"\} [1-9]/);
    expect(text).toMatch(/registry_db_http_request_duration_seconds_bucket\{le="0\.1",method="GET",route="\/container_registry\/:id",status="200"\}/);
    expect(text).toMatch(/registry_db_probes_total\{status="unhealthy",error="[a-z_]+"\} [1-9]/);
    expect(text).toMatch(/# TYPE registry_db_sweep_duration_seconds histogram/);
    expect(text).toMatch(/process_cpu_user_seconds_total/);
    expect(text).toMatch(/nodejs_eventloop_lag_seconds/);
    // Ids never become labels of the request and probe metrics (only the per-registry series carry them, SPEC 16).
    const perRegistry = /^registry_db_registry_(status|probe_latency_seconds|last_success_timestamp_seconds)\{/;
    expect(text.split('\n').filter((l) => !perRegistry.test(l)).join('\n')).not.toContain(id);
    expect(text).toContain(`registry_id="${id}"`);
  });

  test('When the database client is closed under requests in flight and connected again (what the reconnect watchdog does), then each request is a 200 or a 503 problem, never a 500, and the service answers again', async () => {
    const created = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_public_url: 'http://127.0.0.1:9' }));
    const id = created.body.container_registry_id as string;
    // Enough entries that a scanning query is still running on the server when the client closes.
    await svc.db.collection('container_registries').insertMany(
      Array.from({ length: 5000 }, (_, i) => ({ _id: `filler-${i}`, container_registry_name: `filler-${i}`, _name_key: `/filler-${i}`, pad: 'x'.repeat(300) })) as never[],
    );
    const inFlight = Array.from({ length: 40 }, (_, i) =>
      i % 4 === 0
        ? call(svc.url, 'PUT', `/container_registry/${id}`, { $set: { 'container_registry_metadata.owner': `t${i}` } })
        : i % 4 === 1
          ? call(svc.url, 'POST', '/container_registries', { container_registry_name: { $regex: 'no-such-name' } })
          : call(svc.url, 'GET', `/container_registry/${id}`),
    );
    await new Promise((r) => setTimeout(r, 30));
    await svc.client.close();
    const answers = await Promise.all(inFlight);
    const statuses = answers.map((a) => a.status);
    // No request here sends If-Match, so 412 cannot occur: every answer is a 200 or a 503.
    expect(statuses.filter((s) => ![200, 503].includes(s))).toEqual([]);
    expect(statuses).toContain(503);
    for (const a of answers.filter((x) => x.status === 503)) expect(a.headers.get('content-type')).toMatch(/application\/problem\+json/);
    await svc.client.connect();
    expect((await call(svc.url, 'GET', `/container_registry/${id}`)).status).toBe(200);
  });

  test('When the database connection is gone, then /readyz is a 503 problem and /healthz still 200', async () => {
    await svc.client.close();
    const ready = await call(svc.url, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(ready.body).toMatchObject({ status: 503, title: 'Service unavailable' });
    expect(ready.headers.get('retry-after')).toBeTruthy();
    expect((await call(svc.url, 'GET', '/healthz')).status).toBe(200);
  });
});

describe('Methods', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(() => svc.close());

  test('When a documented path is called with a method it does not take, then the answer is a 405 problem whose Allow lists the methods the OpenAPI document gives it', async () => {
    const doc = buildOpenApi('test') as { paths: Record<string, Record<string, unknown>> };
    const verbs = ['get', 'head', 'post', 'put', 'delete', 'patch'];
    const checked: string[] = [];
    for (const [template, ops] of Object.entries(doc.paths)) {
      const path = template.replace(/\{[^}]+\}/g, 'x');
      const documented = verbs.filter((v) => v in ops).map((v) => v.toUpperCase());
      const allowed = new Set([...documented, ...(documented.includes('GET') ? ['HEAD'] : [])]);
      const r = await call(svc.url, 'PATCH', path, {});
      expect([path, r.status, r.headers.get('content-type')]).toEqual([path, 405, expect.stringContaining('application/problem+json')]);
      expect([path, new Set(r.headers.get('allow')!.split(/,\s*/))]).toEqual([path, allowed]);
      checked.push(path);
    }
    expect(checked).toEqual(expect.arrayContaining(['/peers', '/webhooks/x/deliveries', '/container_registries/changes', '/whoami']));
  });
});
