/**
 * Key-set pagination over a catalog that holds entries mirrored from a peer (ids `<peer>:<uuid>`) beside its
 * own (UUIDs): a page that ends on either kind hands out a cursor the service takes back, for every sort
 * (issue 22, item 4: the cursor wanted a UUID and refused every page that ended on a mirrored entry).
 */
import { SORT_FIELDS } from '../../src/registries/query';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';

const PER_SIDE = 23;
let peer: TestService;
let svc: TestService;
const expected = new Set<string>();

async function createMany(base: TestService, prefix: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < PER_SIDE; i++) {
    // Names and versions interleave between the two sides, so pages mix local and mirrored entries.
    const r = await call(base.url, 'POST', '/container_registry', entry({ container_registry_name: `${String(i).padStart(3, '0')}-${prefix}`, container_registry_tags: ['paged'] }));
    if (r.status !== 201) throw new Error(`create ${prefix} ${i}: ${r.status} ${r.text}`);
    ids.push(r.body.container_registry_id);
    if (i % 4 === 0) await call(base.url, 'PUT', `/container_registry/${r.body.container_registry_id}`, { $addToSet: { container_registry_tags: 'touched' } });
  }
  return ids;
}

beforeAll(async () => {
  peer = await startTestService();
  for (const id of await createMany(peer, 'peer')) expected.add(`eu:${id}`);
  svc = await startTestService({ PEERS: `eu=${peer.url}` });
  for (const id of await createMany(svc, 'local')) expected.add(id);
  // The follower lists the peer, then follows it; wait until every mirrored entry is here.
  const until = Date.now() + 30_000;
  for (;;) {
    const r = await call(svc.url, 'POST', '/container_registries?limit=1000', { 'container_registry_origin.peer': 'eu' });
    if (r.status === 200 && r.body.length === PER_SIDE) break;
    if (Date.now() > until) throw new Error(`mirrored entries did not arrive: ${r.status} ${r.text.slice(0, 200)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}, 120_000);
afterAll(async () => {
  await svc?.close();
  await peer?.close();
});

const sorts = [...SORT_FIELDS.keys()].flatMap((f) => [f, `-${f}`]);

test.each(sorts)('When a catalog with local and mirrored entries is paged with sort %s and limit=4, then every entry comes exactly once', async (sort) => {
  const ids: string[] = [];
  let path: string | undefined = `/container_registries?limit=4&sort=${sort}`;
  let pages = 0;
  while (path) {
    const r = await call(svc.url, 'POST', path, { container_registry_tags: 'paged' });
    expect({ status: r.status, problem: r.status === 200 ? undefined : r.body }).toEqual({ status: 200, problem: undefined });
    ids.push(...r.body.map((e: { container_registry_id: string }) => e.container_registry_id));
    pages++;
    const link = r.headers.get('link');
    path = link ? /^<([^>]+)>; rel="next"$/.exec(link)![1] : undefined;
  }
  expect(ids.some((id) => id.startsWith('eu:'))).toBe(true);
  expect(ids.length).toBe(expected.size);
  expect(new Set(ids)).toEqual(expected);
  expect(pages).toBe(Math.ceil(expected.size / 4));
});
