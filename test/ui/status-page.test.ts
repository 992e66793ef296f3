/**
 * The status page in real headless Chromium (SPEC section 17), against the real service in protected
 * mode (loopback: served as admin) and statuses from real probes: a real docker-registry with an image
 * pushed (healthy, storage observed), an HTML web server on loopback (unhealthy, not_a_registry), a dead
 * port (unhealthy, connection_refused) and a server answering 429 (degraded, rate_limited). Screenshots (desktop 1280 and phone 375, light and dark) go to
 * test-artifacts/ (gitignored).
 */
import { randomBytes } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { refusedUrl } from '../health/loopback';
import { launchBrowser, openPage, screenshot, type Recorded } from '../support/browser';
import { closeAllFakeServers, htmlPage, startFakeServer, tooManyRequests } from '../support/fake-servers';
import { content, pushImage, startRegistry, stopAllRegistries, type RunningRegistry } from '../support/registries';
import { call, startTestService, type TestService } from '../support/service';

// Browser globals of the functions run inside the page (the project compiles without the DOM library).
declare const document: any;
declare function getComputedStyle(el: unknown): any;

let svc: TestService;
let browser: Browser;
let registry: RunningRegistry;
const ids: Record<string, string> = {};
let usedBytes = 0;

async function create(name: string, url: string, tags: string[]): Promise<string> {
  const res = await call(svc.url, 'POST', '/container_registry', { container_registry_name: name, container_registry_public_url: url, container_registry_tags: tags, container_registry_storage_info: { storage_type: 'fs', storage_size: 51200, registry_type: 'aios' } });
  expect(res.status).toBe(201);
  return res.body.container_registry_id as string;
}

async function check(id: string): Promise<string> {
  const res = await call(svc.url, 'GET', `/check_container_health/${id}`);
  expect(res.status).toBe(200);
  return res.body.status as string;
}

beforeAll(async () => {
  [svc, browser, registry] = await Promise.all([startTestService(), launchBrowser(), startRegistry()]);
  await pushImage(registry, 'team/app', 'v1', { config: content(JSON.stringify({ architecture: 'amd64', os: 'linux' })), layers: [content(randomBytes(300_000)), content(randomBytes(120_000))] });
  const html = await startFakeServer(htmlPage);
  const limited = await startFakeServer(tooManyRequests);
  ids.alpha = await create('alpha-registry', registry.url, ['ai', 'internal']);
  ids.web = await create('web-server', html.url, ['web']);
  ids.dead = await create('dead-port', await refusedUrl(), ['internal']);
  ids.fresh = await create('fresh-registry', registry.url, ['new']);
  ids.limited = await create('rate-limited', limited.url, ['edge']);
  // Three probes each: history for the chart and the uptime figures.
  for (let i = 0; i < 3; i++) {
    expect(await check(ids.alpha)).toBe('healthy');
    expect(await check(ids.web)).toBe('unhealthy');
    expect(await check(ids.dead)).toBe('unhealthy');
    expect(await check(ids.limited)).toBe('degraded');
  }
  const doc = await svc.parts.registries.get(ids.alpha);
  const refreshed = await svc.parts.health.refresher.refresh(doc);
  if (refreshed.kind !== 'done') throw new Error('the storage refresh found another one running');
  const { observed } = refreshed;
  expect(observed.used_bytes).toBeGreaterThan(420_000);
  usedBytes = observed.used_bytes!;
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await svc?.close();
  await stopAllRegistries();
  await closeAllFakeServers();
});

/** Every request went to the service's own origin; no console error, no page error. */
function expectClean(rec: Recorded): void {
  const origin = new URL(svc.url).origin;
  expect(rec.requests.length).toBeGreaterThan(3);
  for (const r of rec.requests) expect(new URL(r.url).origin).toBe(origin);
  expect(rec.problems).toEqual([]);
}

async function rowsByName(page: Page): Promise<Record<string, { status: string; error: string; tags: string }>> {
  return page.$$eval('table.registries tbody tr', (trs) =>
    Object.fromEntries(
      trs.map((tr) => [
        tr.querySelector('th.name')!.textContent!.trim(),
        {
          status: tr.querySelector('.badge')!.getAttribute('data-status')!,
          error: tr.querySelector('td.error code')?.textContent ?? '',
          tags: [...tr.querySelectorAll('td.tags li')].map((li) => li.textContent).join(','),
        },
      ]),
    ),
  );
}

const names = (page: Page) => page.$$eval('table.registries tbody th.name', (ths) => ths.map((t) => t.textContent!.trim()));

async function openList(rec: Recorded): Promise<void> {
  await rec.page.goto(`${svc.url}/`);
  await rec.page.waitForSelector('table.registries tbody tr');
  await rec.page.waitForFunction(() => !document.querySelector('.summary')?.textContent?.includes('Loading'));
}

test('When the page opens, then the table lists every entry with the status its real probe stored, totals per status and uptime', async () => {
  const rec = await openPage(browser);
  await openList(rec);
  const rows = await rowsByName(rec.page);
  expect(rows).toEqual({
    'alpha-registry': { status: 'healthy', error: '', tags: 'ai,internal' },
    'web-server': { status: 'unhealthy', error: 'not_a_registry', tags: 'web' },
    'dead-port': { status: 'unhealthy', error: 'connection_refused', tags: 'internal' },
    'fresh-registry': { status: 'unknown', error: '', tags: 'new' },
    'rate-limited': { status: 'degraded', error: 'rate_limited', tags: 'edge' },
  });
  const totals = await rec.page.$$eval('.totals .total-button', (bs) => Object.fromEntries(bs.map((b) => [b.getAttribute('data-status'), b.querySelector('.n')!.textContent])));
  expect(totals).toEqual({ healthy: '1', degraded: '1', unhealthy: '2', unknown: '1' });
  // Uptime from GET /health_report: 3 healthy probes of 3, 0 of 3.
  const uptime = await rec.page.$$eval('table.registries tbody tr', (trs) => Object.fromEntries(trs.map((tr) => [tr.querySelector('th')!.textContent!.trim(), tr.querySelectorAll('td.num')[0]!.textContent])));
  expect(uptime['alpha-registry']).toBe('100 %');
  expect(uptime['dead-port']).toBe('0 %');
  expect(uptime['fresh-registry']).toBe('—');
  expect(uptime['rate-limited']).toBe('100 %'); // degraded: it answered
  // Default order: worst status first.
  expect((await names(rec.page)).slice(0, 2).sort()).toEqual(['dead-port', 'web-server']);
  expect((await names(rec.page)).slice(2)).toEqual(['rate-limited', 'fresh-registry', 'alpha-registry']);
  expect(await rec.page.textContent('#who')).toContain('protected mode');
  await screenshot(rec.page, 'list-desktop-light');
  expectClean(rec);
  await rec.context.close();
});

test('When a column header is clicked or activated from the keyboard, then the rows are sorted by it and aria-sort says how', async () => {
  const rec = await openPage(browser);
  await openList(rec);
  await rec.page.click('button.sort[data-key="name"]');
  expect(await names(rec.page)).toEqual(['alpha-registry', 'dead-port', 'fresh-registry', 'rate-limited', 'web-server']);
  expect(await rec.page.getAttribute('th:has(button[data-key="name"])', 'aria-sort')).toBe('ascending');
  // Keyboard: the header keeps focus after the redraw; Enter sorts the other way, Tab + Space sorts by URL.
  await rec.page.keyboard.press('Enter');
  expect(await names(rec.page)).toEqual(['web-server', 'rate-limited', 'fresh-registry', 'dead-port', 'alpha-registry']);
  expect(await rec.page.getAttribute('th:has(button[data-key="name"])', 'aria-sort')).toBe('descending');
  await rec.page.keyboard.press('Tab');
  // The focused control shows a focus ring.
  expect(await rec.page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle)).toBe('solid');
  await rec.page.keyboard.press(' ');
  expect(await rec.page.getAttribute('th:has(button[data-key="url"])', 'aria-sort')).toBe('ascending');
  expect(await rec.page.evaluate(() => document.activeElement.dataset.key)).toBe('url');
  expectClean(rec);
  await rec.context.close();
});

test('When the filter box is used (name text, tags, status), then the table shows what the query API answers for that filter', async () => {
  const rec = await openPage(browser);
  const queries: unknown[] = [];
  rec.page.on('request', (r) => {
    if (r.url().includes('/container_registries') && r.method() === 'POST') queries.push(JSON.parse(r.postData() ?? '{}'));
  });
  await openList(rec);
  const settle = async (expected: string[]) => {
    await rec.page.waitForFunction((n) => document.querySelectorAll('table.registries tbody tr').length === n && !document.querySelector('.summary')!.textContent!.includes('Loading'), expected.length);
    expect((await names(rec.page)).sort()).toEqual(expected.sort());
  };
  await rec.page.fill('#f-name', 'WEB');
  await settle(['web-server']);
  expect(queries).toContainEqual({ container_registry_name: { $regex: 'WEB', $options: 'i' } });
  await rec.page.fill('#f-name', '');
  await rec.page.fill('#f-tags', 'internal');
  await settle(['alpha-registry', 'dead-port']);
  await rec.page.selectOption('#f-status', 'unhealthy');
  await settle(['dead-port']);
  expect(queries).toContainEqual({ $and: [{ container_registry_tags: { $all: ['internal'] } }, { 'container_registry_health.status': 'unhealthy' }] });
  expect(await rec.page.textContent('.summary')).toContain('1 registry matches the filter');
  // A total is a button that filters by its status.
  await rec.page.click('button:has-text("Clear")');
  await settle(['alpha-registry', 'dead-port', 'fresh-registry', 'rate-limited', 'web-server']);
  await rec.page.click('.total-button[data-status="healthy"]');
  await settle(['alpha-registry']);
  expect(await rec.page.inputValue('#f-status')).toBe('healthy');
  // A name with regex characters is matched literally.
  await rec.page.click('.total-button[data-status="healthy"]');
  await rec.page.fill('#f-name', 'alpha.*(');
  await rec.page.press('#f-name', 'Enter');
  await settle([]);
  expect(await rec.page.isVisible('.empty')).toBe(true);
  expectClean(rec);
  await rec.context.close();
});

/** Pixels of the canvas drawn in the latency series' colour. */
async function latencyPixels(page: Page): Promise<number> {
  return page.evaluate(() => {
    const canvas = document.querySelector('.chart canvas');
    const color = getComputedStyle(document.documentElement).getPropertyValue('--chart-latency').trim();
    const want = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (Math.abs(data[i]! - want[0]!) < 12 && Math.abs(data[i + 1]! - want[1]!) < 12 && Math.abs(data[i + 2]! - want[2]!) < 12 && data[i + 3]! > 200) n++;
    }
    return n;
  });
}

test('When a registry page is opened, then it shows its health, a chart with its probes drawn, recent errors and observed storage in readable units', async () => {
  const rec = await openPage(browser);
  await openList(rec);
  await rec.page.click('a:has-text("alpha-registry")');
  await rec.page.waitForSelector('.chart canvas');
  expect(new URL(rec.page.url()).hash).toBe(`#/registry/${ids.alpha}`);
  expect(await rec.page.textContent('h1')).toBe('alpha-registry');
  expect(await rec.page.getAttribute('.chart', 'data-points')).toBe('3');
  expect(await latencyPixels(rec.page)).toBeGreaterThan(30);
  expect(await rec.page.textContent('.chart-note')).toContain('3 probes');
  // Storage: what the refresh observed, in IEC units (e.g. "410 KiB").
  const used = await rec.page.textContent('[data-bytes]');
  const kib = usedBytes / 1024;
  expect(used).toBe(`${kib < 10 ? kib.toFixed(2) : kib < 100 ? kib.toFixed(1) : Math.round(kib)} KiB`);
  expect(await rec.page.textContent('#c-storage + div')).toMatch(/Repositories\s*1\s*Tags\s*1/);
  expect(await rec.page.textContent('#c-storage + div')).toContain('50.0 GiB'); // storage_size 51200 MB
  expect(await rec.page.textContent('#c-errors + div')).toContain('No errors in the window.');
  await screenshot(rec.page, 'registry-desktop-light');

  // The dead port's page lists its errors.
  await rec.page.goto(`${svc.url}/#/registry/${ids.dead}`);
  await rec.page.waitForSelector('ol.errors li');
  expect(await rec.page.$$eval('ol.errors li code', (cs) => cs.map((c) => c.textContent))).toEqual(['connection_refused', 'connection_refused', 'connection_refused']);
  // Opened directly (not from the list), it still gets the report's figures once the report has loaded.
  await rec.page.waitForFunction(() => document.querySelector('#c-uptime + div')?.textContent.includes('Uptime 24 h0 % of 3 probes'));
  // Back to the list by keyboard: the breadcrumb is a link.
  await rec.page.focus('.crumbs a');
  await rec.page.keyboard.press('Enter');
  await rec.page.waitForSelector('table.registries');
  expectClean(rec);
  await rec.context.close();
});

test('When a writer presses "check now" on a registry never probed, then the page shows the new status and the probe is stored', async () => {
  const rec = await openPage(browser);
  await rec.page.goto(`${svc.url}/#/registry/${ids.fresh}`);
  await rec.page.waitForSelector('#check-now');
  expect(await rec.page.getAttribute('.head-badge .badge', 'data-status')).toBe('unknown');
  expect(await rec.page.getAttribute('.chart', 'data-points')).toBe('0');
  await rec.page.click('#check-now');
  await rec.page.waitForFunction(() => document.querySelector('.head-badge .badge')?.getAttribute('data-status') === 'healthy');
  // The badge can turn healthy from the change feed before the check's own answer is shown: wait for that too.
  await rec.page.waitForFunction(() => (document.querySelector('.check-result')?.textContent ?? '') !== '');
  expect(await rec.page.textContent('.check-result')).toMatch(/^Checked: healthy in \d+ ms\.$/);
  await rec.page.waitForSelector('.chart canvas');
  expect(await rec.page.getAttribute('.chart', 'data-points')).toBe('1');
  // One probe: the x axis is the history window ending now (it once ran over years around the point).
  expect(await rec.page.textContent('.chart-note')).toMatch(/^1 probe since /);
  const [xMin, xMax] = await rec.page.$eval('.chart', (el) => [Number((el as any).dataset.xMin), Number((el as any).dataset.xMax)]);
  const windowS = svc.config.HEALTH_HISTORY_DAYS * 86_400;
  expect(xMax - xMin).toBeGreaterThan(windowS - 600);
  expect(xMax - xMin).toBeLessThan(windowS + 600);
  expect(Math.abs(xMax - Date.now() / 1000)).toBeLessThan(600);
  const stored = await call(svc.url, 'GET', `/container_registry/${ids.fresh}`);
  expect(stored.body.container_registry_health.status).toBe('healthy');
  expect(rec.requests.filter((r) => r.url.endsWith(`/check_container_health/${ids.fresh}`))).toHaveLength(1);
  expectClean(rec);
  await rec.context.close();
});

test('When the page is shown at phone width (375 px) and in the dark theme, then nothing overflows sideways and the screenshots are saved', async () => {
  for (const colorScheme of ['light', 'dark'] as const) {
    for (const width of [1280, 375]) {
      const rec = await openPage(browser, { width, height: width === 375 ? 812 : 800, colorScheme });
      await openList(rec);
      const overflow = await rec.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(overflow).toBeLessThanOrEqual(0);
      const device = width === 375 ? 'phone' : 'desktop';
      if (!(device === 'desktop' && colorScheme === 'light')) await screenshot(rec.page, `list-${device}-${colorScheme}`);
      await rec.page.goto(`${svc.url}/#/registry/${ids.alpha}`);
      await rec.page.waitForSelector('.chart canvas');
      expect(await latencyPixels(rec.page)).toBeGreaterThan(20);
      expect(await rec.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBeLessThanOrEqual(0);
      await screenshot(rec.page, `registry-${device}-${colorScheme}`);
      if (colorScheme === 'dark') {
        // The dark theme is really applied (not the light background).
        expect(await rec.page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(14, 20, 32)');
      }
      expectClean(rec);
      await rec.context.close();
    }
  }
});
