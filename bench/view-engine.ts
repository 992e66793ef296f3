/**
 * Micro-benchmark of the view's query engine (src/view/query-engine.ts), in process, no database: loads
 * 10,000 and 100,000 bench-shaped stored documents (bench/data.ts, plus a probed health object) and prints
 * the benchmark query's p50/p99 (first page and a page deep in, by cursor), a selective query's, the cost
 * of an upsert and of an insert + remove, and the heap the engine holds per 10,000 entries.
 *
 *   npm run build --silent && npx tsc -p bench/tsconfig.json && node --expose-gc dist/bench/view-engine.js
 */
import { performance } from 'node:perf_hooks';
import type { StoredRegistry } from '../src/registries/model';
import { parseQueryPlan, SORT_FIELDS, type QueryPlan } from '../src/registries/query';
import { QueryEngine } from '../src/view/query-engine';
import { apiEntry, prng, QUERY, storedDocs } from './data';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

function heapMb(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

function time(runs: number, fn: (i: number) => void): { p50: number; p99: number } {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn(i);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { p50: percentile(ms, 50), p99: percentile(ms, 99) };
}

const fmt = (t: { p50: number; p99: number }) => `p50 ${t.p50.toFixed(3)} ms, p99 ${t.p99.toFixed(3)} ms`;

function probedHealth(i: number, rand: () => number): StoredRegistry['container_registry_health'] {
  const at = new Date(Date.UTC(2026, 11, 3, 12, 0, i % 60, i % 1000)).toISOString();
  const healthy = rand() < 0.8;
  return {
    status: healthy ? 'healthy' : 'unhealthy',
    checked_at: at,
    latency_ms: Math.round(rand() * 200),
    http_status: healthy ? 200 : null,
    api_version: healthy ? 'registry/2.0' : null,
    auth_required: false,
    auth: { required: false, scheme: null, realm: null, service: null },
    tls: null,
    error: healthy ? null : 'connection_refused',
    detail: healthy ? null : 'connect ECONNREFUSED 127.0.0.1:9',
    consecutive_failures: healthy ? 0 : 1,
    last_healthy_at: healthy ? at : null,
    last_status_change_at: at,
  };
}

async function load(engine: QueryEngine, from: number, to: number, rand: () => number): Promise<void> {
  const CHUNK = 5000;
  for (let start = from; start < to; start += CHUNK) {
    const n = Math.min(CHUNK, to - start);
    const docs = await storedDocs(Array.from({ length: n }, (_, k) => apiEntry(start + k, `http://127.0.0.1:9/r${start + k}`, rand)));
    // Through JSON, so strings are flat as the driver's decoder makes them (not the concatenations built here).
    docs.forEach((d, k) => engine.upsert(JSON.parse(JSON.stringify({ ...d, container_registry_health: probedHealth(start + k, rand) }))));
  }
}

async function main(): Promise<void> {
  const rand = prng(42);
  // Warm the service code that builds the documents, so the baseline holds it.
  await storedDocs([apiEntry(0, 'http://127.0.0.1:9/w', prng(1), 'warm')]);
  const engine = new QueryEngine([...SORT_FIELDS.values()].map((f) => f.dbField));
  const base = heapMb();
  const benchPlan = parseQueryPlan(QUERY.filter, { sort: QUERY.sortSpec, limit: String(QUERY.limit) });
  const selective = parseQueryPlan({ 'container_registry_metadata.owner': 'team-3', container_registry_tags: 'ai', 'container_registry_health.status': 'healthy' }, { sort: '-updated_at', limit: '50' });
  let loaded = 0;
  for (const size of [10_000, 100_000]) {
    await load(engine, loaded, size, rand);
    loaded = size;
    const heap = heapMb() - base;
    // A cursor half-way through the name order, as a client deep in the pages sends it.
    const mid = engine.query({ ...benchPlan, limit: 1, after: { key: `bench-${String(Math.floor(size / 2)).padStart(7, '0')}`, id: '' } })[0]!;
    const deep: QueryPlan = { ...benchPlan, after: { key: mid.container_registry_name, id: mid._id } };
    for (let i = 0; i < 200; i++) engine.query(benchPlan); // warm-up
    const first = time(2000, () => engine.query(benchPlan));
    const deeper = time(2000, () => engine.query(deep));
    const sel = time(200, () => engine.query(selective));
    // Upserts of existing entries: a changed name moves it in the name order; a probe result moves it in the status order.
    const ids = engine.query({ ...benchPlan, filter: {}, limit: 999 }).map((d) => d._id);
    const moved = time(1000, (i) => {
      const cur = engine.get(ids[i % ids.length]!)!;
      engine.upsert({ ...cur, container_registry_name: `renamed-${i}`, updated_at: new Date().toISOString(), version: cur.version + 1 } as StoredRegistry);
    });
    const probed = time(1000, (i) => {
      const cur = engine.get(ids[(i * 7) % ids.length]!)!;
      engine.upsert({ ...cur, container_registry_health: probedHealth(i, rand) } as StoredRegistry);
    });
    const churn = time(1000, (i) => {
      const d = { ...engine.get(ids[0]!)!, _id: `new-${size}-${i}`, container_registry_name: `new-${i}` } as StoredRegistry;
      engine.upsert(d);
      engine.remove(d._id);
    });
    const rows = engine.query(benchPlan).length;
    console.log(`${size} entries: heap ${heap.toFixed(1)} MB (${((heap * 10_000) / size).toFixed(1)} MB per 10,000 entries)`);
    console.log(`  benchmark query (${rows} rows), first page: ${fmt(first)}; page from a cursor half-way: ${fmt(deeper)}`);
    console.log(`  selective query (owner + tag + status, sort -updated_at): ${fmt(sel)}`);
    console.log(`  upsert that renames: ${fmt(moved)}; upsert of a probe result: ${fmt(probed)}; insert + remove: ${fmt(churn)}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
