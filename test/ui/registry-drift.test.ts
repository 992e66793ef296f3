/**
 * Mirror drift on the status page's registry page (SPEC 19, issue 18), in real headless Chromium against the
 * real service: two real docker-registry instances, the mirror holding another image under a tag than its
 * origin; after both storage refreshes the mirror's page lists the drifting tag with both digests, and the
 * origin's page has no drift card. A screenshot goes to test-artifacts/ (gitignored).
 */
import { randomBytes } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { launchBrowser, openPage, screenshot } from '../support/browser';
import { entry } from '../support/entries';
import { content, pushImage, startRegistry, stopAllRegistries, type RunningRegistry } from '../support/registries';
import { call, startTestService, type TestService } from '../support/service';
import { eventually } from '../support/webhook-receiver';

declare const document: any;

let svc: TestService;
let browser: Browser;
let origin: RunningRegistry;
let mirror: RunningRegistry;
const ids: Record<string, string> = {};
const digests: Record<string, string> = {};

const image = () => ({ config: content(JSON.stringify({ architecture: 'amd64', os: 'linux', salt: randomBytes(4).toString('hex') })), layers: [content(randomBytes(500))] });

async function create(name: string, url: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: name, container_registry_public_url: url, ...extra }));
  expect(r.status).toBe(201);
  return r.body.container_registry_id as string;
}

beforeAll(async () => {
  [svc, browser, origin, mirror] = await Promise.all([startTestService(), launchBrowser(), startRegistry(), startRegistry()]);
  digests.origin = (await pushImage(origin, 'team/app', '2.0', image())).manifest.digest;
  digests.mirror = (await pushImage(mirror, 'team/app', '2.0', image())).manifest.digest;
  ids.origin = await create('drift-origin', origin.url);
  ids.mirror = await create('drift-mirror', mirror.url, { container_registry_config: { mirror_of: [new URL(origin.url).host] } });
  for (const id of [ids.origin, ids.mirror]) expect((await call(svc.url, 'POST', `/container_registry/${id}/refresh_storage?wait=60`)).status).toBe(200);
  await eventually(async () => (await call(svc.url, 'GET', `/container_registry/${ids.mirror}`)).body.container_registry_storage_info?.observed?.mirror_drift, 20_000);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await svc?.close();
  await stopAllRegistries();
});

test("When a mirror's tag differs from its origin's, then the mirror's page shows the drift with both digests; the origin's page shows no drift card", async () => {
  const rec = await openPage(browser);
  await rec.page.goto(`${svc.url}/#/registry/${ids.mirror}`);
  await rec.page.waitForSelector('#drift-count');
  expect(await rec.page.isVisible('#drift')).toBe(true);
  expect(await rec.page.textContent('#drift-count')).toBe('1');
  const rows = await rec.page.$$eval('#drift-table tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('code')].map((c) => c.getAttribute('title') ?? c.textContent)));
  expect(rows).toEqual([['team/app:2.0', digests.mirror, digests.origin]]);
  await screenshot(rec.page, 'registry-drift');

  await rec.page.goto(`${svc.url}/#/registry/${ids.origin}`);
  await rec.page.waitForFunction(() => document.querySelector('h1')?.textContent === 'drift-origin');
  expect(await rec.page.isHidden('#drift')).toBe(true);
  expect(rec.problems).toEqual([]);
  await rec.context.close();
});
