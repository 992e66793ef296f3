/**
 * Webhook receivers that fail (SPEC 16): one that hangs, one answering 500 forever (backoff visible in
 * the delivery log, then `failing`), one answering 410 (disabled), and a URL the egress policy refuses;
 * a healthy receiver beside them gets its events without waiting for the others.
 */
import { call, startTestService, type TestService } from '../support/service';
import { entry } from '../support/entries';
import { eventually, Receiver, type Mode } from '../support/webhook-receiver';

let svc: TestService;
const receivers: Receiver[] = [];

const TIMEOUT_MS = 3000;

beforeAll(async () => {
  svc = await startTestService({ WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS), WEBHOOK_RETRY_MIN_MS: '100', WEBHOOK_RETRY_MAX_MS: '800', WEBHOOK_RETRY_FOR_S: '4', WEBHOOK_LEASE_MS: '1000' });
}, 60_000);
afterAll(async () => {
  for (const r of receivers) await r.down();
  await svc?.close();
});

async function subscribe(url: string, rx?: Receiver): Promise<string> {
  const res = await call(svc.url, 'POST', '/webhooks', { url, events: ['registry.created'] });
  expect(res.status).toBe(201);
  rx?.setSecret(res.body.secret);
  return res.body.id;
}

async function receiver(mode: Mode): Promise<Receiver> {
  const r = new Receiver();
  r.mode = mode;
  await r.up();
  receivers.push(r);
  return r;
}

const sub = async (id: string) => (await call(svc.url, 'GET', `/webhooks/${id}`)).body;
const deliveries = async (id: string) => (await call(svc.url, 'GET', `/webhooks/${id}/deliveries`)).body.deliveries as Array<Record<string, any>>;

test('When receivers hang, fail, answer 410 or are refused by the egress policy, then each is handled on its own and a healthy receiver is not delayed', async () => {
  const [hang, fail, gone, good] = [await receiver('hang'), await receiver('fail'), await receiver('gone'), await receiver('ok')];
  const ids = {
    hang: await subscribe(hang.url),
    fail: await subscribe(fail.url),
    gone: await subscribe(gone.url),
    refused: await subscribe('http://10.255.0.1:8080/hook'),
    good: await subscribe(good.url, good),
  };
  const started = Date.now();
  expect((await call(svc.url, 'POST', '/container_registry', entry())).status).toBe(201);

  // The healthy receiver gets the event while the hanging one is still waiting for its timeout.
  await good.waitFor((r) => r.distinct().length === 1, TIMEOUT_MS);
  expect(good.received[0]!.at - started).toBeLessThan(TIMEOUT_MS);
  expect(good.rejected).toEqual([]);

  // 410: disabled after one attempt, never tried again.
  await eventually(async () => (await sub(ids.gone)).status === 'disabled');
  const goneLog = await deliveries(ids.gone);
  expect(goneLog).toEqual([expect.objectContaining({ attempt: 1, http_status: 410 })]);

  // The refused URL is an error in the log, never a connection.
  const refusedLog = await eventually(async () => ((await deliveries(ids.refused)).length > 0 ? deliveries(ids.refused) : null));
  expect(refusedLog[0]).toMatchObject({ http_status: null, error: expect.stringContaining('blocked_by_policy') });

  // 500 forever: attempts with growing gaps (exponential backoff with jitter), then `failing` after WEBHOOK_RETRY_FOR_S.
  await eventually(async () => (await sub(ids.fail)).status === 'failing', 20_000);
  const failLog = (await deliveries(ids.fail)).reverse();
  expect(failLog.length).toBeGreaterThanOrEqual(4);
  expect(failLog.map((d) => d.attempt)).toEqual(failLog.map((_, i) => i + 1));
  expect(failLog.every((d) => d.http_status === 500)).toBe(true);
  const gaps = failLog.slice(1).map((d, i) => Date.parse(d.at) - Date.parse(failLog[i]!.at));
  // Attempt n waits between half and all of min(800, 100 * 2^(n-1)) ms after the answer.
  gaps.forEach((g, i) => expect(g).toBeGreaterThanOrEqual(Math.min(800, 100 * 2 ** i) / 2));
  expect(Math.max(...gaps)).toBeGreaterThan(gaps[0]!);
  const failed = await sub(ids.fail);
  expect(failed).toMatchObject({ status: 'failing', last_error: { http_status: 500 }, failed_attempts: failLog.length });
  const attemptsThen = fail.attempts;
  await new Promise((r) => setTimeout(r, 1500));
  expect(fail.attempts).toBe(attemptsThen);

  // The hanging receiver: attempts end at the timeout.
  const hangLog = await eventually(async () => ((await deliveries(ids.hang)).length > 0 ? deliveries(ids.hang) : null));
  expect(hangLog[hangLog.length - 1]).toMatchObject({ http_status: null, error: expect.stringMatching(/^timeout/) });
  expect(hangLog[hangLog.length - 1]!.duration_ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);

  // The healthy subscription delivered exactly once.
  expect(await sub(ids.good)).toMatchObject({ status: 'active', delivered: 1, failed_attempts: 0 });
}, 60_000);

test('When a disabled or failing subscription is enabled again, then it resumes from its position and the events it missed arrive in order; from=now skips them', async () => {
  const [gone, fail, later] = [await receiver('gone'), await receiver('fail'), await receiver('gone')];
  const ids = { gone: await subscribe(gone.url, gone), fail: await subscribe(fail.url, fail), later: await subscribe(later.url, later) };
  const first = (await call(svc.url, 'POST', '/container_registry', entry())).body;
  await eventually(async () => (await sub(ids.gone)).status === 'disabled' && (await sub(ids.later)).status === 'disabled');
  await eventually(async () => (await sub(ids.fail)).status === 'failing', 20_000);
  const second = (await call(svc.url, 'POST', '/container_registry', entry())).body;

  expect((await call(svc.url, 'POST', `/webhooks/${ids.gone}/enable?from=yesterday`)).status).toBe(400);
  expect((await call(svc.url, 'POST', '/webhooks/00000000-0000-4000-8000-000000000000/enable')).status).toBe(404);
  expect((await call(svc.url, 'GET', `/webhooks/${ids.gone}/enable`)).status).toBe(405);

  for (const r of [gone, fail, later]) r.mode = 'ok';
  for (const id of [ids.gone, ids.fail]) {
    const enabled = await call(svc.url, 'POST', `/webhooks/${id}/enable`);
    expect(enabled.status).toBe(200);
    expect(enabled.body.status).toBe('active');
    expect(enabled.body).not.toHaveProperty('status_reason');
  }
  const created = (r: Receiver) => r.distinct().map((x) => (x.body as { data: { container_registry_id: string } }).data.container_registry_id);
  for (const r of [gone, fail]) {
    await r.waitFor((x) => x.distinct().length === 2);
    expect(created(r)).toEqual([first.container_registry_id, second.container_registry_id]);
  }
  // from=now: only what happens after it.
  expect((await call(svc.url, 'POST', `/webhooks/${ids.later}/enable?from=now`)).status).toBe(200);
  const third = (await call(svc.url, 'POST', '/container_registry', entry())).body;
  await later.waitFor((x) => x.distinct().length === 1);
  expect(created(later)).toEqual([third.container_registry_id]);
  expect(await sub(ids.later)).toMatchObject({ status: 'active' });
}, 60_000);
