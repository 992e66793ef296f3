/**
 * Key-set pagination: every matching entry exactly once across pages, whatever the sort.
 */
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';

let svc: TestService;
const TOTAL = 5000;
const expected = new Set<string>();

beforeAll(async () => {
  svc = await startTestService();
  // Created through the API, 16 at a time; every third entry carries the tag the test filters on.
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < TOTAL) {
        const i = next++;
        const tags = i % 3 === 0 ? ['paged', `n${i % 7}`] : [`n${i % 7}`];
        const r = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: `page-${String(i).padStart(5, '0')}`, container_registry_tags: tags }));
        if (r.status !== 201) throw new Error(`create ${i}: ${r.status} ${r.text}`);
        if (i % 3 === 0) expected.add(r.body.container_registry_id);
      }
    }),
  );
}, 300_000);
afterAll(() => svc.close());

async function pageThrough(sort: string): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let path: string | undefined = `/container_registries?limit=97&sort=${sort}`;
  let pages = 0;
  while (path) {
    const r = await call(svc.url, 'POST', path, { container_registry_tags: { $in: ['paged'] } });
    expect(r.status).toBe(200);
    expect(r.body.length).toBeLessThanOrEqual(97);
    ids.push(...r.body.map((e: { container_registry_id: string }) => e.container_registry_id));
    pages++;
    const link = r.headers.get('link');
    path = link ? /^<([^>]+)>; rel="next"$/.exec(link)![1] : undefined;
  }
  return { ids, pages };
}

test.each(['container_registry_name', '-created_at', 'container_registry_health.status'])(
  'When 5,000 entries are paged through with a tag filter, sort %s and limit=97, then every match comes exactly once',
  async (sort) => {
    const { ids, pages } = await pageThrough(sort);
    expect(ids.length).toBe(expected.size);
    expect(new Set(ids)).toEqual(expected);
    expect(pages).toBe(Math.ceil(expected.size / 97));
  },
  120_000,
);

test('When the sort is by name, then pages come in name order', async () => {
  const r = await call(svc.url, 'POST', '/container_registries?limit=50&sort=-container_registry_name&fields=container_registry_name', { container_registry_tags: 'paged' });
  const names = r.body.map((e: { container_registry_name: string }) => e.container_registry_name);
  expect(names).toEqual([...names].sort().reverse());
  expect(Object.keys(r.body[0]).sort()).toEqual(['container_registry_id', 'container_registry_name']);
});

test('When a page is requested with a regex filter and a projection, then only the asked fields return', async () => {
  const r = await call(svc.url, 'POST', '/container_registries?fields=container_registry_tags&limit=5', { container_registry_name: { $regex: '^page-0001', $options: 'i' } });
  expect(r.status).toBe(200);
  expect(r.body).toHaveLength(5);
  for (const e of r.body) expect(Object.keys(e).sort()).toEqual(['container_registry_id', 'container_registry_tags']);
});
