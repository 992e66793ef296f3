/**
 * The change feed and the in-memory view (issue 10, SPEC 12–13), measured on the built service:
 * - queries served by the view at 10,000 and 100,000 entries against GET by id at the same size, and the
 *   idle RSS of the service at the largest size;
 * - catch-up: one consumer reading GET /container_registries/changes from since=0 in pages of 5,000;
 * - cross-replica lag: writes (PUT) acknowledged by replica A, seen by a long-poll consumer of replica B.
 * Entries are loaded through the real write path (change log, then collection), as the seed script does,
 * while replica A runs and follows the log.
 */
import type { Db, MongoClient } from 'mongodb';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StoredRegistry } from '../src/registries/model';
import { apiEntry, prng, QUERY, storedDocs } from './data';
import type { LoadResult } from './load';
import { rssMb, runLoad, type Child } from './proc';

export interface FeedDeps {
  client: MongoClient;
  uri: string;
  startService: (uri: string, dbName: string) => Promise<Child>;
  /** Loads documents through the write path; answers seconds taken and the highest revision written. */
  load: (db: Db, docs: StoredRegistry[], knownHead?: number) => Promise<{ s: number; top: number }>;
  /** Reader and writer Authorization headers. */
  auth: Record<string, string>;
  writeAuth: Record<string, string>;
  heap: (port: number) => Promise<Record<string, number>>;
  log: (m: string) => void;
  quick: boolean;
}

const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const CONNECTIONS = 2;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const brief = (r: LoadResult) => ({ requests_per_sec: round(r.requests_per_sec, 1), p50_ms: r.p50_ms, p90_ms: r.p90_ms, p99_ms: r.p99_ms, requests: r.requests, non2xx: r.non2xx, errors: r.errors + r.timeouts });

/** Waits until the service's view has read revision `r` (a query with min_revision waits up to 5 s per try). */
async function reach(service: Child, auth: Record<string, string>, r: number, ms: number): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${service.port}/container_registries/changes?since=0&limit=1`, { headers: auth });
    await res.arrayBuffer();
    const at = Number(res.headers.get('x-catalog-revision') ?? 0);
    if (res.status === 200 && at >= r) return performance.now() - t0;
    if (performance.now() - t0 > ms) throw new Error(`the service's view is at revision ${at} (status ${res.status}), not ${r}, after ${ms} ms`);
    await sleep(200);
  }
}

/** The first page of the benchmark's query, computed here from the documents (the answer the view must give). */
function expectedQuery(docs: StoredRegistry[]): string[] {
  const wanted = new Set(QUERY.filter.container_registry_tags.$in);
  return docs
    .filter((d) => (d.container_registry_tags ?? []).some((t) => wanted.has(t)))
    .sort((a, b) => (a.container_registry_name < b.container_registry_name ? -1 : a.container_registry_name > b.container_registry_name ? 1 : a._id < b._id ? -1 : 1))
    .slice(0, QUERY.limit)
    .map((d) => d._id);
}

/** Queries and reads of one service at its current size. */
async function measureAt(deps: FeedDeps, service: Child, docs: StoredRegistry[]) {
  const loadSec = deps.quick ? 3 : 8;
  const base = `http://127.0.0.1:${service.port}`;
  const queryPath = `/container_registries?limit=${QUERY.limit}&sort=${QUERY.sortSpec}`;
  const body = JSON.stringify(QUERY.filter);
  const headers = { ...deps.auth, 'Content-Type': 'application/json' };
  const t0 = performance.now();
  const res = await fetch(base + queryPath, { method: 'POST', headers, body });
  const got = ((await res.json()) as Array<{ container_registry_id: string }>).map((d) => d.container_registry_id);
  const firstMs = performance.now() - t0;
  if (res.status !== 200 || got.join() !== expectedQuery(docs).join()) throw new Error(`the view answers the query wrongly (status ${res.status}, ${got.length} entries)`);
  const ids = range(0, 1000).map((i) => docs[Math.floor((i * docs.length) / 1000)]!._id);
  const get = { url: base, connections: CONNECTIONS, headers: deps.auth, paths: ids.map((id) => `/container_registry/${id}`) };
  const query = { url: base + queryPath, method: 'POST' as const, connections: CONNECTIONS, headers, body, timeoutSec: 30 };
  // Warm both paths, then interleave two rounds of each; the better round of each counts (other agents share the cores).
  await runLoad({ ...get, durationSec: 2 });
  await runLoad({ ...query, durationSec: 2 });
  const gets: LoadResult[] = [];
  const queries: LoadResult[] = [];
  for (let round = 0; round < 2; round++) {
    gets.push(await runLoad({ ...get, durationSec: loadSec }));
    queries.push(await runLoad({ ...query, durationSec: loadSec }));
  }
  const best = (rs: LoadResult[]) => rs.reduce((a, b) => (b.p50_ms < a.p50_ms || (b.p50_ms === a.p50_ms && b.p99_ms < a.p99_ms) ? b : a));
  const [g, q] = [best(gets), best(queries)];
  const matching = docs.filter((d) => (d.container_registry_tags ?? []).some((t) => (QUERY.filter.container_registry_tags.$in as string[]).includes(t))).length;
  const out = {
    entries: docs.length,
    matching,
    first_query_ms: round(firstMs, 1),
    get_by_id: brief(g),
    query: brief(q),
    // No ratio when queries failed (e.g. went to the database and hit its time limit): 0 ms would look fine.
    query_p50_over_get_p50: q.requests > 0 && q.non2xx === 0 && q.errors + q.timeouts === 0 ? round(q.p50_ms / Math.max(1, g.p50_ms)) : null,
    rounds: { get_p50_ms: gets.map((r) => r.p50_ms), query_p50_ms: queries.map((r) => r.p50_ms), query_p99_ms: queries.map((r) => r.p99_ms) },
    connections: CONNECTIONS,
    duration_s: loadSec,
  };
  deps.log(`view, ${docs.length} entries: query p50 ${q.p50_ms} ms p99 ${q.p99_ms} ms (${round(q.requests_per_sec, 1)} req/s); GET p50 ${g.p50_ms} ms p99 ${g.p99_ms} ms; ratio ${out.query_p50_over_get_p50}`);
  return out;
}

/** One consumer reads the whole feed from since=0, `limit` changes a page; answers changes per second. */
async function catchUp(deps: FeedDeps, service: Child, head: number, limit = 5000) {
  const t0 = performance.now();
  let since = 0;
  let changes = 0;
  let pages = 0;
  let bytes = 0;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${service.port}/container_registries/changes?since=${since}&limit=${limit}`, { headers: deps.auth });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`changes answered ${res.status}: ${text.slice(0, 300)}`);
    bytes += text.length;
    const page = JSON.parse(text) as { revision: number; changes: unknown[] };
    pages++;
    changes += page.changes.length;
    if (page.changes.length === 0 || page.revision >= head) {
      since = page.revision;
      break;
    }
    since = page.revision;
  }
  const s = (performance.now() - t0) / 1000;
  return { changes, pages, limit, seconds: round(s), changes_per_sec: Math.round(changes / s), mb: round(bytes / 2 ** 20, 1), reached: since };
}

/**
 * Writes on A (one PUT at a time, 20–60 ms apart), one long-poll consumer on B; lag = when B's consumer got
 * the change − when A's answer arrived (both on this process's clock).
 */
async function crossReplicaLag(deps: FeedDeps, a: Child, b: Child, docs: StoredRegistry[], entries: Array<Record<string, unknown>>, from: number, writes: number) {
  const seen = new Map<number, number>();
  let since = from;
  let stop = false;
  let polls = 0;
  const consumer = (async () => {
    while (!stop) {
      const res = await fetch(`http://127.0.0.1:${b.port}/container_registries/changes?since=${since}&wait=30&limit=500`, { headers: deps.auth, signal: AbortSignal.timeout(40_000) });
      const page = (await res.json()) as { revision: number; changes: Array<{ revision: number }> };
      const now = performance.now();
      polls++;
      if (res.status !== 200) throw new Error(`B answered the long poll with ${res.status}`);
      for (const c of page.changes) if (!seen.has(c.revision)) seen.set(c.revision, now);
      since = Math.max(since, page.revision);
    }
  })();
  const acked = new Map<number, number>();
  const putMs: number[] = [];
  const rand = prng(5);
  for (let k = 0; k < writes; k++) {
    const i = Math.floor(rand() * docs.length);
    const body = { ...entries[i]!, container_registry_metadata: { owner: `lag-${k}`, region: 'eu-west' } };
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${a.port}/container_registry/${docs[i]!._id}`, { method: 'PUT', headers: { ...deps.writeAuth, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await res.json()) as { revision?: number };
    const t1 = performance.now();
    if (res.status !== 200 || typeof json.revision !== 'number') throw new Error(`PUT on A answered ${res.status}: ${JSON.stringify(json).slice(0, 300)}`);
    acked.set(json.revision, t1);
    putMs.push(t1 - t0);
    await sleep(20 + rand() * 40);
  }
  const last = Math.max(...acked.keys());
  const until = performance.now() + 60_000;
  while (!seen.has(last) && performance.now() < until) await sleep(20);
  stop = true;
  // Ends the last long poll with a change of its own (nothing else writes).
  const endRes = await fetch(`http://127.0.0.1:${a.port}/container_registry/${docs[0]!._id}`, { method: 'PUT', headers: { ...deps.writeAuth, 'Content-Type': 'application/json' }, body: JSON.stringify(entries[0]) });
  // The highest revision written (that last PUT changes nothing when entry 0 is as first stored).
  const head = Math.max(last, ((await endRes.json()) as { revision: number }).revision);
  await consumer;
  const lags = [...acked].map(([r, t]) => (seen.has(r) ? seen.get(r)! - t : NaN));
  const missing = lags.filter((l) => Number.isNaN(l)).length;
  const sorted = lags.filter((l) => !Number.isNaN(l)).sort((x, y) => x - y);
  putMs.sort((x, y) => x - y);
  return {
    head,
    writes,
    missing,
    long_polls: polls,
    lag_p50_ms: round(percentile(sorted, 50), 1),
    lag_p90_ms: round(percentile(sorted, 90), 1),
    lag_p99_ms: round(percentile(sorted, 99), 1),
    lag_max_ms: round(sorted[sorted.length - 1] ?? NaN, 1),
    lag_min_ms: round(sorted[0] ?? NaN, 1),
    put_p50_ms: round(percentile(putMs, 50), 1),
    put_p99_ms: round(percentile(putMs, 99), 1),
  };
}

/**
 * The view phase: see the file's comment. Entries are loaded while no service runs (bench/run.ts
 * loadThroughLog); a replica started after a load reads them into its view at start. At 10,000 entries:
 * queries, then replica B and the cross-replica lag; then 90,000 more and, at 100,000: queries, idle RSS,
 * catch-up. `--quick`: 10,000 entries only, 50 lag writes.
 */
export async function viewPhase(deps: FeedDeps) {
  const dbName = 'bench_view';
  const sizes = deps.quick ? [10_000] : [10_000, 100_000];
  const writes = deps.quick ? 50 : 200;
  const db = deps.client.db(dbName);
  const rand = prng(11);
  const entries: Array<Record<string, unknown>> = [];
  const docs: StoredRegistry[] = [];
  const at: Record<string, unknown> = {};
  const loads: Array<Record<string, number>> = [];
  let top = 0;
  let lag: Record<string, unknown> = {};
  let memory: Record<string, unknown> = {};
  let catchup: Array<Awaited<ReturnType<typeof catchUp>>> = [];
  for (const size of sizes) {
    const more = range(docs.length, size).map((i) => apiEntry(i, `http://127.0.0.1:9/v${i}`, rand, 'view'));
    const fresh = await storedDocs(more);
    const loaded = await deps.load(db, fresh, top > 0 ? top : undefined);
    entries.push(...more);
    docs.push(...fresh);
    top = loaded.top;
    deps.log(`view: ${fresh.length} entries written through the change log in ${round(loaded.s, 1)} s (${Math.round(fresh.length / loaded.s)}/s)`);
    const t0 = performance.now();
    const a = await deps.startService(deps.uri, dbName);
    let b: Child | undefined;
    try {
      const ready = JSON.parse(await a.waitForLine('change feed: view ready', 900_000)) as { duration_ms: number; entries: number };
      const readyS = (performance.now() - t0) / 1000;
      await reach(a, deps.auth, top, 60_000);
      loads.push({ entries: fresh.length, total: docs.length, load_s: round(loaded.s, 1), per_sec: Math.round(fresh.length / loaded.s), service_start_to_view_ready_s: round(readyS, 1), view_warm_up_ms: ready.duration_ms });
      deps.log(`view: replica A started with ${ready.entries} entries; view ready after ${round(readyS, 1)} s (warm-up ${ready.duration_ms} ms)`);
      at[String(size)] = await measureAt(deps, a, docs);
      if (size === sizes[sizes.length - 1]) {
        await sleep(5000);
        memory = { entries: docs.length, idle_rss_mb: round(rssMb(a.proc.pid!), 1), heap_mb: await deps.heap(a.port), target_mb: 300 };
        deps.log(`view: idle RSS at ${docs.length} entries ${memory.idle_rss_mb} MB, heap ${JSON.stringify(memory.heap_mb)}`);
        catchup = [await catchUp(deps, a, top), await catchUp(deps, a, top)];
        deps.log(`catch-up from 0: ${catchup.map((c) => `${c.changes} changes in ${c.seconds} s (${c.changes_per_sec}/s)`).join('; ')}`);
      }
      if (size === sizes[0]) {
        const bStarted = performance.now();
        b = await deps.startService(deps.uri, dbName);
        const bReady = JSON.parse(await b.waitForLine('change feed: view ready', 600_000)) as { duration_ms: number };
        const bReadyS = (performance.now() - bStarted) / 1000;
        await reach(b, deps.auth, top, 60_000);
        const l = await crossReplicaLag(deps, a, b, docs, entries, top, writes);
        deps.log(`lag A→B at ${docs.length} entries over ${writes} writes: p50 ${l.lag_p50_ms} ms, p99 ${l.lag_p99_ms} ms, max ${l.lag_max_ms} ms, missing ${l.missing}; PUT p50 ${l.put_p50_ms} ms`);
        lag = { entries: docs.length, ...l, replica_b: { start_to_ready_s: round(bReadyS, 1), view_warm_up_ms: bReady.duration_ms }, target_p99_ms: 1000 };
        // The lag writes moved the head: the next load starts above it.
        top = l.head;
      }
    } finally {
      await Promise.all([a.stop(), b?.stop()]);
    }
  }
  return {
    view: { sizes: at, loads, memory },
    catchup: { entries: docs.length, best_changes_per_sec: Math.max(...catchup.map((c) => c.changes_per_sec)), runs: catchup, target_per_sec: 20_000 },
    lag,
  };
}

/**
 * `--only=lag`: the cross-replica lag alone on a small catalog (`entries`, default 1,000), where each read of
 * the change log is cheap on FerretDB v1 (it scans the log for a numeric `_id`; see docs/benchmark.md).
 */
export async function lagPhase(deps: FeedDeps, size = 1000) {
  const dbName = 'bench_lag';
  const writes = deps.quick ? 50 : 200;
  const rand = prng(13);
  const entries = range(0, size).map((i) => apiEntry(i, `http://127.0.0.1:9/l${i}`, rand, 'lag'));
  const docs = await storedDocs(entries);
  const loaded = await deps.load(deps.client.db(dbName), docs);
  const a = await deps.startService(deps.uri, dbName);
  let b: Child | undefined;
  try {
    await a.waitForLine('change feed: view ready', 900_000);
    b = await deps.startService(deps.uri, dbName);
    const bReady = JSON.parse(await b.waitForLine('change feed: view ready', 900_000)) as { duration_ms: number };
    await reach(b, deps.auth, loaded.top, 60_000);
    const l = await crossReplicaLag(deps, a, b, docs, entries, loaded.top, writes);
    deps.log(`lag A→B at ${size} entries over ${writes} writes: p50 ${l.lag_p50_ms} ms, p99 ${l.lag_p99_ms} ms, max ${l.lag_max_ms} ms, missing ${l.missing}; PUT p50 ${l.put_p50_ms} ms`);
    return { entries: size, ...l, replica_b: { view_warm_up_ms: bReady.duration_ms }, target_p99_ms: 1000 };
  } finally {
    await Promise.all([a.stop(), b?.stop()]);
  }
}
