/**
 * PENDING until the change feed lands (SPEC section 12): jest runs only *.test.ts, so this file is not run
 * yet. To enable it, rename it to live.test.ts. It is written against the contract the status page uses:
 * - POST /container_registries answers `X-Catalog-Revision: R`;
 * - GET /container_registries/changes?since=R with `Accept: text/event-stream` streams `id: <revision>`,
 *   `event: upsert|delete|bookmark`, `data: {"revision","type","container_registry_id","entry"?,"at"}`.
 * The page then follows the real feed: a status change made by a real probe shows within 2 s without a
 * reload, on the list and on the registry's page; deletes and creates show too.
 */
import type { Browser, Page } from 'playwright-core';
import { launchBrowser, openPage, screenshot, type Recorded } from '../support/browser';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';
import { startLoopback, type Loopback } from '../health/loopback';

// Browser globals of the functions run inside the page (the project compiles without the DOM library).
declare const document: any;

let svc: TestService;
let browser: Browser;
let lb: Loopback;

beforeAll(async () => {
  [svc, browser, lb] = await Promise.all([startTestService(), launchBrowser(), startLoopback()]);
});
afterAll(async () => {
  await browser?.close();
  await svc?.close();
  await lb?.close();
});

async function create(name: string): Promise<string> {
  const res = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: name, container_registry_public_url: lb.url(name) }));
  expect(res.status).toBe(201);
  return res.body.container_registry_id;
}

async function check(id: string, expected: string): Promise<void> {
  const res = await call(svc.url, 'GET', `/check_container_health/${id}`);
  expect(res.status).toBe(200);
  expect(res.body.status).toBe(expected);
}

const statusOf = (page: Page, name: string) =>
  page.evaluate((n) => {
    const th = [...document.querySelectorAll('table.registries tbody th')].find((t: any) => t.textContent === n);
    return th ? th.closest('tr').querySelector('.badge').getAttribute('data-status') : null;
  }, name);

function expectClean(rec: Recorded): void {
  const origin = new URL(svc.url).origin;
  for (const r of rec.requests) expect(new URL(r.url).origin).toBe(origin);
  expect(rec.problems).toEqual([]);
}

test('When a probe changes a status, then the open page shows it within 2 s without a reload, on the list and on the registry page', async () => {
  const id = await create('live-one');
  await check(id, 'healthy');
  const rec = await openPage(browser);
  const revisions: Array<string | null> = [];
  rec.page.on('response', (r) => {
    if (r.url().includes('/container_registries?') && r.request().method() === 'POST') revisions.push(r.headers()['x-catalog-revision'] ?? null);
  });
  await rec.page.goto(`${svc.url}/`);
  await rec.page.waitForSelector('#live[data-state="on"]');
  expect(revisions[0]).toMatch(/^\d+$/);
  const feed = rec.requests.find((r) => new URL(r.url).pathname === '/container_registries/changes')!;
  expect(feed.headers.accept).toBe('text/event-stream');
  expect(new URL(feed.url).searchParams.get('since')).toBe(revisions[0]);
  expect(await statusOf(rec.page, 'live-one')).toBe('healthy');

  // The registry breaks; a real probe stores it; the row follows.
  lb.set('live-one', 'error500');
  await check(id, 'unhealthy');
  await rec.page.waitForFunction(
    (n) => [...document.querySelectorAll('table.registries tbody th')].some((t: any) => t.textContent === n && t.closest('tr').querySelector('.badge').dataset.status === 'unhealthy'),
    'live-one',
    { timeout: 2000 },
  );
  await screenshot(rec.page, 'live-list-after-change');

  // On the registry's page: the header badge and the chart follow the next probe.
  await rec.page.click('a:has-text("live-one")');
  await rec.page.waitForSelector('.chart canvas');
  const points = Number(await rec.page.getAttribute('.chart', 'data-points'));
  lb.set('live-one', 'registry');
  await check(id, 'healthy');
  await rec.page.waitForFunction(() => document.querySelector('.head-badge .badge')?.dataset.status === 'healthy', undefined, { timeout: 2000 });
  await rec.page.waitForFunction((n) => Number(document.querySelector('.chart')?.dataset.points) === n + 1, points, { timeout: 2000 });
  expect(rec.requests.filter((r) => new URL(r.url).pathname === '/')).toHaveLength(1);
  expectClean(rec);
  await rec.context.close();
});

test('When entries are created and deleted, then rows appear and go within 2 s', async () => {
  const keep = await create('live-keep');
  const rec = await openPage(browser);
  await rec.page.goto(`${svc.url}/`);
  await rec.page.waitForSelector('#live[data-state="on"]');
  expect(await statusOf(rec.page, 'live-keep')).toBe('unknown');
  const added = await create('live-added');
  await rec.page.waitForFunction(() => [...document.querySelectorAll('table.registries tbody th')].some((t: any) => t.textContent === 'live-added'), undefined, { timeout: 2000 });
  expect((await call(svc.url, 'DELETE', `/container_registry/${added}`)).status).toBe(204);
  await rec.page.waitForFunction(() => ![...document.querySelectorAll('table.registries tbody th')].some((t: any) => t.textContent === 'live-added'), undefined, { timeout: 2000 });
  expect(await statusOf(rec.page, 'live-keep')).toBe('unknown');
  expect(keep).toBeTruthy();
  expectClean(rec);
  await rec.context.close();
});
