/**
 * Filter evaluation in time slices (src/view/budget.ts), on the real engine and view with documents long enough
 * that matching them takes far longer than one slice: a view query steps slice by slice and finds exactly what
 * it finds in one go (also with writes between its steps), runs out of its total budget with a 503 naming it,
 * and one entry that cannot be evaluated in a slice is a 503 at once; a feed page ends early at its slice, and
 * following the pages gives every match.
 */
import type { StoredRegistry } from '../../src/registries/model';
import { parseQueryPlan, SORT_FIELDS } from '../../src/registries/query';
import { collectChanges, ConsumerLens } from '../../src/feed/changes';
import { FilterBudget, QueryBudgetError } from '../../src/view/budget';
import { CatalogView } from '../../src/view/catalog-view';
import { QueryEngine } from '../../src/view/query-engine';

const SORTS = [...SORT_FIELDS.values()].map((f) => f.dbField);
/**
 * 600 characters on which RE2 is slow for `a.{60}b` (a b first, so that it cannot be ruled out without scanning,
 * then a and c at random: every a starts a thread the engine carries for 60 characters, and its DFA keeps being
 * rebuilt); every other one ends with a match. Scanning one takes milliseconds; 100 of them far more than a
 * slice. Each test has a pattern of its own (a.{60}b, a.{59}b, ...), so none finds another's work cached.
 */
function text(i: number): string {
  let x = 12345 + i;
  const random = () => (x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const body = Array.from({ length: 600 }, () => (random() < 0.5 ? 'a' : 'c')).join('');
  return `b${body}${i % 2 === 0 ? `${'a'.repeat(70)}b` : ''}`;
}
const doc = (i: number, extra: Record<string, unknown> = {}): StoredRegistry =>
  ({ _id: `id-${String(i).padStart(4, '0')}`, container_registry_name: `n-${String(i).padStart(4, '0')}`, container_registry_metadata: { text: text(i), ...extra }, version: 1 }) as unknown as StoredRegistry;
let patterns = 0;
const slow = () => ({ 'container_registry_metadata.text': { $regex: `a.{${60 - patterns++}}b` } });
/** Eight such patterns over 64 such strings: one entry takes far longer than a slice. */
const slowest = () => ({ $and: Array.from({ length: 8 }, () => slow()) });
const longEntry = () => doc(1, { text: Array.from({ length: 64 }, (_, k) => text(2 * k + 1)) });
const N = 100;

function engineWith(n: number): QueryEngine {
  const engine = new QueryEngine(SORTS);
  for (let i = 0; i < n; i++) engine.upsert(doc(i));
  return engine;
}

function expect503(fn: () => unknown, limit: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(QueryBudgetError);
  const e = err as QueryBudgetError;
  expect({ status: e.status, limit: e.extensions.limit, retryAfter: e.headers['Retry-After'] }).toEqual({ status: 503, limit, retryAfter: expect.stringMatching(/^\d+$/) });
}

test('When a slow filter is run in slices, then it takes several steps and returns exactly the rows of one run, writes between steps seen once', () => {
  const engine = engineWith(N);
  const plan = parseQueryPlan(slow(), { limit: '1000' });
  const once = engine.query(plan).map((d) => d._id);
  expect(once).toHaveLength(N / 2);

  const run = engine.start(plan);
  const budget = new FilterBudget();
  let steps = 0;
  let rows: StoredRegistry[] | undefined;
  while (!(rows = run.step(budget))) {
    steps++;
    if (steps === 1) {
      engine.upsert(doc(9998)); // ahead of the position, matching: found
      engine.remove('id-0098'); // ahead, matching: gone
      engine.upsert({ ...doc(0), container_registry_name: 'z-moved' } as StoredRegistry); // already returned, moved ahead: not twice
    }
  }
  expect(steps).toBeGreaterThan(1);
  const ids = rows.map((d) => d._id);
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.sort()).toEqual([...once.filter((id) => id !== 'id-0098'), 'id-9998'].sort());
});

test('When a slow query outlasts its total budget, then it is a 503 naming QUERY_TIMEOUT_MS', () => {
  const run = engineWith(N).start(parseQueryPlan(slow(), { limit: '1000' }));
  const budget = new FilterBudget(100, 'QUERY_TIMEOUT_MS');
  expect503(() => {
    while (!run.step(budget));
  }, 'QUERY_TIMEOUT_MS');
});

test('When one entry alone takes longer than a slice, then the query is a 503 at once, naming the per-entry limit', () => {
  const engine = new QueryEngine(SORTS);
  engine.upsert(longEntry());
  const run = engine.start(parseQueryPlan(slowest(), {}));
  expect503(() => run.step(new FilterBudget()), 'filter evaluation per entry (ms)');
});

test('When a match would cost more than one match may, then it is a 503 before it runs', () => {
  const engine = new QueryEngine(SORTS);
  engine.upsert(doc(1, { cert: 'é'.repeat(65_536) }));
  const plan = parseQueryPlan({ 'container_registry_metadata.cert': { $regex: '\\pL{20}x' } }, {});
  expect503(() => engine.query(plan), 'regex match cost (instructions × characters)');
  // A small pattern searches the same value.
  expect(engine.query(parseQueryPlan({ 'container_registry_metadata.cert': { $regex: 'éx' } }, {}))).toEqual([]);
});

test('When a feed page evaluates a slow filter, then it ends at its slice and the pages together hold every match once', () => {
  const view = new CatalogView(SORTS);
  const at = new Date();
  for (let i = 0; i < N; i++) view.apply({ revision: i + 1, id: doc(i)._id, op: 'upsert', at, doc: doc(i) });
  const lens = new ConsumerLens({ filter: parseQueryPlan(slow(), {}).filter, localOnly: false });
  const seen: string[] = [];
  let since = 0;
  let pages = 0;
  while (since < view.revision) {
    const page = collectChanges(view, lens, since, 5000, view.revision);
    expect(page.revision).toBeGreaterThan(since);
    seen.push(...page.changes.map((c) => c.container_registry_id));
    since = page.revision;
    pages++;
  }
  expect(pages).toBeGreaterThan(1);
  expect(seen).toEqual(Array.from({ length: N / 2 }, (_, k) => doc(2 * k)._id));
});

test('When one entry of a feed page takes longer than a slice, then the page is a 503 naming the limit, and so is a live change', () => {
  const view = new CatalogView(SORTS);
  const change = view.apply({ revision: 1, id: longEntry()._id, op: 'upsert', at: new Date(), doc: longEntry() })!;
  const lens = new ConsumerLens({ filter: parseQueryPlan(slowest(), {}).filter, localOnly: false });
  expect503(() => collectChanges(view, lens, 0, 10), 'filter evaluation per entry (ms)');
  expect503(() => lens.kindOfChange(change), 'filter evaluation per entry (ms)');
});
