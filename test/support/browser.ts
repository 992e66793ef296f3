/**
 * Real headless Chromium for the status page tests: Debian's `chromium` (installed by
 * scripts/install-test-deps.sh) driven by playwright-core through `executablePath`; nothing is downloaded.
 * Chromium's own background traffic is switched off and every host name resolves to nothing, so the
 * browser can only ever reach the loopback addresses the tests give it (a test may map a name of its own to
 * 127.0.0.1, as a DNS rebinding attacker would). Each page records every request
 * it makes and every console message and page error, for the tests to assert on.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ensureTestDeps } from './registries';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts');

/** `hostRules`: Chromium host-resolver rules put before the catch-all, e.g. `MAP rebind.test 127.0.0.1` (loopback only). */
export async function launchBrowser(opts: { hostRules?: string[] } = {}): Promise<Browser> {
  ensureTestDeps();
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-default-apps',
      '--no-first-run',
      '--no-pings',
      '--disable-domain-reliability',
      '--metrics-recording-only',
      // Only IP literals (the tests' 127.0.0.1) can be reached: any host name resolves to nothing.
      `--host-resolver-rules=${[...(opts.hostRules ?? []), 'MAP * ~NOTFOUND', 'EXCLUDE 127.0.0.1'].join(', ')}`,
    ],
  });
}

export interface Recorded {
  page: Page;
  context: BrowserContext;
  /** Every request the page made: method and full URL. */
  requests: Array<{ method: string; url: string; headers: Record<string, string> }>;
  /** Console messages of type error or warning, and uncaught page errors. */
  problems: string[];
}

export async function openPage(
  browser: Browser,
  opts: { width?: number; height?: number; colorScheme?: 'light' | 'dark'; extraHeaders?: Record<string, string> } = {},
): Promise<Recorded> {
  const context = await browser.newContext({
    viewport: { width: opts.width ?? 1280, height: opts.height ?? 800 },
    colorScheme: opts.colorScheme ?? 'light',
    extraHTTPHeaders: opts.extraHeaders,
  });
  const page = await context.newPage();
  const requests: Recorded['requests'] = [];
  const problems: string[] = [];
  page.on('request', (r) => requests.push({ method: r.method(), url: r.url(), headers: r.headers() }));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()} @ ${m.location().url}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  return { page, context, requests, problems };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
