/**
 * The status page with API keys (SPEC sections 8 and 17), in real headless Chromium: the page loads without
 * a key and asks for one; the key is kept in sessionStorage and sent as `Authorization: Bearer`, never in a
 * URL or a cookie; 401 and 403 are explained on the page; "check now" is shown to writers only, as
 * GET /whoami tells the page.
 */
import type { Browser } from 'playwright-core';
import { launchBrowser, openPage, screenshot, type Recorded } from '../support/browser';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';
import { bearer, makeKeys } from '../security/keys';
import { startLoopback, type Loopback } from '../health/loopback';

// Browser globals of the functions run inside the page (the project compiles without the DOM library).
declare const document: any;
declare const sessionStorage: any;

const keys = makeKeys();
let svc: TestService;
let browser: Browser;
let lb: Loopback;
let id: string;

beforeAll(async () => {
  [svc, browser, lb] = await Promise.all([startTestService({ API_KEYS: keys.env }), launchBrowser(), startLoopback()]);
  const res = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: 'keyed-registry', container_registry_public_url: lb.url('keyed') }), bearer(keys.admin));
  id = res.body.container_registry_id;
  expect((await call(svc.url, 'GET', `/check_container_health/${id}`, undefined, bearer(keys.admin))).status).toBe(200);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await svc?.close();
  await lb?.close();
});

/** The browser reports each refused API call as a console error ("Failed to load resource ... 401"); only those are allowed. */
function expectOnly401s(rec: Recorded): void {
  for (const p of rec.problems) expect(p).toMatch(/^console\.error: Failed to load resource: the server responded with a status of 401 \(Unauthorized\) @ http:\/\/127\.0\.0\.1:\d+\/whoami$/);
  const origin = new URL(svc.url).origin;
  for (const r of rec.requests) expect(new URL(r.url).origin).toBe(origin);
}

async function enterKey(rec: Recorded, key: string): Promise<void> {
  await rec.page.fill('#api-key', key);
  await rec.page.press('#api-key', 'Enter');
}

test('When the page opens without a key in API-key mode, then it asks for one; a wrong key is explained; a reader key shows the catalog without "check now"', async () => {
  const rec = await openPage(browser);
  await rec.page.goto(`${svc.url}/`);
  await rec.page.waitForSelector('#api-key');
  expect(await rec.page.textContent('h1')).toBe('API key needed');
  expect(await rec.page.evaluate(() => document.activeElement?.id)).toBe('api-key');
  await screenshot(rec.page, 'key-prompt-desktop-light');

  await enterKey(rec, keys.wrong);
  await rec.page.waitForSelector('.key-error');
  expect(await rec.page.textContent('.key-error')).toBe('The API key was not accepted (401). Enter a valid key.');

  await enterKey(rec, keys.reader);
  await rec.page.waitForSelector('table.registries tbody tr');
  expect(await rec.page.textContent('#who')).toBe('role: reader');
  expect(await rec.page.$$eval('table.registries tbody th.name', (t) => t.map((x) => x.textContent))).toEqual(['keyed-registry']);
  await rec.page.click('a:has-text("keyed-registry")');
  await rec.page.waitForSelector('.chart canvas');
  expect(await rec.page.$('#check-now')).toBeNull();
  expect(await rec.page.textContent('.reg-head')).toContain('A writer key can run a check now.');

  // Where the key went: sessionStorage and the Authorization header only; never a URL, never a cookie.
  expect(await rec.page.evaluate(() => sessionStorage.getItem('registry-db.api-key'))).toBe(keys.reader);
  expect(await rec.context.cookies()).toEqual([]);
  for (const r of rec.requests) {
    expect(r.url).not.toContain(keys.reader);
    expect(r.url).not.toContain(keys.wrong);
    expect(r.headers.cookie).toBeUndefined();
  }
  const api = rec.requests.filter((r) => !/\/(ui\/[^/]+)?$/.test(new URL(r.url).pathname));
  const withReader = api.filter((r) => r.headers.authorization === `Bearer ${keys.reader}`);
  expect(withReader.map((r) => new URL(r.url).pathname)).toEqual(
    expect.arrayContaining(['/whoami', '/container_registries', '/health_report', `/container_registry/${id}`, `/container_registry/${id}/health_history`]),
  );
  // Before the key: one anonymous /whoami (401); after the wrong key: one more.
  expect(api.filter((r) => r.headers.authorization === undefined).map((r) => new URL(r.url).pathname)).toEqual(['/whoami']);
  expect(api.filter((r) => r.headers.authorization === `Bearer ${keys.wrong}`).map((r) => new URL(r.url).pathname)).toEqual(['/whoami']);

  // Forgetting the key clears it and asks again.
  await rec.page.click('#forget');
  await rec.page.waitForSelector('#api-key');
  expect(await rec.page.evaluate(() => sessionStorage.getItem('registry-db.api-key'))).toBeNull();
  expectOnly401s(rec);
  await rec.context.close();
});

test('When a writer key is entered, then "check now" is shown and runs the probe with that key', async () => {
  const rec = await openPage(browser, { colorScheme: 'dark', width: 375, height: 812 });
  await rec.page.goto(`${svc.url}/#/registry/${id}`);
  await rec.page.waitForSelector('#api-key');
  await screenshot(rec.page, 'key-prompt-phone-dark');
  await enterKey(rec, keys.writer);
  await rec.page.waitForSelector('#check-now');
  expect(await rec.page.getAttribute('.chart', 'data-points')).toBe('1');
  await rec.page.click('#check-now');
  await rec.page.waitForFunction(() => document.querySelector('.chart')?.getAttribute('data-points') === '2');
  const probe = rec.requests.filter((r) => r.url.endsWith(`/check_container_health/${id}`));
  expect(probe).toHaveLength(1);
  expect(probe[0]!.headers.authorization).toBe(`Bearer ${keys.writer}`);
  expectOnly401s(rec);
  await rec.context.close();
});

test('When protected mode refuses the client (403), then the page says why instead of asking for a key', async () => {
  const local = await startTestService();
  try {
    // Protected mode serves loopback clients only; a proxy naming a remote client makes this one remote.
    const rec = await openPage(browser, { extraHeaders: { 'X-Forwarded-For': '198.51.100.7' } });
    await rec.page.goto(`${local.url}/`);
    await rec.page.waitForSelector('h1:has-text("403")');
    expect(await rec.page.textContent('main')).toContain('only clients on this machine (loopback) are served');
    expect(await rec.page.$('#api-key')).toBeNull();
    for (const p of rec.problems) expect(p).toMatch(/status of 403 \(Forbidden\) @ http:\/\/127\.0\.0\.1:\d+\/whoami$/);
    await rec.context.close();
  } finally {
    await local.close();
  }
});

test('When GET /whoami is asked with each key, then it answers the role and what it may do; without a key, 401', async () => {
  const expected = {
    reader: { read: true, write: false, probe: false, delete: false, webhooks: false, pull_credentials: false },
    puller: { read: true, write: false, probe: false, delete: false, webhooks: false, pull_credentials: true },
    writer: { read: true, write: true, probe: true, delete: false, webhooks: false, pull_credentials: false },
    admin: { read: true, write: true, probe: true, delete: true, webhooks: true, pull_credentials: true },
  };
  for (const role of ['reader', 'puller', 'writer', 'admin'] as const) {
    const res = await call(svc.url, 'GET', '/whoami', undefined, bearer(keys[role]));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ role, key_id: expect.stringMatching(/^[0-9a-f]{16}$/), protected_mode: false, permissions: expected[role] });
  }
  const none = await call(svc.url, 'GET', '/whoami');
  expect(none.status).toBe(401);
  expect(none.headers.get('www-authenticate')).toContain('Bearer');
  const local = await startTestService();
  try {
    const res = await call(local.url, 'GET', '/whoami');
    expect(res.body).toEqual({ role: 'admin', key_id: 'loopback', protected_mode: true, permissions: expected.admin });
  } finally {
    await local.close();
  }
});
