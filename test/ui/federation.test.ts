/**
 * Federation on the status page (issue 21, item 6), in real headless Chromium against two real services:
 * B follows A (PEERS). B's page shows the peers panel (GET /peers: state, entries) and each row's origin,
 * and both follow the change feed without a reload: a new entry on A appears with its origin, and when A
 * goes away the panel and the rows turn stale.
 */
import type { Browser } from 'playwright-core';
import { launchBrowser, openPage, screenshot } from '../support/browser';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';

declare const document: any;

let a: TestService;
let b: TestService;
let browser: Browser;
let aClosed = false;

async function mirrored(n: number): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    const r = await call(b.url, 'POST', '/container_registries', { 'container_registry_origin.peer': 'eu' });
    if (r.status === 200 && r.body.length === n) return;
    if (Date.now() > until) throw new Error(`B holds ${r.body?.length} of A's ${n} entries`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

beforeAll(async () => {
  browser = await launchBrowser();
  a = await startTestService();
  for (const name of ['eu-harbor', 'eu-mirror']) expect((await call(a.url, 'POST', '/container_registry', entry({ container_registry_name: name }))).status).toBe(201);
  b = await startTestService({ PEERS: `eu=${a.url}`, PEER_STALE_AFTER_S: '2' });
  expect((await call(b.url, 'POST', '/container_registry', entry({ container_registry_name: 'local-one' }))).status).toBe(201);
  await mirrored(2);
}, 90_000);
afterAll(async () => {
  await browser?.close();
  await b?.close();
  if (!aClosed) await a?.close();
});

test('When the catalog follows a peer, then the page shows the peers panel and each row\'s origin, and both follow the feed: a new peer entry appears, a peer that goes away turns stale', async () => {
  const rec = await openPage(browser);
  await rec.page.goto(`${b.url}/`);
  await rec.page.waitForFunction(() => document.querySelectorAll('table.registries tbody tr').length === 3);
  const origins = () =>
    rec.page.$$eval('table.registries tbody tr', (trs) => Object.fromEntries(trs.map((tr) => [tr.querySelector('th a')!.textContent, tr.querySelector('th .origin')?.textContent ?? 'local'])));
  expect(await origins()).toEqual({ 'eu-harbor': 'from eu', 'eu-mirror': 'from eu', 'local-one': 'local' });
  await rec.page.waitForSelector('section.peers:not([hidden]) tr[data-peer="eu"]');
  expect(await rec.page.getAttribute('tr[data-peer="eu"]', 'data-state')).toBe('following');
  expect(await rec.page.textContent('tr[data-peer="eu"] td[data-label="Entries"]')).toBe('2');

  // A new entry on the peer: on B's page with its origin, and counted in the panel, without a reload.
  expect((await call(a.url, 'POST', '/container_registry', entry({ container_registry_name: 'eu-new' }))).status).toBe(201);
  await rec.page.waitForFunction(() => [...document.querySelectorAll('table.registries tbody th a')].some((a: any) => a.textContent === 'eu-new'), undefined, { timeout: 10_000 });
  expect((await origins())['eu-new']).toBe('from eu');
  await rec.page.waitForFunction(() => document.querySelector('tr[data-peer="eu"] td[data-label="Entries"]')?.textContent === '3', undefined, { timeout: 10_000 });
  await screenshot(rec.page, 'status-page-federation');

  // The peer goes away: after PEER_STALE_AFTER_S its entries are marked stale, and the page shows it.
  await a.close();
  aClosed = true;
  await rec.page.waitForFunction(() => document.querySelector('tr[data-peer="eu"]')?.getAttribute('data-state') === 'stale', undefined, { timeout: 20_000 });
  await rec.page.waitForFunction(() => [...document.querySelectorAll('table.registries th .origin')].filter((o: any) => o.textContent === 'from eu (stale)').length === 3, undefined, { timeout: 20_000 });
  await screenshot(rec.page, 'status-page-federation-stale');
  expect(rec.requests.filter((r) => new URL(r.url).pathname === '/')).toHaveLength(1);
  expect(rec.problems).toEqual([]);
  await rec.context.close();
}, 90_000);
