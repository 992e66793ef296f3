/**
 * Differential test of the in-memory query engine (SPEC 13): fast-check generates filters from the API's
 * allow-list (every operator, nested $and/$or/$nor/$not/$elemMatch, dotted paths, regexes with options,
 * arrays, missing fields, nulls, mixed types), sorts, limits and projections; for each, the engine and
 * RegistryRepository.query on the real test database return the same rows in the same order, page by page
 * (the next page's `after` built from the last row as the service builds its cursor).
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { MongoClient, type Db } from 'mongodb';
import { InputError } from '../../src/errors';
import type { StoredRegistry } from '../../src/registries/model';
import { parseQueryPlan, SORT_FIELDS, type QueryPlan } from '../../src/registries/query';
import { RegistryRepository } from '../../src/registries/repository';
import { entryFields } from '../../src/schemas';
import { QueryEngine } from '../../src/view/query-engine';
import { testDbName } from '../support/service';
import { catalogDocs, FILTER_STRINGS, NUMBERS, REGEXES } from './generated-catalog';

let client: MongoClient;
let db: Db;
let repo: RegistryRepository;
const engine = new QueryEngine([...SORT_FIELDS.values()].map((f) => f.dbField));

beforeAll(async () => {
  client = new MongoClient(process.env.TEST_MONGODB_URI!, { serverSelectionTimeoutMS: 5000 });
  await client.connect();
  db = client.db(testDbName());
  repo = new RegistryRepository(db, 30_000);
  await repo.ensureIndexes();
  await repo.collection.insertMany(catalogDocs(240, 20261203));
  // The engine holds the documents as the database returns them, as the change feed will hand them over.
  for (const doc of await repo.collection.find({}).toArray()) engine.upsert(doc);
}, 60_000);
afterAll(async () => {
  await db?.dropDatabase().catch(() => undefined);
  await client?.close();
});

const OBJECT_PATHS = [
  'container_registry_metadata.owner',
  'container_registry_metadata.region',
  'container_registry_metadata.n',
  'container_registry_metadata.flag',
  'container_registry_metadata.list',
  'container_registry_metadata.list.k',
  'container_registry_metadata.list.0',
  'container_registry_metadata.nested',
  'container_registry_metadata.nested.x',
  'container_registry_metadata.nested.deep.z',
  'container_registry_metadata.absent',
  'container_registry_config.auth_required',
  'container_registry_config.mirror_enabled',
  'container_registry_config.storage_backend',
  'container_registry_config.max_layer_size_mb',
  'container_registry_config.extra',
  'container_registry_storage_info.storage_type',
  'container_registry_storage_info.storage_size',
  'container_registry_storage_info.registry_type',
  'container_registry_storage_info.observed.x',
  'container_registry_health.status',
  'container_registry_health.latency_ms',
  'container_registry_health.error',
  'container_registry_health.auth',
  'container_registry_health.auth.required',
];
const TOP_FIELDS = ['container_registry_id', 'container_registry_name', 'container_registry_tags', 'container_registry_public_url', 'container_registry_image_prefix', 'container_registry_metadata', 'container_registry_config', 'container_registry_storage_info', 'container_registry_health', 'created_at', 'updated_at', 'version'];

const scalar = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...FILTER_STRINGS) },
  { weight: 3, arbitrary: fc.constantFrom(...NUMBERS) },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 2, arbitrary: fc.constant(null) },
);
const literal = fc.oneof(
  { weight: 6, arbitrary: scalar },
  { weight: 2, arbitrary: fc.array(scalar, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom<Record<string, unknown>>({ x: 'a', y: 1 }, { y: 1, x: 'a' }, { x: 'a' }, {}, { z: 'b' }, { required: true }, { required: false }) },
);
const path = fc.oneof({ weight: 1, arbitrary: fc.constantFrom(...TOP_FIELDS) }, { weight: 2, arbitrary: fc.constantFrom(...OBJECT_PATHS) });

const { filter } = fc.letrec<{ filter: Record<string, unknown>; operators: Record<string, unknown>; condition: unknown }>((tie) => ({
  operators: fc
    .array(
      fc.oneof(
        { weight: 6, arbitrary: fc.tuple(fc.constantFrom('$eq', '$ne', '$gt', '$gte', '$lt', '$lte'), fc.oneof({ weight: 5, arbitrary: scalar }, { weight: 1, arbitrary: literal })) },
        { weight: 3, arbitrary: fc.tuple(fc.constantFrom('$in', '$nin', '$all'), fc.array(literal, { maxLength: 4 })) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('$exists'), fc.boolean()) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('$size'), fc.nat(4)) },
        { weight: 2, arbitrary: fc.tuple(fc.constant('$regex'), fc.constantFrom(...REGEXES)) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('$elemMatch'), tie('operators')) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('$elemMatch'), fc.dictionary(fc.constantFrom('k', 'v', 'x'), scalar, { minKeys: 1, maxKeys: 2 })) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('$not'), tie('operators')) },
      ),
      { minLength: 1, maxLength: 3 },
    )
    .chain((pairs) => {
      const o = Object.fromEntries(pairs);
      // $options goes with $regex only (schema: dependentRequired).
      return !('$regex' in o) ? fc.constant(o) : fc.constantFrom('', 'i', 'm', 's', 'x', 'im', 'ix', 'ms').map((opt) => (opt ? { ...o, $options: opt } : o));
    }),
  condition: fc.oneof({ weight: 2, arbitrary: literal }, { weight: 3, arbitrary: tie('operators') }),
  filter: fc
    .array(
      fc.oneof(
        { weight: 5, arbitrary: fc.tuple(path, tie('condition')) },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom('$and', '$or', '$nor'), fc.array(tie('filter'), { minLength: 1, maxLength: 3 })) },
      ),
      { maxLength: 3 },
    )
    .map((pairs) => Object.fromEntries(pairs)),
}));

const sortSpec = fc.tuple(fc.constantFrom(...[...SORT_FIELDS.keys()]), fc.boolean()).map(([f, desc]) => (desc ? `-${f}` : f));
const fields = fc.option(fc.subarray([...entryFields], { minLength: 1, maxLength: 4 }), { nil: undefined, freq: 3 });
const limit = fc.oneof(fc.integer({ min: 1, max: 12 }), fc.constantFrom(50, 100));

/**
 * Filters FerretDB v1 answers wrongly (against MongoDB, whose semantics the engine keeps): its $elemMatch
 * never matches an object element ({$elemMatch: {k: 1}} over [{k: 1}]), and with $exists or $nin inside it
 * matches an empty array. The generated catalog holds objects in arrays only under metadata.list.
 */
function ferretElemMatchBug(f: Record<string, unknown>): boolean {
  return Object.entries(f).some(([k, v]) => {
    if (k === '$and' || k === '$or' || k === '$nor') return (v as Record<string, unknown>[]).some(ferretElemMatchBug);
    const text = JSON.stringify(v);
    if (!text.includes('"$elemMatch"')) return false;
    return k.startsWith('container_registry_metadata.list') || /"\$elemMatch":\{[^]*"\$(exists|nin)"/.test(text);
  });
}

function nextAfter(plan: QueryPlan, last: StoredRegistry): QueryPlan['after'] | null {
  const key = plan.sort.dbField.split('.').reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), last);
  const id = last._id;
  if (plan.sort.dbField === '_id') return { key: id, id };
  // The service's cursor carries only a key of the sort field's declared type; past any other, no next page.
  return typeof key === SORT_FIELDS.get(plan.sort.field)!.type ? { key: key as string | number, id } : null;
}

test('When generated filters, sorts, limits and projections are run page by page, then the engine returns exactly the database rows', async () => {
  let accepted = 0;
  let pagesCompared = 0;
  let nonEmpty = 0;
  let excluded = 0;
  const mismatches: string[] = [];
  const notImplemented = new Set<string>();
  await fc.assert(
    fc.asyncProperty(filter, sortSpec, limit, fields, async (f, sort, lim, flds) => {
      let plan: QueryPlan;
      try {
        plan = parseQueryPlan(f, { sort, limit: String(lim), ...(flds ? { fields: flds.join(',') } : {}) });
      } catch (e) {
        if (e instanceof InputError) return true;
        throw e;
      }
      accepted++;
      if (ferretElemMatchBug(f)) return excluded++, true;
      for (let page = 0; page < 3; page++) {
        let fromDb: StoredRegistry[];
        try {
          fromDb = await repo.query(plan);
        } catch (e) {
          // What FerretDB v1 does not implement (the regex option x, $ne inside $elemMatch, ...) it refuses
          // with NotImplemented; MongoDB runs it, and so does the engine, with MongoDB's semantics.
          if ((e as { code?: number }).code === 238) {
            notImplemented.add(String((e as Error).message));
            return excluded++, true;
          }
          throw e;
        }
        const fromEngine = engine.query(plan);
        pagesCompared++;
        if (fromDb.length > 0) nonEmpty++;
        const what = `filter ${JSON.stringify(f)} sort ${sort} limit ${lim} fields ${flds?.join(',')} page ${page} after ${JSON.stringify(plan.after)}`;
        const ids = (rows: StoredRegistry[]) => rows.map((r) => r._id);
        if (JSON.stringify(ids(fromEngine)) !== JSON.stringify(ids(fromDb))) {
          if (process.env.DIFF_COLLECT) { mismatches.push(`${what}\n  database: ${JSON.stringify(ids(fromDb))}\n  engine:   ${JSON.stringify(ids(fromEngine))}`); return true; }
          throw new Error(`${what}\n  database: ${JSON.stringify(ids(fromDb))}\n  engine:   ${JSON.stringify(ids(fromEngine))}`);
        }
        if (process.env.DIFF_COLLECT) {
          try {
            expect(fromEngine).toStrictEqual(fromDb);
          } catch (e) {
            mismatches.push(`${what}\n  ${String(e).slice(0, 1500)}`);
            return true;
          }
        }
        expect(fromEngine).toStrictEqual(fromDb);
        if (fromDb.length <= plan.limit) break;
        const after = nextAfter(plan, fromDb[plan.limit - 1]!);
        if (!after) break;
        plan = { ...plan, after };
      }
      return true;
    }),
    { numRuns: 220, seed: Number(process.env.DIFF_SEED ?? 20261203), endOnFailure: true },
  );
  if (process.env.DIFF_COLLECT) console.log([...notImplemented].join('\n'), excluded, accepted, pagesCompared, nonEmpty);
  if (process.env.DIFF_COLLECT) console.log(mismatches.length + '\n' + mismatches.sort((a, b) => a.length - b.length).slice(0, 40).join('\n'));
  // The generators must exercise the engine: most filters are accepted and many match something.
  expect(accepted - excluded).toBeGreaterThan(150);
  expect(nonEmpty).toBeGreaterThan(pagesCompared / 4);
}, 300_000);
