/**
 * `$elemMatch` with criteria on the fields of array elements that are objects (issue 24 item 9): one element
 * must satisfy all of them. The answers are MongoDB's, written out by hand, and the same from the in-memory
 * view and from the database (QUERY_SOURCE=database; FerretDB v1 cannot run these itself, so the service
 * relaxes the filter for it and evaluates the $elemMatch on what it returns).
 */
import { randomUUID } from 'node:crypto';
import { entry } from '../support/entries';
import { call, expectProblem, startTestService, testDbName, type TestService } from '../support/service';

const tag = `em-${randomUUID().slice(0, 8)}`;
const META: Record<string, Record<string, unknown>> = {
  A: { items: [{ name: 'a', n: 1 }, { name: 'b', n: 5 }], nums: [1, 5] },
  B: { items: [{ name: 'a', n: 5 }], nums: [3] },
  C: { items: [{ name: 'a' }, { n: 5 }] },
  D: { items: ['a', 5] },
  E: { items: { name: 'a', n: 5 } },
  F: {},
};
const ids: Record<string, string> = {};
let viewSvc: TestService;
let dbSvc: TestService;

beforeAll(async () => {
  const dbName = testDbName();
  viewSvc = await startTestService({}, { dbName });
  dbSvc = await startTestService({ QUERY_SOURCE: 'database' }, { dbName });
  for (const [k, meta] of Object.entries(META)) {
    const r = await call(viewSvc.url, 'POST', '/container_registry', entry({ container_registry_tags: [tag], container_registry_metadata: meta }));
    expect(r.status).toBe(201);
    ids[r.body.container_registry_id] = k;
  }
}, 60_000);
afterAll(async () => {
  await dbSvc?.close({ keepDatabase: true });
  await viewSvc?.close();
});

const items = 'container_registry_metadata.items';
const cases: Array<[string, Record<string, unknown>, string[]]> = [
  ['two criteria that one element must meet together', { [items]: { $elemMatch: { name: 'a', n: { $gt: 2 } } } }, ['B']],
  ['one criterion', { [items]: { $elemMatch: { name: 'a' } } }, ['A', 'B', 'C']],
  ['a field an element lacks', { [items]: { $elemMatch: { n: { $exists: false } } } }, ['C']],
  ['$or inside', { [items]: { $elemMatch: { $or: [{ name: 'b' }, { n: { $lt: 2 } }] } } }, ['A']],
  ['$ne inside (an element without the field counts)', { [items]: { $elemMatch: { name: { $ne: 'a' } } } }, ['A', 'C']],
  ['a regex with options inside', { [items]: { $elemMatch: { name: { $regex: '^A$', $options: 'i' }, n: 5 } } }, ['B']],
  ['$not around it', { [items]: { $not: { $elemMatch: { name: 'a' } } } }, ['D', 'E', 'F']],
  ['$nor around it', { $nor: [{ [items]: { $elemMatch: { n: 5 } } }] }, ['D', 'E', 'F']],
  ['$or of it and another field', { $or: [{ [items]: { $elemMatch: { name: 'b' } } }, { 'container_registry_metadata.nums': 3 }] }, ['A', 'B']],
  ['operators on scalar elements (unchanged)', { 'container_registry_metadata.nums': { $elemMatch: { $gte: 2, $lt: 4 } } }, ['B']],
];

describe.each([
  ['the view', () => viewSvc],
  ['the database', () => dbSvc],
])('When $elemMatch is queried from %s', (_source, svc) => {
  test.each(cases)('with %s, then the entries are the ones MongoDB answers', async (_what, filter, want) => {
    const r = await call(svc().url, 'POST', '/container_registries?limit=50', { $and: [{ container_registry_tags: tag }, filter] });
    expect(r.status).toBe(200);
    expect(r.body.map((e: { container_registry_id: string }) => ids[e.container_registry_id]).sort()).toEqual(want);
  });

  test('with a projection and a limit of 1, then the pages hold the matching entries in order', async () => {
    const seen: string[] = [];
    let path: string | undefined = '/container_registries?limit=1&fields=container_registry_name';
    while (path) {
      const r = await call(svc().url, 'POST', path, { $and: [{ container_registry_tags: tag }, { [items]: { $elemMatch: { name: 'a' } } }] });
      expect(r.status).toBe(200);
      expect(Object.keys(r.body[0] ?? {}).sort()).toEqual(r.body.length ? ['container_registry_id', 'container_registry_name'] : []);
      seen.push(...r.body.map((e: { container_registry_id: string }) => ids[e.container_registry_id]));
      const link = r.headers.get('link');
      path = link ? /^<([^>]+)>; rel="next"$/.exec(link)![1] : undefined;
    }
    expect(seen.sort()).toEqual(['A', 'B', 'C']);
  });
});

test.each([
  ['an operator beside field criteria', { [items]: { $elemMatch: { name: 'a', $gt: 1 } } }, `/${items}/$elemMatch/$gt`],
  ['a forbidden operator inside', { [items]: { $elemMatch: { name: { $where: 'x' } } } }, `/${items}/$elemMatch/name/$where`],
  ['a prototype key as a field', { [items]: { $elemMatch: { constructor: 1 } } }, `/${items}/$elemMatch/constructor`],
  ['an empty $elemMatch', { [items]: { $elemMatch: {} } }, `/${items}/$elemMatch`],
])('When $elemMatch holds %s, then it is a 400 naming the path', async (_what, filter, path) => {
  expectProblem(await call(viewSvc.url, 'POST', '/container_registries', filter), 400, path);
});
