/**
 * DNS rebinding against protected mode (issue 22 item 8), in real headless Chromium: the status page keeps
 * working from http://localhost:PORT and http://127.0.0.1:PORT, while a page served under a name of the
 * attacker's that resolves to 127.0.0.1 (Chromium's host-resolver rule plays the attacker's DNS) is refused
 * by the API: it cannot read the catalog or create a webhook, though the service answers it from loopback.
 */
import type { Browser } from 'playwright-core';
import { launchBrowser, openPage, type Recorded } from '../support/browser';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';

declare const document: any;
declare function fetch(url: string, init?: unknown): Promise<{ status: number; text(): Promise<string> }>;

const REBIND = 'rebind.attacker.test';
let svc: TestService;
let browser: Browser;
let port: number;
const names: string[] = [];

beforeAll(async () => {
  [svc, browser] = await Promise.all([startTestService(), launchBrowser({ hostRules: [`MAP ${REBIND} 127.0.0.1`, 'EXCLUDE localhost'] })]);
  port = Number(new URL(svc.url).port);
  for (let i = 0; i < 2; i++) {
    const res = await call(svc.url, 'POST', '/container_registry', entry());
    expect(res.status).toBe(201);
    names.push(res.body.container_registry_name as string);
  }
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await svc?.close();
});

async function listed(rec: Recorded): Promise<string[]> {
  await rec.page.waitForFunction((n) => document.querySelectorAll('table.registries tbody tr').length === n, names.length);
  return rec.page.$$eval('table.registries tbody tr th.name', (ths) => ths.map((th) => th.textContent!.trim()));
}

test.each(['127.0.0.1', 'localhost'])('When the status page is opened at http://%s:PORT, then it lists the catalog', async (host) => {
  const rec = await openPage(browser);
  try {
    await rec.page.goto(`http://${host}:${port}/`);
    expect((await listed(rec)).sort()).toEqual([...names].sort());
    expect(rec.problems).toEqual([]);
  } finally {
    await rec.context.close();
  }
});

test('When a page under a name rebound to 127.0.0.1 calls the API, then it is refused (403 naming DNS rebinding), cannot create a webhook, and the page says it is not served', async () => {
  const rec = await openPage(browser);
  try {
    await rec.page.goto(`http://${REBIND}:${port}/`);
    await rec.page.waitForSelector('text=Not served to this client (403)');
    expect(await rec.page.textContent('main')).toMatch(/DNS rebinding/);
    const attempt = await rec.page.evaluate(async () => {
      const res = await fetch('/webhooks', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ url: 'http://127.0.0.1:9/hook', events: ['registry.created'] }) });
      return { status: res.status, body: await res.text() };
    });
    expect(attempt.status).toBe(403);
    expect(JSON.parse(attempt.body).errors).toEqual([{ path: 'Host', message: expect.any(String) }]);
    expect((await call(svc.url, 'GET', '/webhooks')).body.webhooks).toEqual([]);
  } finally {
    await rec.context.close();
  }
});
