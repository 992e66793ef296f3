/**
 * Sweeps across three service instances sharing one database: claims, exactly-once probing, hanging
 * registries, and late workers whose ticket was superseded.
 */
import { call, startTestService, testDbName, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { ConfigError, loadConfig } from '../../src/config';
import type { ProbeResult } from '../../src/probe/types';
import { startLoopback, type Loopback } from './loopback';

// Long enough that a loopback registry answering at once is never timed out on a loaded 2-core machine (three
// replicas and their probes share this test's one event loop); the hanging ones cost one timeout each.
const TIMEOUT_MS = 4000;
const CONCURRENCY = 16;
let replicas: TestService[] = [];
let lb: Loopback;

beforeAll(async () => {
  const dbName = testDbName();
  const env = { PROBE_TIMEOUT_MS: String(TIMEOUT_MS), PROBE_CONCURRENCY: String(CONCURRENCY) };
  for (let i = 0; i < 3; i++) replicas.push(await startTestService(env, { dbName }));
  lb = await startLoopback();
});
afterAll(async () => {
  await lb?.close();
  for (const r of replicas) await r.close();
  replicas = [];
});

async function createMany(names: string[]): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  for (const name of names) {
    const res = await call(replicas[ids.size % 3]!.url, 'POST', '/container_registry', entry({ container_registry_name: name, container_registry_public_url: lb.url(name) }));
    expect(res.status).toBe(201);
    ids.set(name, res.body.container_registry_id);
  }
  return ids;
}

/**
 * The revision entry `id` is stored at: another replica's read asks for it (`min_revision`), since reads come
 * from each replica's view, which follows other replicas' writes within about FEED_POLL_MS.
 */
async function storedRevision(id: string): Promise<number> {
  return (await replicas[0]!.db.collection('container_registries').findOne({ _id: id as never }))!.revision as number;
}

async function sweepTogether(sweepId: string) {
  const outcomes = await Promise.all(replicas.map((r) => r.parts.health.scheduler.sweepHealth({ sweepId })));
  return outcomes.map((o) => {
    expect(o).not.toBeNull();
    return o!;
  });
}

/** Deletes every entry through the service (a delete behind the change log's back would be undone: the log is the truth). */
async function clearRegistries(): Promise<void> {
  const ids = await replicas[0]!.db.collection('container_registries').find({}, { projection: { _id: 1 } }).toArray();
  for (const { _id } of ids) expect((await call(replicas[0]!.url, 'DELETE', `/container_registry/${String(_id)}`)).status).toBe(204);
}

test('When three instances sweep together, then each registry is probed exactly once per sweep', async () => {
  await clearRegistries();
  const names = Array.from({ length: 40 }, (_, i) => `once-${i}`);
  const ids = await createMany(names);

  const first = await sweepTogether('test-once-1');
  expect(first.reduce((n, o) => n + o.summary.claimed, 0)).toBe(names.length);
  expect(first.reduce((n, o) => n + o.summary.written, 0)).toBe(names.length);
  for (const name of names) expect(lb.count(name)).toBe(1);
  // The replica finishing last stores the sweep's report, and it sees every result.
  expect(first.some((o) => o.report !== null)).toBe(true);
  const report = await call(replicas[2]!.url, 'GET', '/health_report');
  expect(report.body).toMatchObject({ report_id: 'test-once-1', sweep_probes: names.length, totals: { healthy: names.length, total: names.length } });

  // Firing the same sweep again (a late replica on the same tick) probes nothing.
  const again = await replicas[1]!.parts.health.scheduler.sweepHealth({ sweepId: 'test-once-1' });
  expect(again!.summary.claimed).toBe(0);
  for (const name of names) expect(lb.count(name)).toBe(1);

  const second = await sweepTogether('test-once-2');
  expect(second.reduce((n, o) => n + o.summary.claimed, 0)).toBe(names.length);
  for (const name of names) expect(lb.count(name)).toBe(2);

  const rows = await replicas[0]!.db.collection('container_registry_health_history').countDocuments({ registry_id: { $in: [...ids.values()] } });
  expect(rows).toBe(2 * names.length);
  const shares = second.map((o) => o.summary.claimed);
  process.stdout.write(`three replicas, ${names.length} registries: claims per replica ${JSON.stringify(first.map((o) => o.summary.claimed))}, ${JSON.stringify(shares)}\n`);
});

test('When 10 of 200 registries hang, then a sweep by three instances takes about one timeout more than the same sweep without them', async () => {
  await clearRegistries();
  const names = Array.from({ length: 200 }, (_, i) => `bulk-${i}`);
  const hanging = names.filter((_, i) => i % 20 === 7);
  expect(hanging).toHaveLength(10);
  const ids = await createMany(names);

  // The work itself (probes, claims and writes of 200 registries), measured by the sweeps themselves.
  const baseline = await sweepTogether('test-bulk-baseline');
  expect(baseline.reduce((n, o) => n + o.summary.claimed, 0)).toBe(200);
  const work = Math.max(...baseline.map((o) => o.summary.duration_ms));

  for (const name of hanging) lb.set(name, 'hang');
  const outcomes = await sweepTogether('test-bulk-hanging');
  const durations = outcomes.map((o) => o.summary.duration_ms);
  process.stdout.write(
    `sweep of 200 registries by 3 replicas (PROBE_TIMEOUT_MS=${TIMEOUT_MS}, PROBE_CONCURRENCY=${CONCURRENCY}): ` +
      `none hanging ${JSON.stringify(baseline.map((o) => o.summary.duration_ms))} ms; 10 hanging ${JSON.stringify(durations)} ms; ` +
      `claims ${JSON.stringify(outcomes.map((o) => o.summary.claimed))}; slowest item ${JSON.stringify(outcomes.map((o) => o.summary.slowest_ms))} ms\n`,
  );
  expect(outcomes.reduce((n, o) => n + o.summary.claimed, 0)).toBe(200);
  for (const name of names) expect(lb.count(name)).toBe(2);
  // Hanging registries add about one timeout (each holds one slot for at most its deadline, timeout + 1 s);
  // generous slack for a loaded machine, since the work itself varies from run to run.
  for (const d of durations) expect(d).toBeLessThan(work * 1.5 + TIMEOUT_MS + 1000 + 3000);

  const statuses = outcomes.reduce<Record<string, number>>((acc, o) => {
    for (const [k, v] of Object.entries(o.summary.statuses)) acc[k] = (acc[k] ?? 0) + v;
    return acc;
  }, {});
  const hungIds = hanging.map((n) => ids.get(n)!);
  // What a registry answering at once was marked when it was not healthy (shown when the next line fails).
  const others = await replicas[0]!.db.collection('container_registries').find({ _id: { $nin: hungIds }, 'container_registry_health.status': { $ne: 'healthy' } } as never).toArray();
  expect({ statuses, others: others.map((d) => d.container_registry_health) }).toEqual({ statuses: { healthy: 190, unhealthy: 10 }, others: [] });
  const stored = await replicas[0]!.db.collection('container_registries').find({ _id: { $in: hungIds } } as never).toArray();
  expect(stored.map((d) => d._id as unknown as string).sort()).toEqual([...hungIds].sort());
  for (const doc of stored) expect(doc.container_registry_health).toMatchObject({ status: 'unhealthy', error: 'timeout' });
}, 120_000);

test('When a late worker whose ticket was superseded writes, then its result is not stored', async () => {
  await clearRegistries();
  const ids = await createMany(['late-0']);
  const id = ids.get('late-0')!;
  const [a, b] = [replicas[0]!.parts.health, replicas[1]!.parts.health];

  // Worker A claims with a lease that runs out at once; worker B then claims the same registry in a newer sweep.
  const claimA = await a.leases.sweep('health', 'late-sweep-1', 1).claim(1);
  expect(claimA).toHaveLength(1);
  await new Promise((r) => setTimeout(r, 20));
  const claimB = await b.leases.sweep('health', 'late-sweep-2', 60_000).claim(1);
  expect(claimB).toHaveLength(1);
  expect(claimB[0]!.lease.ticket).not.toBe(claimA[0]!.lease.ticket);

  // While B holds its lease, nobody else can claim the registry.
  expect(await replicas[2]!.parts.health.leases.sweep('health', 'late-sweep-3', 60_000).claim(1)).toHaveLength(0);

  const result = (status: ProbeResult['status'], checkedAt: Date): ProbeResult => ({
    status,
    checked_at: checkedAt.toISOString(),
    latency_ms: 3,
    http_status: status === 'healthy' ? 200 : 500,
    api_version: 'registry/2.0',
    auth_required: false,
    auth: null,
    tls: null,
    error: status === 'healthy' ? null : 'http_error',
    detail: null,
  });
  const wB = await b.writer.writeHealth(id, result('healthy', new Date()), claimB[0]!.lease);
  expect(wB.written).toBe(true);
  // A's result is even newer in time, but its lease was taken over: it must not land.
  const wA = await a.writer.writeHealth(id, result('unhealthy', new Date(Date.now() + 1000)), claimA[0]!.lease);
  expect(wA).toMatchObject({ written: false, reason: 'superseded' });

  await Promise.all([a.writer.flushHistory(), b.writer.flushHistory()]);

  const stored = await call(replicas[2]!.url, 'GET', `/container_registry/${id}?min_revision=${await storedRevision(id)}`);
  expect(stored.body.container_registry_health).toMatchObject({ status: 'healthy', consecutive_failures: 0 });
  const rows = await replicas[0]!.db.collection('container_registry_health_history').find({ registry_id: id }).toArray();
  expect(rows.map((r) => r.status)).toEqual(['healthy']);
});

test('When three instances refresh storage together, then each registry is crawled once and only observed is written', async () => {
  await clearRegistries();
  const storage = { storage_type: 'fs', storage_size: 2048, memory_size: -1, registry_type: 'aios' };
  const ids = new Map<string, string>();
  for (const name of ['store-open', 'store-refused', 'store-other']) {
    const res = await call(replicas[0]!.url, 'POST', '/container_registry', entry({
      container_registry_name: name,
      container_registry_public_url: lb.url(name),
      container_registry_storage_info: storage,
    }));
    expect(res.status).toBe(201);
    ids.set(name, res.body.container_registry_id);
  }
  lb.set('store-refused', 'nocatalog');
  const before = await call(replicas[0]!.url, 'GET', `/container_registry/${ids.get('store-open')}`);

  const summaries = await Promise.all(replicas.map((r) => r.parts.health.scheduler.sweepStorage({ sweepId: 'test-storage-1' })));
  expect(summaries.reduce((n, s) => n + s!.claimed, 0)).toBe(3);
  for (const name of ids.keys()) expect(lb.count(`${name}#catalog`)).toBe(1);

  const open = await call(replicas[1]!.url, 'GET', `/container_registry/${ids.get('store-open')}?min_revision=${await storedRevision(ids.get('store-open')!)}`);
  expect(open.body.container_registry_storage_info).toMatchObject({ ...storage, observed: { catalog_supported: true, repository_count: 0, tag_count: 0, used_bytes: 0, truncated: false, error: null } });
  expect(open.headers.get('etag')).toBe(before.headers.get('etag'));
  const refused = await call(replicas[2]!.url, 'GET', `/container_registry/${ids.get('store-refused')}?min_revision=${await storedRevision(ids.get('store-refused')!)}`);
  expect(refused.body.container_registry_storage_info).toMatchObject({ ...storage, observed: { catalog_supported: false } });
  expect(refused.body.container_registry_storage_info.observed.repository_count).toBeUndefined();

  // A client update of the operator-set fields keeps what the refresh observed.
  const put = await call(replicas[0]!.url, 'PUT', `/container_registry/${ids.get('store-open')}`, { $set: { 'container_registry_storage_info.storage_size': 4096 } });
  expect(put.status).toBe(200);
  expect(put.body.container_registry_storage_info).toMatchObject({ storage_size: 4096, observed: { catalog_supported: true } });
});

test('When HEALTH_CRON is not a cron expression, then loading the config fails with a ConfigError naming it; off is no schedule', () => {
  expect(() => loadConfig({ HEALTH_CRON: 'every five minutes' })).toThrow(ConfigError);
  expect(() => loadConfig({ STORAGE_CRON: '61 * * * *' })).toThrow(/^STORAGE_CRON: must be a cron expression/);
  expect(loadConfig({ HEALTH_CRON: 'off', STORAGE_CRON: 'OFF' })).toMatchObject({ HEALTH_CRON: null, STORAGE_CRON: null });
  expect(loadConfig({}).HEALTH_CRON).toBe('*/5 * * * *');
});
