/**
 * Webhook URLs with credentials (issue 22 item 9): refused when a subscription is created (deliveries never
 * sent them; the signature authenticates a delivery), and one stored before that rule is shown with its
 * userinfo masked in GET /webhooks and GET /webhooks/:id, never as written, nor in the logs.
 */
import { call, startTestService, type TestService } from '../support/service';

let svc: TestService;
beforeAll(async () => {
  svc = await startTestService();
});
afterAll(() => svc?.close());

test.each(['http://alice:s3cret-pass@127.0.0.1:9/hook', 'http://alice@127.0.0.1:9/hook', 'https://:s3cret-pass@127.0.0.1:9/hook'])('When a subscription names the URL %s, then it is a 400 naming /url and nothing is stored', async (url) => {
  const res = await call(svc.url, 'POST', '/webhooks', { url, events: ['registry.created'] });
  expect(res.status).toBe(400);
  expect(res.headers.get('content-type')).toContain('application/problem+json');
  expect(res.body.errors).toEqual([{ path: '/url', message: expect.stringMatching(/credentials/) }]);
  expect(res.text).not.toContain('s3cret-pass');
  expect(await svc.db.collection('webhook_subscriptions').countDocuments({})).toBe(0);
});

test('When a subscription stored with credentials in its URL is listed or read, then the userinfo is masked everywhere it is shown', async () => {
  const created = await call(svc.url, 'POST', '/webhooks', { url: 'http://127.0.0.1:9/hook?x=1', events: ['registry.created'] });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  // As a subscription created before the rule was stored.
  await svc.db.collection('webhook_subscriptions').updateOne({ _id: id } as never, { $set: { url: 'http://alice:s3cret-pass@127.0.0.1:9/hook?x=1' } });
  const one = await call(svc.url, 'GET', `/webhooks/${id}`);
  expect(one.body.url).toBe('http://***@127.0.0.1:9/hook?x=1');
  const all = await call(svc.url, 'GET', '/webhooks');
  expect(all.body.webhooks.map((w: { url: string }) => w.url)).toEqual(['http://***@127.0.0.1:9/hook?x=1']);
  for (const text of [one.text, all.text, svc.logs()]) {
    expect(text).not.toContain('s3cret-pass');
    expect(text).not.toContain('alice');
  }
});
