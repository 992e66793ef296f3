/**
 * Failed authentication is throttled per client address (issue 9 item 5): its own budget, counted in the
 * shared rate-limit collection (so two replicas share it), 429 + Retry-After over it, and a valid key from
 * the same address still served.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RATE_LIMITS } from '../../src/http/rate-limit-store';
import { call, startReplicas, type TestService } from '../support/service';
import { bearer, makeKeys } from './keys';

const FAILURES = 6;
const keys = makeKeys();
const env = {
  API_KEYS: keys.env,
  RATE_LIMIT_WINDOW_MS: '86400000',
  AUTH_FAILURE_LIMIT: String(FAILURES),
  RATE_LIMIT_SYNC_MS: '20',
};

let replicas: TestService[] = [];
let a: TestService;
let b: TestService;
beforeAll(async () => {
  replicas = await startReplicas(2, env);
  [a, b] = replicas as [TestService, TestService];
});
afterAll(() => Promise.all(replicas.map((r) => r.close())));

test('When one address sends wrong keys past its budget, then it gets 429 with Retry-After, on the other replica too, while a valid key still works', async () => {
  const statuses: number[] = [];
  for (let i = 0; i < FAILURES + 2; i++) statuses.push((await call(a.url, 'POST', '/container_registries', {}, bearer(keys.wrong))).status);
  expect(statuses).toEqual([...new Array(FAILURES).fill(401), 429, 429]);
  const over = await call(a.url, 'POST', '/container_registries', {}, { Authorization: 'Bearer not-a-key-at-all-xxxxxxxx' });
  expect(over.status).toBe(429);
  expect(over.headers.get('content-type')).toMatch(/application\/problem\+json/);
  expect(over.body).toMatchObject({ status: 429 });
  expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
  // No key at all is a failure too.
  expect((await call(a.url, 'POST', '/container_registries', {})).status).toBe(429);

  // A valid key from the same address is not locked out.
  expect((await call(a.url, 'POST', '/container_registries', {}, bearer(keys.reader))).status).toBe(200);

  // The failures reached the shared store: replica B refuses the same address once it has synced.
  for (;;) {
    const rows = await a.db.collection(RATE_LIMITS).find({ limiter: 'auth-failures:' }).toArray();
    if (rows.reduce((n, r) => n + Number(r.hits), 0) >= FAILURES) break;
    await sleep(10);
  }
  let fromB = 0;
  for (let i = 0; i < FAILURES && fromB !== 429; i++) {
    fromB = (await call(b.url, 'POST', '/container_registries', {}, bearer(keys.wrong))).status;
    await sleep(40); // pacing only, so that B's sync runs between requests
  }
  expect(fromB).toBe(429);
  expect((await call(b.url, 'POST', '/container_registries', {}, bearer(keys.admin))).status).toBe(200);
});
