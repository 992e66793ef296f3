/**
 * The status page's change-feed client (ui/feed.js), run in real headless Chromium: its Server-Sent Events
 * parser, and how it follows `GET /container_registries/changes` (SPEC section 12) with fetch(): the key in
 * the Authorization header, `Accept: text/event-stream`, resume after a dropped stream with `Last-Event-ID`
 * and `since` set to the last revision seen, 410 reported as expired, 404 as unavailable. The feed route is
 * played by Playwright's request interception (inside the browser), so this runs before the service has a
 * feed; test/ui/live.pending.ts covers the real one.
 */
import type { Browser, Route } from 'playwright-core';
import { launchBrowser, openPage, type Recorded } from '../support/browser';
import { call, startTestService, type TestService } from '../support/service';

// Browser globals of the functions run inside the page (the project compiles without the DOM library).
declare const window: any;
declare const document: any;
declare const sessionStorage: any;

let svc: TestService;
let browser: Browser;

beforeAll(async () => {
  [svc, browser] = await Promise.all([startTestService(), launchBrowser()]);
});
afterAll(async () => {
  await browser?.close();
  await svc?.close();
});

/**
 * A page of the service's origin that runs none of the status page's code (its own live follower would be
 * caught by the tests' route intercepts, whenever it happens to connect), with ui/feed.js loaded.
 */
async function blankPage(): Promise<Recorded> {
  const rec = await openPage(browser);
  // The browser asks any document's origin for /favicon.ico; the status page names its icon itself.
  await rec.page.route('**/favicon.ico', (route: Route) => route.fulfill({ status: 204 }));
  await rec.page.goto(`${svc.url}/healthz`);
  // As a string: compiled to CommonJS, a dynamic import() in a function would become require().
  await rec.page.evaluate("import('/ui/feed.js').then((m) => { window.feed = m; })");
  return rec;
}

test('When SSE text arrives in arbitrary chunks, then the parser yields the events the format defines', async () => {
  const rec = await blankPage();
  const events = await rec.page.evaluate(async () => {
    const { SseParser } = window.feed;
    const p = new SseParser();
    const text = ': hello\r\nid: 7\r\nevent: upsert\r\ndata: {"a":\r\ndata: 1}\r\n\r\nid: 8\nevent: bookmark\ndata:{"revision":8}\n\nid: 9\n\ndata\n\nevent: delete\rdata: x\r\r';
    const out: unknown[] = [];
    // One character at a time: every split point, CRLF split between chunks included.
    for (const ch of text) out.push(...p.push(ch));
    return out;
  });
  expect(events).toEqual([
    { type: 'upsert', data: '{"a":\n1}', id: '7' },
    { type: 'bookmark', data: '{"revision":8}', id: '8' },
    // `id: 9` alone sets the last event id; the next event carries it. A bare `data` line is empty data.
    { type: 'message', data: '', id: '9' },
    { type: 'delete', data: 'x', id: '9' },
  ]);
  expect(rec.problems).toEqual([]);
  await rec.context.close();
});

test('When the stream ends after some events, then the client reconnects with Last-Event-ID and since at the last revision; a 410 ends it as expired', async () => {
  const rec = await blankPage();
  const seen: Array<{ url: string; lastEventId: string | undefined; accept: string | undefined; authorization: string | undefined }> = [];
  await rec.page.route('**/container_registries/changes?*', async (route: Route) => {
    const req = route.request();
    const headers = await req.allHeaders();
    seen.push({ url: req.url(), lastEventId: headers['last-event-id'], accept: headers.accept, authorization: headers.authorization });
    if (seen.length === 1) {
      const change = { revision: 11, type: 'upsert', container_registry_id: 'r1', entry: { container_registry_id: 'r1', container_registry_name: 'one' }, at: '2026-12-03T12:00:00Z' };
      await route.fulfill({
        status: 200,
        headers: { 'Content-Type': 'text/event-stream' },
        body: `id: 11\nevent: upsert\ndata: ${JSON.stringify(change)}\n\n: keep-alive\n\nid: 12\nevent: bookmark\ndata: {"revision":12}\n\nid: 13\nevent: delete\ndata: {"revision":13,"type":"delete","container_registry_id":"r2","at":"2026-12-03T12:00:01Z"}\n\n`,
      });
    } else {
      await route.fulfill({ status: 410, headers: { 'Content-Type': 'application/problem+json' }, body: '{"type":"/problems/revision-expired","status":410,"title":"Gone","detail":"too old"}' });
    }
  });
  const result = await rec.page.evaluate(async () => {
    sessionStorage.setItem('registry-db.api-key', 'key-for-the-feed-0123456789');
    const { followChanges } = window.feed;
    const changes: unknown[] = [];
    const states: string[] = [];
    const revisions: number[] = [];
    await new Promise<void>((resolve) => {
      followChanges({
        since: 10,
        onChange: (c: unknown) => changes.push(c),
        onRevision: (r: number) => revisions.push(r),
        onState: (s: string) => {
          states.push(s);
          if (s === 'expired') resolve();
        },
      });
    });
    sessionStorage.clear();
    return { changes, states, revisions };
  });
  expect(result.changes).toEqual([
    expect.objectContaining({ revision: 11, type: 'upsert', container_registry_id: 'r1' }),
    expect.objectContaining({ revision: 13, type: 'delete', container_registry_id: 'r2' }),
  ]);
  expect(result.revisions).toEqual([11, 12, 13]);
  expect(result.states).toEqual(['connecting', 'live', 'retrying', 'expired']);
  expect(seen).toHaveLength(2);
  expect(new URL(seen[0]!.url).searchParams.get('since')).toBe('10');
  expect(seen[0]).toMatchObject({ lastEventId: '10', accept: 'text/event-stream', authorization: 'Bearer key-for-the-feed-0123456789' });
  expect(new URL(seen[1]!.url).searchParams.get('since')).toBe('13');
  expect(seen[1]!.lastEventId).toBe('13');
  for (const s of seen) expect(s.url).not.toContain('key-for-the-feed');
  await rec.context.close();
});

test('When the server has no feed (404), then the client says it is unavailable and does not retry', async () => {
  const rec = await blankPage();
  let calls = 0;
  await rec.page.route('**/container_registries/changes?*', async (route: Route) => {
    calls++;
    await route.fulfill({ status: 404, headers: { 'Content-Type': 'application/problem+json' }, body: '{"status":404,"title":"Not found"}' });
  });
  const states = await rec.page.evaluate(async () => {
    const { followChanges } = window.feed;
    const out: string[] = [];
    await new Promise<void>((resolve) => {
      followChanges({ since: 1, onChange: () => undefined, onState: (s: string) => (out.push(s), s === 'unavailable' && resolve()) });
    });
    await new Promise((r) => setTimeout(r, 1500));
    return out;
  });
  expect(states).toEqual(['connecting', 'unavailable']);
  expect(calls).toBe(1);
  await rec.context.close();
});

test('When the feed delivers changes, then the table follows them without a reload: a status flips, a deleted entry goes, a new one appears', async () => {
  const make = async (name: string) =>
    (await call(svc.url, 'POST', '/container_registry', { container_registry_name: name, container_registry_public_url: 'http://127.0.0.1:5999', container_registry_tags: ['live'] })).body;
  const a = await make('live-a');
  const b = await make('live-b');
  const rec = await openPage(browser);
  // The service has no feed yet: its query answer is given the revision header, and the feed is played here.
  await rec.page.route('**/container_registries?*', async (route: Route) => {
    const res = await route.fetch();
    await route.fulfill({ response: res, headers: { ...res.headers(), 'x-catalog-revision': '100' } });
  });
  const at = new Date().toISOString();
  const changed = { ...a, revision: 101, container_registry_health: { status: 'unhealthy', checked_at: at, latency_ms: 3, http_status: null, error: 'connection_refused', detail: 'refused' } };
  const added = { ...b, container_registry_id: '11111111-2222-4333-8444-555555555555', container_registry_name: 'live-c', revision: 103 };
  let calls = 0;
  await rec.page.route('**/container_registries/changes?*', async (route: Route) => {
    calls++;
    const body =
      calls === 1
        ? [
            `id: 101\nevent: upsert\ndata: ${JSON.stringify({ revision: 101, type: 'upsert', container_registry_id: a.container_registry_id, entry: changed, at })}\n\n`,
            `id: 102\nevent: delete\ndata: ${JSON.stringify({ revision: 102, type: 'delete', container_registry_id: b.container_registry_id, at })}\n\n`,
            `id: 103\nevent: upsert\ndata: ${JSON.stringify({ revision: 103, type: 'upsert', container_registry_id: added.container_registry_id, entry: added, at })}\n\n`,
          ].join('')
        : 'id: 103\nevent: bookmark\ndata: {"revision":103}\n\n';
    await route.fulfill({ status: 200, headers: { 'Content-Type': 'text/event-stream' }, body });
  });
  await rec.page.goto(`${svc.url}/`);
  const rows = () =>
    rec.page.$$eval('table.registries tbody tr', (trs) =>
      Object.fromEntries(trs.map((tr) => [tr.querySelector('th')!.textContent, `${tr.querySelector('.badge')!.getAttribute('data-status')} ${tr.querySelector('td.error code')?.textContent ?? '-'}`])),
    );
  // The changes arrive on the first connection, right after the list: well within 2 s of the page's first answer.
  await rec.page.waitForFunction(() => [...document.querySelectorAll('table.registries tbody th')].some((th: any) => th.textContent === 'live-c'), undefined, { timeout: 2000 });
  expect(await rows()).toEqual({ 'live-a': 'unhealthy connection_refused', 'live-c': 'unknown -' });
  expect(await rec.page.$eval('.total-button[data-status="unhealthy"] .n', (n) => n.textContent)).toBe('1');
  expect(await rec.page.getAttribute('#live', 'data-state')).not.toBe('off');
  // No reload happened: the document was loaded once.
  expect(rec.requests.filter((r) => new URL(r.url).pathname === '/')).toHaveLength(1);
  expect(rec.problems).toEqual([]);
  await rec.context.close();
});

test('When the feed answers 410 to every watch, even right after a fresh list, then the page lists again with a growing pause instead of looping', async () => {
  const rec = await openPage(browser);
  let watches = 0;
  await rec.page.route('**/container_registries/changes?*', async (route: Route) => {
    watches++;
    await route.fulfill({ status: 410, headers: { 'Content-Type': 'application/problem+json' }, body: '{"type":"/problems/revision-expired","status":410,"title":"Gone","detail":"too old","revision":1}' });
  });
  const lists = () => rec.requests.filter((r) => r.method === 'POST' && new URL(r.url).pathname === '/container_registries').length;
  await rec.page.goto(`${svc.url}/`);
  await rec.page.waitForSelector('table.registries');
  await new Promise((r) => setTimeout(r, 6000));
  // Counted once the page is quiet (no list and no watch for 500 ms): in the middle of a round a list can be in
  // and its watch not yet (CI saw 5 lists and 4 watches). A page that never settles fails on the deadline.
  const count = () => ({ lists: lists(), watches });
  let counted = count();
  const deadline = Date.now() + 15_000;
  for (let quiet = 0; quiet < 2; ) {
    expect(Date.now()).toBeLessThan(deadline);
    await new Promise((r) => setTimeout(r, 250));
    const now = count();
    quiet = now.lists === counted.lists && now.watches === counted.watches ? quiet + 1 : 0;
    counted = now;
  }
  // Without a pause the page lists and watches again as fast as the answers come (hundreds in 6 s). With
  // the pause: the first list, one at once after the first 410, then 0.5–1 s, 1–2 s, 2–4 s apart.
  expect(counted.lists).toBeGreaterThanOrEqual(3);
  expect(counted.lists).toBeLessThanOrEqual(6);
  expect(counted.watches).toBe(counted.lists);
  expect(await rec.page.textContent('#live')).toMatch(/listing again in \d+ s/);
  expect(rec.problems.filter((p) => !p.includes('410'))).toEqual([]);
  await rec.context.close();
});
