/**
 * `npm run bench [-- --quick] [-- --profile]`: the service against a bare baseline, in one run, on one
 * embedded database (FerretDB, throw-away data directory). See docs/benchmark.md for what is measured.
 *   --quick    smaller data and shorter loads (under two minutes)
 *   --profile  runs the service children under `node --cpu-prof` (profiles in bench/profiles/)
 *   --only=sweep,sweep_10k,catalog,onboard,resolve,view,lag,nodes,watchers,webhooks,inventory   those phases alone, figures printed (results.json untouched);
 *              inventory runs only when asked this way (bench/inventory.ts)
 * SERVICE_NODE_OPTIONS: extra node flags for the service children (e.g. --trace-gc).
 * Writes bench/results.json and prints a table.
 */
import { revisionId } from '../src/db/changelog';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawn } from 'node:child_process';
import { MongoClient, type Db } from 'mongodb';
import { startEmbeddedDatabase } from '../src/db/embedded';
import { RegistryRepository } from '../src/registries/repository';
import type { StoredRegistry } from '../src/registries/model';
import { apiEntry, prng, QUERY, storedDocs } from './data';
import { startFakeRegistries } from './fake-registries';
import { lagPhase, viewPhase } from './feed';
import type { LoadResult } from './load';
import { DIST, productionNodeFlags, rssMb, runLoad, startChild, startLoad, type Child } from './proc';
import { inProcess as resolveInProcess, overHttp as resolveOverHttp } from './resolve';
import { refreshPhase as inventoryRefresh, resolveWithInventory } from './inventory';
import { nodesPhase } from './nodes';
import { watchersPhase } from './watchers';
import { webhooksBench } from './webhooks';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const PROFILE = argv.includes('--profile');
/** `--only=sweep,sweep_10k,catalog,onboard,resolve,view,lag,nodes,watchers,webhooks,inventory`: run those phases alone and print their figures (results.json untouched). */
const ONLY = argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
const SIZE = QUICK
  ? { entries: 10_000, sweep: 200, onboard: 10_000, loadSec: 3, warmSec: 1, firstWarmSec: 4, rounds: 3, maxQuerySec: 10, sweepLeadSec: 12 }
  : { entries: 100_000, sweep: 1000, onboard: 10_000, loadSec: 10, warmSec: 2, firstWarmSec: 8, rounds: 3, maxQuerySec: 60, sweepLeadSec: 20 };
const CONNECTIONS = 10;
const QUERY_CONNECTIONS = 2;
const API_CONNECTIONS = 4;
const PROBE_TIMEOUT_MS = 5000;
const PROBE_CONCURRENCY = 16;
const HANGING_EVERY = 20; // 5 %
const SOURCE_ROOT = path.resolve(DIST, '..');
const PROFILE_DIR = path.join(SOURCE_ROOT, 'bench', 'profiles');

const READER_KEY = randomBytes(18).toString('base64url');
const AUTH = { Authorization: `Bearer ${READER_KEY}` };
const WRITER_KEY = randomBytes(18).toString('base64url');
const WRITE_AUTH = { Authorization: `Bearer ${WRITER_KEY}` };
const tmp = mkdtempSync(path.join(os.tmpdir(), 'registry-db-bench-'));
const CREDENTIALS_KEY = randomBytes(32).toString('base64');

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function baseEnv(uri: string, dbName: string): Record<string, string> {
  return {
    MONGODB_URI: uri,
    MONGODB_DB: dbName,
    DATA_DIR: path.join(tmp, 'service'),
    CREDENTIALS_KEY,
    LOG_LEVEL: 'info',
    PROBE_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128',
    HEALTH_CRON: 'off',
    STORAGE_CRON: 'off',
    TZ: 'UTC',
  };
}

/**
 * The service as in production (waits up to `startMs` for it to listen: at start it reads the head of the
 * change log, which takes minutes on FerretDB v1 with a large log, see docs/benchmark.md): built dist, node flags of `npm start`, API keys, rate limits (high), logging and metrics on. */
function startService(uri: string, dbName: string, extra: Record<string, string> = {}, startMs = 900_000): Promise<Child> {
  const args = [...productionNodeFlags(SOURCE_ROOT), ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []), ...(process.env.SERVICE_NODE_OPTIONS?.split(/\s+/).filter(Boolean) ?? [])];
  const env = {
    ...baseEnv(uri, dbName),
    HOST: '127.0.0.1',
    PORT: '0',
    API_KEYS: `reader:${READER_KEY},writer:${WRITER_KEY},admin:${randomBytes(18).toString('base64url')}`,
    RATE_LIMIT_MAX: '100000000',
    PROBE_TIMEOUT_MS: String(PROBE_TIMEOUT_MS),
    PROBE_CONCURRENCY: String(PROBE_CONCURRENCY),
    // FerretDB v1 sorts in memory: a large query may take longer than the default 5 s limit (the baseline has none).
    QUERY_TIMEOUT_MS: '120000',
    ...extra,
  };
  const portOf = (line: string) => {
    if (!line.includes('"listening"')) return undefined;
    const { address } = JSON.parse(line) as { address: string };
    return Number(address.split(':').pop());
  };
  return startChild([...args, path.join(DIST, 'src', 'main.js')], env, portOf, 'service', startMs);
}

function startBaseline(uri: string, dbName: string): Promise<Child> {
  const portOf = (line: string) => (line.startsWith('listening ') ? Number(line.slice(10)) : undefined);
  return startChild([path.join(DIST, 'bench', 'baseline.js')], { MONGODB_URI: uri, MONGODB_DB: dbName, PORT: '0' }, portOf, 'baseline');
}

interface Figures {
  requests_per_sec: number;
  p50_ms: number;
  p99_ms: number;
  non2xx: number;
  errors: number;
}
/** Rounded for the report: one decimal, or three significant digits below one request per second. */
const perSec = (n: number) => (n >= 1 ? round(n, 1) : Number(n.toPrecision(3)));
const figures = (r: LoadResult): Figures => ({ requests_per_sec: perSec(r.requests_per_sec), p50_ms: r.p50_ms, p99_ms: r.p99_ms, non2xx: r.non2xx, errors: r.errors + r.timeouts });

/**
 * Service and baseline under the same load, interleaved for `rounds` rounds; the best round of each counts.
 * Each is warmed up before every round, and longer before the first (`firstWarmSec`): with a 1 s warm-up the
 * service's first round ran 20–35 % below its later ones while V8 was still optimising its hot paths (the
 * baseline has far less code to warm), which measured start-up rather than the service.
 */
async function compare(service: Child, baseline: Child, load: (port: number) => Parameters<typeof runLoad>[0], what: string, warmSec = SIZE.warmSec, rounds = SIZE.rounds, firstWarmSec = SIZE.firstWarmSec) {
  const runs: { service: LoadResult[]; baseline: LoadResult[] } = { service: [], baseline: [] };
  for (let r = 0; r < rounds; r++) {
    for (const [name, child] of [['service', service], ['baseline', baseline]] as const) {
      const warm = r === 0 ? Math.max(warmSec, firstWarmSec) : warmSec;
      if (warm > 0) await runLoad({ ...load(child.port), durationSec: warm });
      const res = await runLoad(load(child.port));
      log(`${what} ${name}: ${perSec(res.requests_per_sec)} req/s, p50 ${res.p50_ms} ms, p99 ${res.p99_ms} ms, ${res.requests} requests, non2xx ${res.non2xx}, errors ${res.errors}, timeouts ${res.timeouts}`);
      runs[name].push(res);
    }
  }
  const best = (rs: LoadResult[]) => rs.reduce((a, b) => (b.requests_per_sec > a.requests_per_sec ? b : a));
  const [s, b] = [best(runs.service), best(runs.baseline)];
  return { service: figures(s), baseline: figures(b), ratio: round(s.requests_per_sec / b.requests_per_sec), rounds, all_req_per_sec: { service: runs.service.map((x) => perSec(x.requests_per_sec)), baseline: runs.baseline.map((x) => perSec(x.requests_per_sec)) } };
}

/**
 * Stores entries as the service and the seed script do: through the change log (each batch one append of
 * log records, then one insertMany into the collection), so that every entry has its revision and the
 * view loads it from `catalog_changes`. Batches of 500, one after another. Answers the seconds taken and
 * the highest revision written.
 *
 * No service may run on the database meanwhile: the loader is then the only writer, its revisions are
 * contiguous from the head, and it records the new head in `catalog_changes_meta` (the hint a starting
 * replica's reader begins from, which a running replica keeps itself). Without that hint a service started
 * after the load reads the log from revision 1 one record at a time, and FerretDB v1 does not push down a
 * lookup by a numeric `_id` (each is a scan of the log, see docs/benchmark.md): hours at 100,000.
 */
async function loadThroughLog(db: Db, docs: StoredRegistry[], knownHead?: number, batch = 500): Promise<{ s: number; top: number }> {
  const repository = new RegistryRepository(db, 120_000);
  await repository.ensureIndexes();
  const log = repository.writer.log;
  // Starts allocating at the head of the log: the one the caller knows (it wrote it), or found by reading.
  const head = knownHead ?? (await log.init());
  log.observe(head);
  let top = head;
  repository.writer.onWritten((r) => (top = Math.max(top, r)));
  const t0 = performance.now();
  for (let i = 0; i < docs.length; i += batch) {
    const refused = await repository.insertMany(docs.slice(i, i + batch));
    if (refused.size > 0) throw new Error(`${refused.size} of the entries ${i}..${i + batch} were refused`);
  }
  const s = (performance.now() - t0) / 1000;
  if (top - head !== docs.length) throw new Error(`the load wrote revisions ${head + 1}..${top} for ${docs.length} entries (not contiguous)`);
  await log.raiseMeta('head', top);
  return { s, top };
}
const insertInBatches = async (db: Db, docs: StoredRegistry[]) => (await loadThroughLog(db, docs)).s;

/** Heap figures (MB) from the service's own /metrics, to tell the heap from the rest of the RSS. */
async function heapOf(port: number): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: AUTH, signal: AbortSignal.timeout(2000) });
  const text = await res.text();
  const out: Record<string, number> = {};
  for (const name of ['nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_external_memory_bytes']) {
    const m = new RegExp(`^${name} (\\S+)`, 'm').exec(text);
    if (m) out[name.replace(/^nodejs_|_bytes$/g, '')] = round(Number(m[1]) / 2 ** 20, 1);
  }
  return out;
}

/** Sweep: `count` registries on loopback servers, 5 % hanging, one sweep fired by HEALTH_CRON. */
async function sweepPhase(client: MongoClient, uri: string, count = SIZE.sweep, dbName = 'bench_sweep') {
  const fakes = await startFakeRegistries({ servers: 4, hanging: (i) => i % HANGING_EVERY === 0 });
  const rand = prng(7);
  const docs = await storedDocs(range(count).map((i) => apiEntry(i, fakes.urlOf(i), rand, 'sweep')));
  // Stored before the service starts (see loadThroughLog), which then loads them into its view.
  await insertInBatches(client.db(dbName), docs);
  const fire = new Date(Math.ceil((Date.now() + SIZE.sweepLeadSec * 1000) / 1000) * 1000);
  const cron = `${fire.getUTCSeconds()} ${fire.getUTCMinutes()} ${fire.getUTCHours()} * * *`;
  const service = await startService(uri, dbName, { HEALTH_CRON: cron });
  try {
    await service.waitForLine('scheduler started', 5000).catch(() => {
      throw new Error('the service never logged "scheduler started": HEALTH_CRON cannot fire a sweep (is Scheduler.start() called by main?)');
    });
    await service.waitForLine('change feed: view ready', 60_000);
    const paths = docs.slice(0, 500).map((d) => `/container_registry/${d._id}`);
    const apiLoad = (durationSec: number) => ({ url: `http://127.0.0.1:${service.port}`, connections: API_CONNECTIONS, durationSec, headers: AUTH, paths });
    await runLoad(apiLoad(1));
    const idleSec = Math.min(8, Math.floor((fire.getTime() - Date.now()) / 1000) - 2);
    const idle = await runLoad(apiLoad(Math.max(2, idleSec)));
    log(`sweep: API idle p99 ${idle.p99_ms} ms; sweep fires at ${fire.toISOString()}`);
    await sleep(Math.max(0, fire.getTime() - Date.now()));
    const during = startLoad(apiLoad(600));
    let peakRss = 0;
    let peakHeap: Record<string, number> = {};
    const sampler = setInterval(() => {
      const rss = rssMb(service.proc.pid!);
      if (rss <= peakRss) return;
      peakRss = rss;
      void heapOf(service.port).then((h) => (peakHeap = h), () => undefined);
    }, 100);
    const ideal = PROBE_TIMEOUT_MS / 1000 + (count / HANGING_EVERY) * (PROBE_TIMEOUT_MS / 1000) / PROBE_CONCURRENCY;
    let finished: string;
    try {
      finished = await service.waitForLine('health sweep finished', Math.round(ideal * 10_000 + 30_000));
    } finally {
      clearInterval(sampler);
      during.stop();
    }
    const duringRes = await during.result;
    const summary = JSON.parse(finished) as { duration_ms: number; claimed: number; written: number; failed: number; statuses: Record<string, number>; slowest_ms: number };
    const healths = await client
      .db(dbName)
      .collection<StoredRegistry>('container_registries')
      .find({}, { projection: { 'container_registry_health.latency_ms': 1, 'container_registry_health.status': 1 } })
      .toArray();
    const okLatencyS = healths.filter((h) => h.container_registry_health.status === 'healthy').reduce((s, h) => s + (h.container_registry_health.latency_ms ?? 0), 0) / 1000;
    const hanging = range(count).filter((i) => i % HANGING_EVERY === 0).length;
    // Ideal: one timeout, plus the work (each hanging registry a full timeout, each answering one its
    // measured probe latency) spread over the concurrency.
    const idealS = PROBE_TIMEOUT_MS / 1000 + (hanging * (PROBE_TIMEOUT_MS / 1000) + okLatencyS) / PROBE_CONCURRENCY;
    const sweepS = summary.duration_ms / 1000;
    const result = {
      registries: count,
      hanging,
      probe_timeout_s: PROBE_TIMEOUT_MS / 1000,
      concurrency: PROBE_CONCURRENCY,
      sweep_s: round(sweepS),
      ideal_s: round(idealS),
      ratio: round(sweepS / idealS),
      claimed: summary.claimed,
      written: summary.written,
      failed: summary.failed,
      statuses: summary.statuses,
      fake_registry_requests: fakes.counts(),
      api_p99_idle_ms: idle.p99_ms,
      api_p99_during_ms: duringRes.p99_ms,
      api_p99_ratio: round(duringRes.p99_ms / Math.max(1, idle.p99_ms)),
      api_idle: figures(idle),
      api_during: figures(duringRes),
    };
    log(`sweep: ${result.sweep_s} s (ideal ${result.ideal_s} s), API p99 idle ${idle.p99_ms} ms, during ${duringRes.p99_ms} ms, peak RSS ${round(peakRss, 1)} MB (heap at that peak ${JSON.stringify(peakHeap)})`);
    return { result, peakRssMb: round(peakRss, 1), peakHeap };
  } finally {
    await service.stop();
    await fakes.close();
  }
}

/** Reads, queries and idle memory over SIZE.entries entries. */
async function catalogPhase(client: MongoClient, uri: string) {
  const dbName = 'bench_catalog';
  const rand = prng(1);
  const docs = await storedDocs(range(SIZE.entries).map((i) => apiEntry(i, `http://127.0.0.1:9/r${i}`, rand)));
  // Stored before the service starts (see loadThroughLog), which then loads them into its view.
  const loadS = await insertInBatches(client.db(dbName), docs);
  log(`catalog: ${docs.length} entries stored through the change log in ${round(loadS, 1)} s`);
  const service = await startService(uri, dbName);
  const baseline = await startBaseline(uri, dbName);
  try {
    const ready = JSON.parse(await service.waitForLine('change feed: view ready', 600_000)) as { duration_ms: number };
    log(`catalog: the service's view loaded in ${ready.duration_ms} ms`);
    await sleep(2000);
    const idleFresh = rssMb(service.proc.pid!);
    const ids = range(1000).map((i) => docs[Math.floor((i * docs.length) / 1000)]!._id);
    const getById = await compare(service, baseline, (port) => ({ url: `http://127.0.0.1:${port}`, connections: CONNECTIONS, durationSec: SIZE.loadSec, headers: AUTH, paths: ids.map((id) => `/container_registry/${id}`) }), 'get_by_id');

    const dbSort = { [QUERY.sortSpec]: 1, _id: 1 };
    const serviceQuery = { path: `/container_registries?limit=${QUERY.limit}&sort=${QUERY.sortSpec}`, body: JSON.stringify(QUERY.filter) };
    const baselineQuery = { path: '/container_registries', body: JSON.stringify({ filter: QUERY.filter, sort: dbSort, limit: QUERY.limit }) };
    // Same answer from both, or the comparison means nothing. The load lasts long enough for many queries.
    let singleQueryS = 0;
    const [fromService, fromBaseline] = await Promise.all(
      [
        [service, serviceQuery, AUTH],
        [baseline, baselineQuery, {}],
      ].map(async ([child, q, auth]) => {
        const { port } = child as Child;
        const { path: p, body } = q as typeof serviceQuery;
        const t0 = performance.now();
        const res = await fetch(`http://127.0.0.1:${port}${p}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(auth as object) }, body });
        const ids = ((await res.json()) as Array<{ _id?: string; container_registry_id?: string }>).map((d) => d.container_registry_id ?? d._id);
        singleQueryS = Math.max(singleQueryS, (performance.now() - t0) / 1000);
        return ids;
      }),
    );
    if (fromService!.length !== QUERY.limit || fromService!.join() !== fromBaseline!.join()) throw new Error('the service and the baseline answer the query differently');
    // A query may take seconds on FerretDB: a fixed number of queries each (what fits in about
    // maxQuerySec), so that none is cut off by the end of a time window.
    const queryCount = Math.max(4, Math.min(500, Math.floor((SIZE.maxQuerySec * QUERY_CONNECTIONS) / Math.max(0.01, singleQueryS))));
    const queryS = SIZE.maxQuerySec * 4;
    log(`query: one query took ${round(singleQueryS)} s; ${queryCount} queries each, ${QUERY_CONNECTIONS} at a time`);
    const query = await compare(
      service,
      baseline,
      (port) => {
        const q = port === service.port ? serviceQuery : baselineQuery;
        return { url: `http://127.0.0.1:${port}${q.path}`, method: 'POST' as const, connections: QUERY_CONNECTIONS, durationSec: queryS, amount: queryCount, timeoutSec: 120, headers: { ...AUTH, 'Content-Type': 'application/json' }, body: q.body };
      },
      'query',
      0,
      1,
      0,
    );
    await sleep(3000);
    const idleAfter = rssMb(service.proc.pid!);
    return {
      getById: { ...getById, connections: CONNECTIONS, duration_s: SIZE.loadSec },
      query: { ...query, entries: SIZE.entries, filter: QUERY.filter, sort: QUERY.sortSpec, limit: QUERY.limit, matching: await client.db(dbName).collection('container_registries').countDocuments(QUERY.filter), connections: QUERY_CONNECTIONS, queries: queryCount },
      memory: { entries: SIZE.entries, idle_fresh_rss_mb: round(idleFresh, 1), idle_rss_mb: round(idleAfter, 1) },
      loadS,
    };
  } finally {
    await Promise.all([service.stop(), baseline.stop()]);
  }
}

/**
 * Onboarding: the seed script on SIZE.onboard entries against the least the write path must store: one raw
 * insertMany of their change-log records and one of the entries (same documents, same indexes).
 */
async function onboardPhase(client: MongoClient, uri: string) {
  const rand = prng(3);
  const entries = range(SIZE.onboard).map((i) => apiEntry(i, `http://127.0.0.1:9/o${i}`, rand, 'onboard'));
  const file = path.join(tmp, 'onboard.json');
  writeFileSync(file, JSON.stringify(entries));
  const empty = path.join(tmp, 'empty.json');
  writeFileSync(empty, '[]');
  /** The seed script as operators run it; answers its wall time. */
  const seed = async (source: string, count: number): Promise<{ s: number; summary: string }> => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [path.join(DIST, 'src', 'seed', 'cli.js'), source], { env: { ...process.env, ...baseEnv(uri, 'bench_onboard_seed') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-4000)));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
    const limit = setTimeout(() => child.kill('SIGKILL'), 600_000);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(limit);
    const summary = out.trim().split('\n').pop() ?? '';
    if (code !== 0 || !summary.startsWith(`${count} entries: ${count} created`)) throw new Error(`seed script failed (${code}): ${summary} ${err}`);
    return { s: (performance.now() - t0) / 1000, summary };
  };
  const startup = await seed(empty, 0);
  const { s: seedS, summary } = await seed(file, SIZE.onboard);

  const docs = await storedDocs(entries);
  const raw = client.db('bench_onboard_raw');
  await new RegistryRepository(raw, 5000).ensureIndexes();
  // What the write path stores at the least: one log record per entry (with the entry in it, as
  // ChangeLog.record builds it) and the entry, each set in one insertMany, with nothing checked or read.
  const at = new Date();
  const records = docs.map((d, i) => ({ _id: revisionId(i + 1), r: i + 1, key: d._id, prev: 0, op: 'upsert', doc: { ...d, revision: i + 1 }, at, w: 'bench' }));
  const stored = docs.map((d, i) => ({ ...d, revision: i + 1 }) as StoredRegistry);
  const t1 = performance.now();
  await raw.collection('catalog_changes').insertMany(records as never[], { ordered: false });
  await raw.collection<StoredRegistry>('container_registries').insertMany(stored, { ordered: false });
  const rawS = (performance.now() - t1) / 1000;
  log(`onboard: seed ${round(seedS)} s, insertMany ${round(rawS)} s`);
  return {
    entries: SIZE.onboard,
    seed_s: round(seedS),
    seed_startup_s: round(startup.s),
    seed_per_sec: round(SIZE.onboard / seedS, 1),
    insert_many_s: round(rawS),
    insert_many_per_sec: round(SIZE.onboard / rawS, 1),
    ratio: round(rawS / seedS),
    seed_summary: summary,
  };
}

/** Resolution: the prefix index in process at three catalog sizes, then POST /resolve over HTTP at 10,000 entries. */
async function resolvePhase(client: MongoClient, uri: string) {
  const in_process = resolveInProcess(log);
  const http = await resolveOverHttp({ uri, startService, insert: (docs) => insertInBatches(client.db('bench_resolve'), docs), auth: AUTH, log });
  return { in_process, http };
}

/** Nodes (bench/nodes.ts): rendering the pull configuration at 10,000 entries, and the agent's lag. */
/** Inventory (SPEC 19): one storage refresh of 100,000 tags (10,000 quick) through the service, then /resolve with inventories in process. */
async function inventoryPhase(client: MongoClient, uri: string) {
  const refresh = await inventoryRefresh({ client, uri, tags: QUICK ? 10_000 : 100_000, startService, writeAuth: WRITE_AUTH, probeTimeoutMs: PROBE_TIMEOUT_MS, log });
  return { refresh, resolve: resolveWithInventory(log) };
}

function runNodesPhase(client: MongoClient, uri: string) {
  return nodesPhase({ uri, startService, insert: (docs) => insertInBatches(client.db('bench_nodes'), docs), readerKey: READER_KEY, writerKey: WRITER_KEY, log, quick: QUICK });
}

/** The change feed and the view (bench/feed.ts): queries at 10,000 and 100,000 entries, catch-up, cross-replica lag. */
function runViewPhase(client: MongoClient, uri: string) {
  return viewPhase(feedDeps(client, uri));
}

/** Webhooks (bench/webhooks.ts): a backlog drained to one fast receiver, and status change → delivery. */
async function webhooksPhase(uri: string) {
  const r = await webhooksBench(uri, QUICK ? 1000 : 2000, QUICK ? 20 : 50);
  log(`webhooks: ${r.throughput.events_per_second} events/s; status change -> delivery p50 ${r.status_change_to_delivery_ms.p50} ms, p99 ${r.status_change_to_delivery_ms.p99} ms`);
  return { events_per_s: r.throughput.events_per_second, delay_p50_ms: r.status_change_to_delivery_ms.p50, delay_p99_ms: r.status_change_to_delivery_ms.p99, ...r, targets: { events_per_s: 500, delay_p99_ms: 1000 } };
}

/** N concurrent SSE watchers on one replica (bench/watchers.ts). */
function runWatchersPhase(client: MongoClient, uri: string) {
  return watchersPhase({ ...feedDeps(client, uri), startService: (u, db, extra) => startService(u, db, extra) });
}

function feedDeps(client: MongoClient, uri: string) {
  return { client, uri, startService: (u: string, db: string) => startService(u, db), load: loadThroughLog, auth: AUTH, writeAuth: WRITE_AUTH, heap: heapOf, log, quick: QUICK };
}

function machine(backend: string) {
  const cpus = os.cpus();
  return {
    cpu_model: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memory_gb: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    backend,
    load_average_at_start: os.loadavg().map((l) => round(l)),
  };
}

function table(r: Record<string, any>): string {
  const rows: string[][] = [['measure', 'service', 'baseline / ideal', 'ratio', 'target', 'ok']];
  const ok = (b: boolean) => (b ? 'yes' : 'NO');
  for (const [key, label, target] of [['get_by_id', 'GET /container_registry/:id', 1.5], ['query', 'POST /container_registries', 0.7]] as const) {
    const x = r[key];
    rows.push([`${label} req/s`, String(x.service.requests_per_sec), String(x.baseline.requests_per_sec), String(x.ratio), `>= ${target}`, ok(x.ratio >= target)]);
    rows.push([`  p50 / p99 ms`, `${x.service.p50_ms} / ${x.service.p99_ms}`, `${x.baseline.p50_ms} / ${x.baseline.p99_ms}`, '', '', '']);
  }
  const s = r.sweep;
  if (s.error) rows.push(['sweep', 'error', s.error, '', '', 'NO']);
  else {
    rows.push([`sweep of ${s.registries} (${s.hanging} hanging) s`, String(s.sweep_s), String(s.ideal_s), String(s.ratio), '<= 1.5', ok(s.ratio <= 1.5)]);
    rows.push(['API p99 during sweep ms', String(s.api_p99_during_ms), `idle ${s.api_p99_idle_ms}`, String(s.api_p99_ratio), '<= 2', ok(s.api_p99_ratio <= 2)]);
  }
  const s10 = r.sweep_10k;
  if (s10?.error) rows.push(['sweep of 10000', 'error', s10.error, '', '', 'NO']);
  else if (s10) rows.push([`sweep of ${s10.registries} (${s10.hanging} hanging) s`, String(s10.sweep_s), String(s10.ideal_s), String(s10.ratio), '<= 1.5', ok(s10.ratio <= 1.5)]);
  const o = r.onboard;
  rows.push([`onboard ${o.entries} entries/s`, String(o.seed_per_sec), String(o.insert_many_per_sec), String(o.ratio), '>= 0.5', ok(o.ratio >= 0.5)]);
  const rv = r.resolve;
  const at10k = rv.in_process['10000'];
  rows.push([`resolve, ${at10k.entries} entries: µs per reference`, `${at10k.mean_us} (p99 ${at10k.p99_us})`, `1,000: ${rv.in_process['1000'].mean_us}, 100,000: ${rv.in_process['100000'].mean_us}`, '', '< 1000', ok(at10k.p99_us < 1000)]);
  rows.push([`POST /resolve, ${rv.http.batch} references ms`, `${rv.http.p50_ms} (p99 ${rv.http.p99_ms})`, '', '', '< 100', ok(rv.http.p99_ms < 100)]);
  for (const [size, v] of Object.entries((r.view?.sizes ?? {}) as Record<string, any>)) {
    rows.push([`query from the view, ${size} entries p50 / p99 ms`, `${v.query.p50_ms} / ${v.query.p99_ms}`, `GET p50 ${v.get_by_id.p50_ms}`, String(v.query_p50_over_get_p50), size === '10000' ? '<= 3 x GET' : 'p50 < 250', ok(v.query_p50_over_get_p50 !== null && (size === '10000' ? v.query_p50_over_get_p50 <= 3 : v.query.p50_ms < 250))]);
  }
  if (r.view?.memory?.idle_rss_mb !== undefined) rows.push([`RSS idle, view of ${r.view.memory.entries} entries MB`, String(r.view.memory.idle_rss_mb), '', '', '< 300', ok(r.view.memory.idle_rss_mb < 300)]);
  if (r.catchup?.runs?.length) rows.push([`catch-up from 0, ${r.catchup.entries} entries changes/s`, String(r.catchup.best_changes_per_sec), '', '', '>= 20000', ok(r.catchup.best_changes_per_sec >= 20_000)]);
  if (r.lag?.writes) rows.push([`lag A -> B, ${r.lag.writes} writes p50 / p99 ms`, `${r.lag.lag_p50_ms} / ${r.lag.lag_p99_ms}`, `missing ${r.lag.missing}`, '', 'p99 < 1000', ok(r.lag.lag_p99_ms < 1000 && r.lag.missing === 0)]);
  const n = r.nodes;
  if (n) {
    const conf = n.http['/pull-config/registries.conf'];
    rows.push([`GET /pull-config/registries.conf, ${n.in_process.entries} entries p50 / p99 ms`, `${conf.p50_ms} / ${conf.p99_ms}`, `render alone p50 ${n.in_process.registries_conf.p50_ms}`, '', '', '']);
    rows.push([`agent lag, status change -> file, ${n.agent_lag.flips} flips p50 / p99 ms`, `${n.agent_lag.p50_ms} / ${n.agent_lag.p99_ms}`, '', '', 'p99 < 1000', ok(n.agent_lag.p99_ms < 1000)]);
  }
  const w = r.watchers;
  if (w?.error) rows.push(['watchers', 'error', w.error, '', '', 'NO']);
  else if (w) {
    rows.push([`${w.count} SSE watchers: KB per watcher (RSS)`, String(w.kb_per_watcher), `heap ${w.heap_kb_per_watcher}`, '', '< 20', ok(w.kb_per_watcher < 20)]);
    rows.push([`  write -> last watcher p50 / p99 ms`, `${w.fanout_p50_ms} / ${w.fanout_p99_ms}`, `missing ${w.missing_at_some_watcher}`, '', 'p99 < 1000', ok(w.fanout_p99_ms < 1000 && w.missing_at_some_watcher === 0)]);
    rows.push([`  GET p99 ms with watchers (without)`, `${w.get_with.p99_ms}`, `without ${w.get_without.p99_ms}`, String(w.get_p99_ratio), '', '']);
  }
  const wh = r.webhooks;
  if (wh?.error) rows.push(['webhooks', 'error', wh.error, '', '', 'NO']);
  else if (wh) {
    rows.push([`webhooks: events/s to one receiver`, String(wh.events_per_s), '', '', '>= 500', ok(wh.events_per_s >= 500)]);
    rows.push([`  status change -> delivery p50 / p99 ms`, `${wh.delay_p50_ms} / ${wh.delay_p99_ms}`, '', '', 'p99 < 1000', ok(wh.delay_p99_ms < 1000)]);
  }
  const m = r.memory;
  // SPEC 13: idle RSS under 300 MB at 100,000 entries.
  rows.push([`RSS idle, ${m.entries} entries MB`, String(m.idle_rss_mb), '', '', '< 300', ok(m.idle_rss_mb < 300)]);
  rows.push(['RSS peak of the sweep MB', String(m.sweep_peak_rss_mb ?? 'n/a'), '', '', '< 200', ok((m.sweep_peak_rss_mb ?? 0) < 200)]);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => '| ' + row.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ') + ' |').join('\n');
}

async function main(): Promise<void> {
  if (PROFILE) mkdirSync(PROFILE_DIR, { recursive: true });
  const started = Date.now();
  const m0 = machine('ferretdb');
  const quiet = { info: (msg: string) => log(msg), warn: (msg: string) => log(msg) };
  const database = await startEmbeddedDatabase({ dataDir: path.join(tmp, 'db'), mode: 'ferretdb', logger: quiet as never });
  const client = new MongoClient(database.uri, { maxPoolSize: 20 });
  await client.connect();
  try {
    log(`${QUICK ? 'quick' : 'full'} run; database ${database.backend} at ${database.uri}`);
    if (ONLY) {
      const phases: Record<string, () => Promise<unknown>> = {
        sweep: () => sweepPhase(client, database.uri),
        sweep_10k: () => sweepPhase(client, database.uri, 10_000, 'bench_sweep_10k').then((r) => r.result),
        catalog: () => catalogPhase(client, database.uri),
        onboard: () => onboardPhase(client, database.uri),
        resolve: () => resolvePhase(client, database.uri),
        view: () => runViewPhase(client, database.uri),
        lag: () => lagPhase(feedDeps(client, database.uri)),
        nodes: () => runNodesPhase(client, database.uri),
        watchers: () => runWatchersPhase(client, database.uri),
        webhooks: () => webhooksPhase(database.uri),
        inventory: () => inventoryPhase(client, database.uri),
      };
      for (const name of ONLY) {
        if (!phases[name]) throw new Error(`--only: unknown phase ${name} (${Object.keys(phases).join(', ')})`);
        process.stdout.write(`${name}: ${JSON.stringify(await phases[name]!(), null, 2)}\n`);
      }
      return;
    }
    let sweep: Record<string, unknown>;
    let sweepPeak: number | undefined;
    let sweepHeap: Record<string, number> | undefined;
    try {
      const s = await sweepPhase(client, database.uri);
      sweep = s.result;
      sweepPeak = s.peakRssMb;
      sweepHeap = s.peakHeap;
    } catch (e) {
      log(`sweep failed: ${(e as Error).message}`);
      sweep = { error: (e as Error).message, ratio: null };
    }
    // Full run: a sweep of 10,000 registries (its ratio to the ideal; issue 19).
    const sweep10k = QUICK ? undefined : await sweepPhase(client, database.uri, 10_000, 'bench_sweep_10k').then((r) => r.result, (e: Error) => ({ error: e.message, ratio: null }));
    const catalog = await catalogPhase(client, database.uri);
    const onboard = await onboardPhase(client, database.uri);
    const resolve = await resolvePhase(client, database.uri);
    const feed = await runViewPhase(client, database.uri);
    const nodes = await runNodesPhase(client, database.uri);
    const watchers = await runWatchersPhase(client, database.uri).catch((e: Error) => ({ error: e.message }));
    const webhooks = await webhooksPhase(database.uri).catch((e: Error) => ({ error: e.message }));
    const results = {
      mode: QUICK ? 'quick' : 'full',
      finished_at: new Date().toISOString(),
      duration_s: round((Date.now() - started) / 1000, 1),
      machine: { ...m0, backend: database.backend },
      get_by_id: catalog.getById,
      query: catalog.query,
      sweep,
      ...(sweep10k ? { sweep_10k: sweep10k } : {}),
      onboard,
      resolve,
      view: feed.view,
      catchup: feed.catchup,
      lag: feed.lag,
      nodes,
      watchers,
      webhooks,
      memory: { ...catalog.memory, sweep_peak_rss_mb: sweepPeak, sweep_peak_heap_mb: sweepHeap, sweep_registries: SIZE.sweep, ratio: round(catalog.memory.idle_rss_mb / 300), target_mb: 300 },
      data_load_s: round(catalog.loadS, 1),
    };
    writeFileSync(path.join(SOURCE_ROOT, 'bench', 'results.json'), JSON.stringify(results, null, 2) + '\n');
    process.stdout.write(`\nRegistry DB benchmark (${results.mode}, ${results.duration_s} s) on ${m0.cpu_model}, ${m0.cores} cores, ${m0.memory_gb} GB, Node ${m0.node}, ${database.backend}\n`);
    process.stdout.write(table(results) + '\n');
  } finally {
    await client.close();
    await database.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
