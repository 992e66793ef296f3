/**
 * The in-memory view alone, in this process (no database, no HTTP): the heap it holds and the time of the
 * benchmark's query at 10,000 and 100,000 entries. Run with `node --expose-gc dist/bench/view-memory.js`.
 * The same documents as the view phase (bench/data.ts), loaded as the replica's reader loads them.
 */
import { parseQueryPlan, SORT_FIELDS } from '../src/registries/query';
import { CatalogView } from '../src/view/catalog-view';
import { collectChanges, ConsumerLens } from '../src/feed/changes';
import { apiEntry, prng, QUERY, storedDocs } from './data';

const gc = (globalThis as { gc?: () => void }).gc;
const heapMb = () => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

async function main(): Promise<void> {
  if (!gc) throw new Error('run with node --expose-gc');
  const out: Record<string, unknown> = {};
  for (const n of [10_000, 100_000]) {
    const rand = prng(11);
    const before = heapMb();
    const view = new CatalogView(Object.values(SORT_FIELDS).map((f) => f.dbField));
    const at = new Date();
    // Built in chunks, each chunk dropped after it is applied, so that only the view stays on the heap. The
    // reader hands the view each record's own copy of the document (a parsed BSON document): cloned here.
    for (let from = 0; from < n; from += 10_000) {
      const docs = await storedDocs(Array.from({ length: Math.min(10_000, n - from) }, (_, k) => apiEntry(from + k, `http://127.0.0.1:9/v${from + k}`, rand, 'view')));
      docs.forEach((d, k) => view.apply({ revision: from + k + 1, id: d._id, op: 'upsert', at, doc: structuredClone({ ...d, revision: from + k + 1 }) }));
    }
    view.revision = n;
    const held = heapMb() - before;
    const plan = parseQueryPlan(QUERY.filter, { limit: String(QUERY.limit), sort: QUERY.sortSpec });
    for (let i = 0; i < 20; i++) view.engine.query(plan);
    const times: number[] = [];
    for (let i = 0; i < 100; i++) {
      const t0 = performance.now();
      view.engine.query(plan);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    // Catch-up as the changes route serves it (pages of 5,000, each serialised), without HTTP.
    const lens = new ConsumerLens({ localOnly: false });
    const c0 = performance.now();
    let bytes = 0;
    for (let since = 0; since < n; ) {
      const page = collectChanges(view, lens, since, 5000);
      bytes += JSON.stringify(page).length;
      since = page.revision;
    }
    const catchupS = (performance.now() - c0) / 1000;
    out[String(n)] = { catchup_changes_per_sec: Math.round(n / catchupS), catchup_mb: Math.round(bytes / 2 ** 20), view_heap_mb: Math.round(held * 10) / 10, per_entry_kb: Math.round((held * 1024 * 10) / n) / 10, query_p50_ms: Math.round(times[49]! * 100) / 100, query_p99_ms: Math.round(times[98]! * 100) / 100, rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20) };
    process.stderr.write(`${n}: ${JSON.stringify(out[String(n)])}\n`);
  }
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

void main();
