/**
 * `npm run screenshot`: takes docs/status-page.png from live servers, as a user would see the page:
 * two catalogs (`node dist/src/main.js`, each on its own embedded database), the second a peer the first
 * follows; loopback registries that answer as a healthy registry (at a few latencies), a rate-limited one
 * (degraded), one answering 500 and a closed port (unhealthy); a few probes of each for the uptime figures; then
 * Debian's Chromium (playwright-core, executablePath) opens the first catalog's page once its live updates are on.
 * Every address is loopback; everything it starts is stopped at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { DIST, productionNodeFlags, startChild, type Child } from './proc';

const ROOT = path.resolve(DIST, '..');
const OUT = path.join(ROOT, 'docs', 'status-page.png');

type Behaviour = { status: number; delayMs: number };

/** A loopback server answering `/v2/` as `b` says (a registry's headers on a 200, Retry-After on a 429). */
async function registry(b: Behaviour): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    setTimeout(() => {
      const headers: Record<string, string> = { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0' };
      if (b.status === 429) headers['Retry-After'] = '30';
      res.writeHead(b.status, headers).end('{}');
    }, b.delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function catalog(name: string, env: Record<string, string>): Promise<{ child: Child; url: string; dir: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `registry-db-shot-${name}-`));
  const child = await startChild(
    [...productionNodeFlags(ROOT), path.join(DIST, 'src', 'main.js')],
    { PORT: '0', HOST: '127.0.0.1', DATA_DIR: dir, PROBE_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128', HEALTH_CRON: 'off', STORAGE_CRON: 'off', ...env },
    (line) => {
      const m = /"message":"listening".*"address":"[^"]*:(\d+)"/.exec(line);
      return m ? Number(m[1]) : undefined;
    },
    name,
    180_000,
  );
  return { child, url: `http://127.0.0.1:${child.port}`, dir };
}

async function call(base: string, method: string, p: string, body?: unknown): Promise<any> {
  const res = await fetch(base + p, { method, headers: body ? { 'Content-Type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  if (res.status >= 400) throw new Error(`${method} ${p}: ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

async function main(): Promise<void> {
  const servers: Server[] = [];
  const started: Array<{ child: Child; dir: string }> = [];
  try {
    const reg = async (b: Behaviour) => {
      const r = await registry(b);
      servers.push(r.server);
      return r.url;
    };
    const closed = await (async () => {
      const r = await registry({ status: 200, delayMs: 0 });
      await new Promise((resolve) => r.server.close(resolve));
      return r.url;
    })();
    const peer = await catalog('peer', {});
    started.push(peer);
    const local = await catalog('local', { PEERS: `eu-west=${peer.url}` });
    started.push(local);

    const entries: Array<[string, string, string[], string]> = [
      ['harbor-prod', await reg({ status: 200, delayMs: 12 }), ['prod', 'internal'], 'local'],
      ['registry-ai-cluster', await reg({ status: 200, delayMs: 35 }), ['ai', 'internal'], 'local'],
      ['mirror-docker-hub', await reg({ status: 200, delayMs: 8 }), ['mirror', 'cache'], 'local'],
      ['ghcr-proxy', await reg({ status: 429, delayMs: 20 }), ['proxy'], 'local'],
      ['registry-staging', await reg({ status: 500, delayMs: 5 }), ['staging'], 'local'],
      ['registry-lab-old', closed, ['lab'], 'local'],
      ['quay-cache', await reg({ status: 200, delayMs: 60 }), ['mirror'], 'local'],
      ['harbor-eu', await reg({ status: 200, delayMs: 18 }), ['prod', 'eu'], 'peer'],
      ['registry-eu-batch', await reg({ status: 200, delayMs: 25 }), ['batch', 'eu'], 'peer'],
    ];
    const ids: Array<[string, string]> = [];
    for (const [name, url, tags, where] of entries) {
      const base = where === 'peer' ? peer.url : local.url;
      const mirror = name.startsWith('mirror') ? { container_registry_config: { mirror_of: ['docker.io'] } } : {};
      const created = await call(base, 'POST', '/container_registry', { container_registry_name: name, container_registry_public_url: url, container_registry_tags: tags, container_registry_storage_info: { registry_type: 'aios', storage_type: 'fs' }, ...mirror });
      ids.push([base, created.container_registry_id]);
    }
    // A few probes of each: history for the charts and the uptime figures of the report.
    for (let round = 0; round < 4; round++) {
      for (const [base, id] of ids) await call(base, 'GET', `/check_container_health/${id}`).catch(() => undefined);
      await sleep(300);
    }
    // The peer's entries reach the local catalog through its follower.
    for (let i = 0; i < 100; i++) {
      const peers = await call(local.url, 'GET', '/peers');
      if (peers[0]?.entries === 2) break;
      await sleep(200);
    }
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
    });
    try {
      const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' })).newPage();
      await page.goto(`${local.url}/`);
      await page.waitForFunction(() => (globalThis as any).document.getElementById('live')?.dataset.state === 'on', undefined, { timeout: 30_000 });
      await page.waitForSelector('section.peers:not([hidden]) tr[data-peer]');
      await page.screenshot({ path: OUT, fullPage: true });
      process.stdout.write(`screenshot: ${OUT}\n`);
    } finally {
      await browser.close();
    }
  } finally {
    for (const s of started.reverse()) {
      await s.child.stop();
      rmSync(s.dir, { recursive: true, force: true });
    }
    for (const s of servers) s.close();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`screenshot: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
