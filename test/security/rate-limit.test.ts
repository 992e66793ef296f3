/**
 * Rate limits shared by replicas: two service instances on one database count one budget per client; over
 * it, 429 problem+json with the draft-8 `RateLimit` headers and `Retry-After`; a tighter budget on probes.
 * Windows are one day long (aligned to UTC midnight) so that no window ends during the test.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { RATE_LIMITS } from '../../src/http/rate-limit-store';
import { entry } from '../support/entries';
import { call, startTestService, testDbName, type TestService } from '../support/service';
import { bearer, makeKeys } from './keys';

const BUDGET = 20;
const PROBE_BUDGET = 2;
const keys = makeKeys();
/** Used by one test only, so that no count of another test is still on its way to the database. */
const burstKey = `burst-${randomBytes(18).toString('base64url')}`;
const env = {
  API_KEYS: `${keys.env},reader:${burstKey}`,
  RATE_LIMIT_WINDOW_MS: '86400000',
  RATE_LIMIT_MAX: String(BUDGET),
  PROBE_RATE_LIMIT_MAX: String(PROBE_BUDGET),
  RATE_LIMIT_SYNC_MS: '20',
};

let a: TestService;
let b: TestService;
beforeAll(async () => {
  const dbName = testDbName();
  a = await startTestService(env, { dbName });
  b = await startTestService(env, { dbName });
});
afterAll(async () => {
  await a.close();
  await b.close();
});

/** Waits until the shared counter of a client reaches `hits` in the database (replica A has synced). */
async function sharedHits(limiter: string, atLeast: number): Promise<void> {
  for (;;) {
    const rows = await a.db.collection(RATE_LIMITS).find({ limiter: `${limiter}:` }).toArray();
    if (rows.reduce((n, r) => n + Number(r.hits), 0) >= atLeast) return;
    await sleep(10);
  }
}

test('When two replicas on one database serve one client, then requests over the combined budget get 429', async () => {
  const asReader = bearer(keys.reader);
  for (let i = 1; i <= BUDGET; i++) {
    const res = await call(a.url, 'POST', '/container_registries', {}, asReader);
    expect(res.status).toBe(200);
    expect(res.headers.get('ratelimit')).toBe(`"default"; r=${BUDGET - i}; t=${res.headers.get('ratelimit')!.split('t=')[1]}`);
    expect(res.headers.get('ratelimit-policy')).toMatch(new RegExp(`^"default"; q=${BUDGET}; w=86400; pk=:`));
  }
  const over = await call(a.url, 'POST', '/container_registries', {}, asReader);
  expect(over.status).toBe(429);
  expect(over.headers.get('content-type')).toMatch(/application\/problem\+json/);
  expect(over.body).toMatchObject({ status: 429, title: 'Too many requests' });
  expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);

  // Replica A's counts reach the database; replica B then refuses the same client although B itself
  // served (almost) nothing: at most what it admitted before its first sync (the documented bound).
  await sharedHits('default', BUDGET);
  let servedByB = 0;
  let refusedByB = 0;
  for (let i = 0; i < BUDGET && refusedByB === 0; i++) {
    const res = await call(b.url, 'POST', '/container_registries', {}, asReader);
    if (res.status === 200) servedByB++;
    else if (res.status === 429) refusedByB++;
    else throw new Error(`unexpected ${res.status}`);
    await sleep(40); // pacing only, so that B's sync runs between requests; nothing asserts on time
  }
  expect(refusedByB).toBe(1);
  expect(servedByB).toBeLessThan(BUDGET / 2);

  // Another client (another key) has its own budget on both replicas.
  expect((await call(b.url, 'POST', '/container_registries', {}, bearer(keys.admin))).status).toBe(200);
});

test('When two replicas count one client at the same time, then the shared count loses no request', async () => {
  const keyId = createHash('sha256').update(burstKey).digest('hex').slice(0, 16);
  const total = async () =>
    (await a.db.collection(RATE_LIMITS).find({ limiter: 'default:', key: `key:${keyId}` }).toArray()).reduce((n, r) => n + Number(r.hits), 0);
  const burst = 40;
  const statuses = await Promise.all(
    Array.from({ length: burst }, (_, i) => call(i % 2 ? a.url : b.url, 'POST', '/container_registries', {}, bearer(burstKey)).then((r) => r.status)),
  );
  expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
  // Both replicas sync within RATE_LIMIT_SYNC_MS; a lost update would leave the total short forever (and time out).
  while ((await total()) < burst) await sleep(10);
  expect(await total()).toBe(burst);
});

test('When a client probes more often than the probe budget, then the extra probes get 429 while other routes still answer', async () => {
  const asWriter = bearer(keys.writer);
  const created = await call(a.url, 'POST', '/container_registry', entry({ container_registry_public_url: 'http://127.0.0.1:9' }), asWriter);
  expect(created.status).toBe(201);
  const id = created.body.container_registry_id as string;
  for (let i = 0; i < PROBE_BUDGET; i++) expect((await call(a.url, 'GET', `/check_container_health/${id}`, undefined, asWriter)).status).toBe(200);
  const over = await call(a.url, 'GET', `/check_container_health/${id}`, undefined, asWriter);
  expect(over.status).toBe(429);
  expect(over.body.detail).toMatch(/"probe"/);
  expect(over.headers.get('ratelimit')).toMatch(/"probe"; r=0/);
  expect((await call(a.url, 'GET', `/container_registry/${id}`, undefined, asWriter)).status).toBe(200);
});

test('When three replicas that have not synced for a while take a burst of probes from one client, then no more than the probe budget is admitted in all', async () => {
  const budget = 12;
  const dbName = testDbName();
  // Periodic syncs far apart: only the decision on the database can keep the replicas within the budget.
  const strictEnv = { ...env, PROBE_RATE_LIMIT_MAX: String(budget), RATE_LIMIT_SYNC_MS: '10000' };
  const replicas = [await startTestService(strictEnv, { dbName }), await startTestService(strictEnv, { dbName }), await startTestService(strictEnv, { dbName })];
  try {
    const asWriter = bearer(keys.writer);
    const created = await call(replicas[0]!.url, 'POST', '/container_registry', entry({ container_registry_public_url: 'http://127.0.0.1:9' }), asWriter);
    const id = created.body.container_registry_id as string;
    const statuses = await Promise.all(Array.from({ length: 60 }, (_, i) => call(replicas[i % 3]!.url, 'GET', `/check_container_health/${id}`, undefined, asWriter).then((r) => r.status)));
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(budget);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
  } finally {
    for (const r of replicas) await r.close();
  }
});
