/**
 * GET /container_registry/:id/health_history (the status page's chart): one registry's probes in a window,
 * oldest first, bounded by `limit`, from the real history collection; bad `since`/`limit` are 400s naming
 * the parameter; unknown ids are 404; readers may read it.
 */
import type { Collection } from 'mongodb';
import { HISTORY_MAX_LIMIT, parseHistoryWindow } from '../../src/health/history';
import { InputError } from '../../src/errors';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';
import { bearer, makeKeys } from '../security/keys';
import { refusedUrl, startLoopback, type Loopback } from './loopback';

const DAY = 86_400_000;
const keys = makeKeys();
let svc: TestService;
let lb: Loopback;
let history: Collection;

beforeAll(async () => {
  svc = await startTestService({ API_KEYS: keys.env, HEALTH_HISTORY_DAYS: '7' });
  lb = await startLoopback();
  history = svc.db.collection('container_registry_health_history');
});
afterAll(async () => {
  await lb?.close();
  await svc?.close();
});

const admin = bearer(keys.admin);

async function create(name: string, url: string): Promise<string> {
  const res = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: name, container_registry_public_url: url }), admin);
  expect(res.status).toBe(201);
  return res.body.container_registry_id;
}

describe('parseHistoryWindow', () => {
  const now = new Date('2026-12-03T12:00:00Z');
  test('When nothing is given, then the window is the kept history and the default limit', () => {
    expect(parseHistoryWindow({}, now, 7)).toEqual({ since: new Date('2026-11-26T12:00:00Z'), limit: 1000 });
  });
  test('When since and limit are given, then they are used', () => {
    expect(parseHistoryWindow({ since: '2026-12-03T11:00:00+01:00', limit: '5' }, now, 7)).toEqual({ since: new Date('2026-12-03T10:00:00Z'), limit: 5 });
  });
  test.each([
    [{ since: 'yesterday' }, 'since'],
    [{ since: '2026-12-03' }, 'since'],
    [{ since: '2026-13-40T00:00:00Z' }, 'since'],
    [{ since: ['2026-12-03T00:00:00Z', '2026-12-03T00:00:00Z'] }, 'since'],
    [{ limit: '0' }, 'limit'],
    [{ limit: String(HISTORY_MAX_LIMIT + 1) }, 'limit'],
    [{ limit: '1.5' }, 'limit'],
    [{ limit: '-3' }, 'limit'],
  ])('When the query is %j, then it is an InputError naming %s', (query, name) => {
    let error: unknown;
    try {
      parseHistoryWindow(query as Record<string, unknown>, now, 7);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).errors![0]!.path).toBe(name);
  });
});

test('When a registry has been probed, then its history lists the probes oldest first, each with status, latency and error', async () => {
  const up = await create('hist-up', lb.url('hist-up'));
  const down = await create('hist-down', await refusedUrl());
  for (let i = 0; i < 3; i++) {
    expect((await call(svc.url, 'GET', `/check_container_health/${up}`, undefined, admin)).status).toBe(200);
    expect((await call(svc.url, 'GET', `/check_container_health/${down}`, undefined, admin)).status).toBe(200);
  }
  const res = await call(svc.url, 'GET', `/container_registry/${up}/health_history`, undefined, bearer(keys.reader));
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ container_registry_id: up, limit: 1000, truncated: false });
  expect(Date.parse(res.body.until) - Date.parse(res.body.since)).toBeGreaterThanOrEqual(7 * DAY - 1000);
  expect(res.body.items).toHaveLength(3);
  const times = res.body.items.map((r: { checked_at: string }) => Date.parse(r.checked_at));
  expect([...times].sort((a, b) => a - b)).toEqual(times);
  for (const item of res.body.items) {
    expect(Object.keys(item).sort()).toEqual(['checked_at', 'detail', 'error', 'http_status', 'latency_ms', 'status', 'sweep_id']);
    expect(item).toMatchObject({ status: 'healthy', http_status: 200, error: null, sweep_id: null });
  }
  const failed = await call(svc.url, 'GET', `/container_registry/${down}/health_history`, undefined, admin);
  expect(failed.body.items.map((r: { error: string }) => r.error)).toEqual(['connection_refused', 'connection_refused', 'connection_refused']);
});

test('When the window holds more probes than the limit, then the newest ones come back, oldest first, marked truncated; since cuts older ones', async () => {
  const id = await create('hist-many', lb.url('hist-many'));
  const now = Date.now();
  // Ten probes, one an hour, the newest 10 minutes ago, plus one older than the default window.
  const rows = Array.from({ length: 10 }, (_, i) => ({ registry_id: id, sweep_id: 's', checked_at: new Date(now - 600_000 - i * 3_600_000), status: 'healthy', latency_ms: i, http_status: 200, error: null, detail: null }));
  rows.push({ registry_id: id, sweep_id: 's', checked_at: new Date(now - 8 * DAY), status: 'unhealthy', latency_ms: 99, http_status: null, error: 'timeout', detail: 'old' } as never);
  await history.insertMany(rows);
  const all = await call(svc.url, 'GET', `/container_registry/${id}/health_history`, undefined, admin);
  expect(all.body.items.map((r: { latency_ms: number }) => r.latency_ms)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  const newest = await call(svc.url, 'GET', `/container_registry/${id}/health_history?limit=3`, undefined, admin);
  expect(newest.body).toMatchObject({ truncated: true, limit: 3 });
  expect(newest.body.items.map((r: { latency_ms: number }) => r.latency_ms)).toEqual([2, 1, 0]);
  const since = new Date(now - 600_000 - 2.5 * 3_600_000).toISOString();
  const recent = await call(svc.url, 'GET', `/container_registry/${id}/health_history?since=${encodeURIComponent(since)}`, undefined, admin);
  expect(recent.body.items.map((r: { latency_ms: number }) => r.latency_ms)).toEqual([2, 1, 0]);
  expect(recent.body.since).toBe(since);
  const old = await call(svc.url, 'GET', `/container_registry/${id}/health_history?since=${encodeURIComponent(new Date(now - 9 * DAY).toISOString())}`, undefined, admin);
  expect(old.body.items).toHaveLength(11);
  expect(old.body.items[0]).toMatchObject({ status: 'unhealthy', error: 'timeout', http_status: null, detail: 'old' });
});

test('When the id, since or limit is wrong, or there is no key, then the answer is 404, 400 naming the parameter, or 401', async () => {
  const id = await create('hist-errors', lb.url('hist-errors'));
  const missing = await call(svc.url, 'GET', '/container_registry/00000000-0000-4000-8000-000000000000/health_history', undefined, admin);
  expect(missing.status).toBe(404);
  expect(missing.headers.get('content-type')).toContain('application/problem+json');
  const badSince = await call(svc.url, 'GET', `/container_registry/${id}/health_history?since=last-week`, undefined, admin);
  expect(badSince.status).toBe(400);
  expect(badSince.body.errors).toEqual([{ path: 'since', message: expect.any(String) }]);
  const badLimit = await call(svc.url, 'GET', `/container_registry/${id}/health_history?limit=${HISTORY_MAX_LIMIT + 1}`, undefined, admin);
  expect(badLimit.status).toBe(400);
  expect(badLimit.body.errors).toEqual([{ path: 'limit', message: expect.any(String) }]);
  expect((await call(svc.url, 'GET', `/container_registry/${id}/health_history`)).status).toBe(401);
  const post = await call(svc.url, 'POST', `/container_registry/${id}/health_history`, {}, admin);
  expect(post.status).toBe(405);
  expect(post.headers.get('allow')).toBe('GET, HEAD');
});
