/**
 * The view's query engine on its own: orders, key-set cursors, projection, upserts that move entries, removes,
 * and rows the caller may change without touching the engine. (test/view/differential.test.ts compares it
 * with the database over generated filters.)
 */
import type { StoredRegistry } from '../../src/registries/model';
import { SORT_FIELDS, type QueryPlan, type SortSpec } from '../../src/registries/query';
import { compileFilter } from '../../src/view/filter';
import { compareBson, compareStrings } from '../../src/view/order';
import { QueryEngine } from '../../src/view/query-engine';

function doc(id: string, name: string, extra: Record<string, unknown> = {}): StoredRegistry {
  return {
    _id: id,
    container_registry_name: name,
    container_registry_public_url: 'http://127.0.0.1:5000',
    container_registry_tags: ['a'],
    container_registry_metadata: { owner: 'o' },
    container_registry_health: { status: 'unknown', consecutive_failures: 0 },
    created_at: '2026-12-01T00:00:00.000Z',
    updated_at: '2026-12-01T00:00:00.000Z',
    version: 1,
    ...extra,
  } as StoredRegistry;
}

function sort(spec: string): SortSpec {
  const field = spec.replace(/^-/, '');
  return { spec, field, dbField: SORT_FIELDS.get(field)!.dbField, direction: spec.startsWith('-') ? -1 : 1 };
}
const plan = (spec: string, limit: number, more: Partial<QueryPlan> = {}): QueryPlan => ({ filter: {}, sort: sort(spec), limit, ...more });
const ids = (rows: StoredRegistry[]) => rows.map((r) => r._id);

function engineWith(docs: StoredRegistry[]): QueryEngine {
  const e = new QueryEngine([...SORT_FIELDS.values()].map((f) => f.dbField));
  for (const d of docs) e.upsert(d);
  return e;
}

/** Every page of `p`, the next `after` built from the last row as the service builds its cursor. */
function walk(e: QueryEngine, p: QueryPlan): string[][] {
  const pages: string[][] = [];
  for (;;) {
    const rows = e.query(p);
    pages.push(ids(rows.slice(0, p.limit)));
    if (rows.length <= p.limit) return pages;
    const last = rows[p.limit - 1]!;
    const key = p.sort.dbField.split('.').reduce<any>((o, k) => o?.[k], last);
    p = { ...p, after: { key, id: last._id } };
  }
}

test('When entries share a sort key, then they come by _id within it, in the sort direction, limit + 1 rows', () => {
  const e = engineWith([doc('c', 'n1', { version: 2 }), doc('a', 'n2', { version: 2 }), doc('b', 'n3', { version: 1 }), doc('d', 'n4', { version: 3 })]);
  expect(ids(e.query(plan('version', 10)))).toEqual(['b', 'a', 'c', 'd']);
  expect(ids(e.query(plan('-version', 10)))).toEqual(['d', 'c', 'a', 'b']);
  expect(ids(e.query(plan('version', 2)))).toEqual(['b', 'a', 'c']);
  expect(ids(e.query(plan('-container_registry_id', 1)))).toEqual(['d', 'c']);
});

test('When strings differ beyond the BMP or in case, then they sort by code point, as the database does', () => {
  const e = engineWith([doc('1', '😀'), doc('2', '\uffff'), doc('3', 'a'), doc('4', 'B'), doc('5', 'é')]);
  expect(e.query(plan('container_registry_name', 10)).map((r) => r.container_registry_name)).toEqual(['B', 'a', 'é', '\uffff', '😀']);
});

test('When a sort key is missing, null or of another type, then entries follow BSON order: missing and null, numbers, strings', () => {
  const e = engineWith([
    doc('s', 'n1'),
    doc('m', 'n2', { container_registry_health: { consecutive_failures: 0 } }),
    doc('z', 'n3', { container_registry_health: { status: null } }),
    doc('n', 'n4', { container_registry_health: { status: 3 } }),
    doc('h', 'n5', { container_registry_health: { status: 'healthy' } }),
  ]);
  expect(ids(e.query(plan('container_registry_health.status', 10)))).toEqual(['m', 'z', 'n', 'h', 's']);
});

test('When pages are walked with cursors in either direction, then every match comes once, in order', () => {
  const docs = Array.from({ length: 53 }, (_, i) => doc(`id-${String(i).padStart(3, '0')}`, `name-${(i * 7) % 53}`, { version: i % 4, container_registry_tags: i % 2 ? ['odd'] : ['even'] }));
  const e = engineWith(docs);
  for (const spec of ['container_registry_name', '-container_registry_name', 'version', '-version', 'container_registry_id', '-created_at']) {
    const full = ids(e.query(plan(spec, 1000, { filter: { container_registry_tags: 'odd' } })));
    expect(full).toHaveLength(26);
    const pages = walk(e, plan(spec, 5, { filter: { container_registry_tags: 'odd' } }));
    expect(pages.flat()).toEqual(full);
    expect(pages).toHaveLength(6);
  }
});

test('When the entry under the cursor is removed before the next page, then the next page starts right after its position', () => {
  const e = engineWith(['a', 'b', 'c', 'd', 'e'].map((n) => doc(n, n)));
  const first = e.query(plan('container_registry_name', 2));
  expect(ids(first)).toEqual(['a', 'b', 'c']);
  e.remove('b');
  expect(ids(e.query(plan('container_registry_name', 2, { after: { key: 'b', id: 'b' } })))).toEqual(['c', 'd', 'e']);
  expect(ids(e.query(plan('-container_registry_name', 2, { after: { key: 'b', id: 'b' } })))).toEqual(['a']);
});

test('When fields are asked for, then rows hold _id, the sort field and those fields, in stored order; a dotted sort key only its key', () => {
  const e = engineWith([doc('a', 'n', { container_registry_health: { status: 'healthy', latency_ms: 3 } })]);
  const [byName] = e.query(plan('container_registry_name', 1, { fields: ['container_registry_id', 'version', 'container_registry_tags'] }));
  expect(Object.keys(byName!)).toEqual(['_id', 'container_registry_name', 'container_registry_tags', 'version']);
  const [byStatus] = e.query(plan('container_registry_health.status', 1, { fields: ['version', 'container_registry_health'] }));
  expect(byStatus).toEqual({ _id: 'a', container_registry_health: { status: 'healthy' }, version: 1 });
});

test('When an upsert changes sort keys, then the entry moves in every order; a remove takes it out of all of them', () => {
  const e = engineWith([doc('a', 'alpha'), doc('b', 'beta'), doc('c', 'gamma')]);
  e.upsert(doc('a', 'omega', { version: 9, container_registry_health: { status: 'healthy' } }));
  expect(e.size).toBe(3);
  expect(ids(e.query(plan('container_registry_name', 10)))).toEqual(['b', 'c', 'a']);
  expect(ids(e.query(plan('-version', 10)))).toEqual(['a', 'c', 'b']);
  expect(ids(e.query(plan('container_registry_health.status', 10)))).toEqual(['a', 'b', 'c']);
  expect(ids(e.query(plan('container_registry_name', 10, { filter: { container_registry_name: 'alpha' } })))).toEqual([]);
  e.remove('c');
  e.remove('missing');
  expect(e.size).toBe(2);
  for (const s of [...SORT_FIELDS.keys()]) expect(ids(e.query(plan(s, 10))).sort()).toEqual(['a', 'b']);
});

test('When a caller changes a returned row or the document it upserted, then the engine still holds what was stored', () => {
  const input = doc('a', 'alpha');
  const e = engineWith([input]);
  (input.container_registry_tags as string[]).push('changed');
  input.container_registry_name = 'changed';
  const [row] = e.query(plan('container_registry_name', 1));
  delete (row as Partial<StoredRegistry>).container_registry_name;
  expect(() => (row!.container_registry_tags as string[]).push('x')).toThrow(TypeError);
  expect(() => ((row!.container_registry_metadata as Record<string, unknown>).owner = 'x')).toThrow(TypeError);
  expect(e.query(plan('container_registry_name', 1))[0]).toEqual(doc('a', 'alpha'));
});

test('When a sort field has no order yet, then the engine builds one on first use and keeps it up to date', () => {
  const e = new QueryEngine();
  e.upsert(doc('b', 'x'));
  e.upsert(doc('a', 'y'));
  expect(ids(e.query(plan('container_registry_name', 10)))).toEqual(['b', 'a']);
  e.upsert(doc('c', 'a'));
  expect(ids(e.query(plan('container_registry_name', 10)))).toEqual(['c', 'b', 'a']);
});

test('When thousands of entries are inserted, moved and removed at random, then every order pages like a plain sort of what is left', () => {
  let seed = 7;
  const rand = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const e = new QueryEngine([...SORT_FIELDS.values()].map((f) => f.dbField));
  const live = new Map<string, StoredRegistry>();
  const make = (id: string) => doc(id, `n-${Math.floor(rand() * 5000)}-${id}`, { version: Math.floor(rand() * 20), updated_at: `2026-12-0${1 + Math.floor(rand() * 9)}`, container_registry_health: { status: ['healthy', 'unknown', 'degraded'][Math.floor(rand() * 3)] } });
  for (let i = 0; i < 10000; i++) {
    const id = `id-${Math.floor(rand() * 8000)}`;
    if (rand() < 0.15) {
      e.remove(id);
      live.delete(id);
    } else {
      const d = make(id);
      e.upsert(d);
      live.set(id, d);
    }
  }
  expect(e.size).toBe(live.size);
  expect(live.size).toBeGreaterThan(3 * 1024);
  for (const spec of ['container_registry_name', '-version', 'updated_at', '-container_registry_health.status', 'container_registry_id']) {
    const p = plan(spec, 97);
    const key = (d: StoredRegistry) => p.sort.dbField.split('.').reduce<any>((o, k) => o?.[k], d);
    const expected = [...live.values()].sort((a, b) => p.sort.direction * (compareBson(key(a), key(b)) || compareStrings(a._id, b._id))).map((d) => d._id);
    expect(walk(e, p).flat()).toEqual(expected);
  }
});

describe('filter semantics where mingo alone differs from the database', () => {
  const t = (f: Record<string, unknown>, d: Record<string, unknown>) => compileFilter(f)(d);
  test('When an object literal has its keys in another order, then it does not equal the stored object', () => {
    expect(t({ e: { y: 1, x: 'a' } }, { e: { x: 'a', y: 1 } })).toBe(false);
    expect(t({ e: { x: 'a', y: 1 } }, { e: { x: 'a', y: 1 } })).toBe(true);
    expect(t({ e: { $in: [{ y: 1, x: 'a' }] } }, { e: [{ x: 'a', y: 1 }] })).toBe(false);
    expect(t({ e: { $ne: { y: 1, x: 'a' } } }, { e: { x: 'a', y: 1 } })).toBe(true);
  });
  test('When a path runs through an array of objects, then an array literal, $size and $elemMatch see each value, not a gathered array', () => {
    const d = { m: { list: [{ k: 1 }, { k: 2 }] } };
    expect(t({ 'm.list.k': [1, 2] }, d)).toBe(false);
    expect(t({ 'm.list.k': 2 }, d)).toBe(true);
    expect(t({ 'm.list.k': { $size: 2 } }, d)).toBe(false);
    expect(t({ 'm.list': { $size: 2 } }, d)).toBe(true);
    expect(t({ 'm.list.k': { $elemMatch: { $gt: 1 } } }, d)).toBe(false);
    expect(t({ 'm.list': { $elemMatch: { k: 2 } } }, d)).toBe(true);
    expect(t({ 'm.list.k': [3] }, { m: { list: [{ k: [3] }] } })).toBe(true);
  });
  test('When null is compared through arrays, then it matches paths that reach no value, as the test database does', () => {
    expect(t({ 'l.k': null }, { l: [] })).toBe(true);
    expect(t({ 'l.k': null }, { l: [1] })).toBe(true);
    expect(t({ 'l.k': null }, { l: [{ k: 1 }, null] })).toBe(false);
    expect(t({ l: null }, { l: [1, null] })).toBe(true);
    expect(t({ 'l.k': { $ne: null } }, { l: [] })).toBe(false);
    expect(t({ l: { $gte: null } }, {})).toBe(true);
    expect(t({ l: { $lte: null, $in: [1] } }, { l: null })).toBe(false);
    expect(t({ l: { $in: [null, 1] } }, { l: [1] })).toBe(true);
  });
  test('When $all meets a scalar value or objects, then it compares as the test database does', () => {
    expect(t({ b: { $all: ['s'] } }, { b: 's' })).toBe(true);
    expect(t({ b: { $all: [] } }, { b: [] })).toBe(false);
    expect(t({ a: { $all: [{ y: 2, x: 1 }] } }, { a: [{ x: 1, y: 2 }] })).toBe(false);
    expect(t({ a: { $all: [{ x: 1 }] } }, { a: [{ x: 1 }, 2] })).toBe(true);
    expect(t({ 'a.x': { $all: [1, 2] } }, { a: [{ x: 1 }, { x: 2 }] })).toBe(false);
  });
  test('When an object literal meets an array of objects, then only the whole value is compared, as the test database does', () => {
    expect(t({ a: { x: 1 } }, { a: [{ x: 1 }] })).toBe(false);
    expect(t({ a: { $in: [{ x: 1 }] } }, { a: { x: 1 } })).toBe(true);
  });
  test('When a regex carries options i, m, s or x, then they mean what they mean to the database', () => {
    expect(t({ n: { $regex: 'A b # comment', $options: 'ix' } }, { n: 'xaby' })).toBe(true);
    expect(t({ n: { $regex: '^b$', $options: 'm' } }, { n: 'a\nb' })).toBe(true);
    expect(t({ n: { $regex: '^b$' } }, { n: 'a\nb' })).toBe(false);
    expect(t({ n: { $regex: 'a.b', $options: 's' } }, { n: 'a\nb' })).toBe(true);
    expect(t({ n: { $regex: '^.$' } }, { n: '😀' })).toBe(true);
  });
});
