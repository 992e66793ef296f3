/**
 * Per-registry series in /metrics (SPEC 16), computed from the catalog view: two replicas report the same
 * values whichever replica probed; a deleted entry's series are gone; METRICS_MAX_REGISTRIES caps them.
 */
import { call, startTestService, testDbName, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { eventually } from '../support/webhook-receiver';
import { ensureTestDeps, startRegistry, stopAllRegistries } from '../support/registries';

const services: TestService[] = [];
afterAll(async () => {
  await stopAllRegistries();
  for (const s of services.reverse()) await s.close({ keepDatabase: s !== services[services.length - 1] });
});

const perRegistry = async (s: TestService) =>
  (await call(s.url, 'GET', '/metrics')).text
    .split('\n')
    .filter((l) => /^registry_db_registry_/.test(l))
    .sort();

test('When one replica probes, then both replicas report the same per-registry series; a deleted entry loses its series; the cap holds', async () => {
  ensureTestDeps();
  const registry = await startRegistry();
  const dbName = testDbName();
  const a = await startTestService({}, { dbName });
  services.push(a);
  const b = await startTestService({}, { dbName });
  services.push(b);
  const up = (await call(a.url, 'POST', '/container_registry', entry({ container_registry_name: 'm-up', container_registry_public_url: registry.url }))).body.container_registry_id;
  const down = (await call(a.url, 'POST', '/container_registry', entry({ container_registry_name: 'm-down', container_registry_public_url: 'http://127.0.0.1:9' }))).body.container_registry_id;
  expect((await call(a.url, 'GET', `/check_container_health/${up}`)).body.status).toBe('healthy');
  expect((await call(a.url, 'GET', `/check_container_health/${down}`)).body.status).toBe('unhealthy');
  // Both views reach the probes' revisions (b reads a's writes from the change log within FEED_POLL_MS).
  const probed = (lines: string[]) => lines.some((l) => l.includes(down) && l.endsWith('status="unhealthy"} 1')) && lines.some((l) => l.includes(up) && l.endsWith('status="healthy"} 1'));
  await eventually(async () => probed(await perRegistry(a)) && probed(await perRegistry(b)), 5000);

  const seenA = await perRegistry(a);
  expect(seenA).toEqual(await perRegistry(b));
  const labels = (id: string, name: string) => `registry_id="${id}",registry_name="${name}"`;
  expect(seenA).toEqual(
    expect.arrayContaining([
      `registry_db_registry_status{${labels(up, 'm-up')},status="healthy"} 1`,
      `registry_db_registry_status{${labels(up, 'm-up')},status="unhealthy"} 0`,
      `registry_db_registry_status{${labels(down, 'm-down')},status="unhealthy"} 1`,
      `registry_db_registry_status{${labels(down, 'm-down')},status="healthy"} 0`,
      'registry_db_registry_series_dropped 0',
    ]),
  );
  expect(seenA.some((l) => l.startsWith(`registry_db_registry_probe_latency_seconds{${labels(up, 'm-up')}} `))).toBe(true);
  const success = seenA.find((l) => l.startsWith(`registry_db_registry_last_success_timestamp_seconds{${labels(up, 'm-up')}} `));
  expect(Math.abs(Number(success!.split(' ')[1]) - Date.now() / 1000)).toBeLessThan(120);
  expect(seenA.some((l) => l.startsWith(`registry_db_registry_last_success_timestamp_seconds{${labels(down, 'm-down')}}`))).toBe(false);

  // Deleted on one replica: gone from both.
  expect((await call(b.url, 'DELETE', `/container_registry/${down}`)).status).toBe(204);
  await a.parts.feed.waitFor(b.parts.feed.acked, 5000);
  for (const s of [a, b]) {
    const lines = await perRegistry(s);
    expect(lines.some((l) => l.includes(down))).toBe(false);
    expect(lines.some((l) => l.includes(up))).toBe(true);
  }

  // The cap: a third replica allowed one registry reports one, and counts the other as dropped.
  await call(a.url, 'POST', '/container_registry', entry({ container_registry_name: 'm-third' }));
  const capped = await startTestService({ METRICS_MAX_REGISTRIES: '1' }, { dbName });
  services.push(capped);
  await capped.parts.feed.waitFor(a.parts.feed.acked, 5000);
  const lines = await perRegistry(capped);
  const ids = new Set(lines.flatMap((l) => /registry_id="([^"]+)"/.exec(l)?.[1] ?? []));
  expect(ids.size).toBe(1);
  expect(lines).toContain('registry_db_registry_series_dropped 1');
}, 60_000);
