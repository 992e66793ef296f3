/**
 * Batch onboarding (RegistryService.onboardMany, used by the seed script) gives the outcomes and the stored
 * entries that onboarding the same entries one by one gives, including entries of one batch that touch
 * each other and entries that already exist.
 */
import { randomUUID } from 'node:crypto';
import { entry } from '../support/entries';
import { startTestService, type TestService } from '../support/service';

let one: TestService;
let many: TestService;

beforeAll(async () => {
  [one, many] = await Promise.all([startTestService(), startTestService()]);
});
afterAll(async () => {
  await Promise.all([one?.close(), many?.close()]);
});

type Outcome = { outcome: string } | { error: unknown };
const shown = (r: Outcome) => ('outcome' in r ? r.outcome : `error ${(r.error as { status?: number }).status ?? 500}`);

async function stored(svc: TestService) {
  const docs = await svc.db.collection('container_registries').find({}).sort({ container_registry_name: 1 }).toArray();
  return docs.map(({ container_registry_name, container_registry_tags, container_registry_public_url, version }) => ({ container_registry_name, container_registry_tags, container_registry_public_url, version }));
}

test('When a batch holds new, repeated, conflicting, invalid and existing entries, then it ends as onboarding them one by one does', async () => {
  const id = randomUUID();
  const existing = entry({ container_registry_name: 'batch-existing', container_registry_tags: ['old'] });
  for (const svc of [one, many]) await svc.parts.registries.create(existing);
  const batch = [
    entry({ container_registry_name: 'batch-a' }),
    entry({ container_registry_name: 'batch-a', container_registry_tags: ['second'] }),
    entry({ container_registry_id: id, container_registry_name: 'batch-b' }),
    entry({ container_registry_id: id, container_registry_name: 'batch-b-renamed' }),
    entry({ container_registry_name: 'batch-c' }),
    entry({ container_registry_name: 'batch-bad', container_registry_public_url: 'ftp://127.0.0.1' }),
    entry({ container_registry_name: 'batch-existing', container_registry_tags: ['new'] }),
    entry({ container_registry_id: randomUUID(), container_registry_name: 'batch-c' }),
    entry({ container_registry_name: 'batch-d' }),
  ];
  const sequential: Outcome[] = [];
  for (const body of batch) sequential.push(await one.parts.registries.onboard(body, false).catch((error: unknown) => ({ error })));
  const batched = await many.parts.registries.onboardMany(batch, false);

  expect(batched.map(shown)).toEqual(sequential.map(shown));
  expect(batched.map(shown)).toEqual(['created', 'updated', 'created', 'updated', 'created', 'error 400', 'updated', 'error 409', 'created']);
  expect(await stored(many)).toEqual(await stored(one));
  // Run again: nothing changes, and a dry run writes nothing.
  expect((await many.parts.registries.onboardMany(batch.slice(8), false)).map(shown)).toEqual(['unchanged']);
  expect((await many.parts.registries.onboardMany([entry({ container_registry_name: 'batch-dry' })], true)).map(shown)).toEqual(['created']);
  expect(await stored(many)).toEqual(await stored(one));
});

test('When onboarding moves an entry to another URL, then the credentials in the file go with it, and an entry without them loses the stored ones', async () => {
  const svc = one;
  const creds = { username: 'robot', password: 'onboard-pw-1' };
  const first = entry({ container_registry_name: 'onboard-creds', container_registry_public_url: 'http://127.0.0.1:7001', container_registry_credentials: creds });
  expect(await svc.parts.registries.onboard(first, false)).toMatchObject({ outcome: 'created' });
  expect(await svc.parts.registries.onboard(first, false)).toMatchObject({ outcome: 'unchanged' });
  const moved: Record<string, unknown> = { ...first, container_registry_public_url: 'http://127.0.0.1:7002' };
  expect(await svc.parts.registries.onboard(moved, false)).toMatchObject({ outcome: 'updated' });
  const raw = () => svc.db.collection('container_registries').findOne({ container_registry_name: 'onboard-creds' });
  const kept = await raw();
  expect(kept!.container_registry_public_url).toBe('http://127.0.0.1:7002');
  expect(svc.parts.cipher.open(kept!.container_registry_credentials)).toEqual(creds);
  const { container_registry_credentials: _dropped, ...without } = moved;
  expect(await svc.parts.registries.onboard(without, false)).toMatchObject({ outcome: 'updated' });
  expect((await raw())!.container_registry_credentials).toBeUndefined();
  expect(await svc.parts.registries.onboard(without, false)).toMatchObject({ outcome: 'unchanged' });
});
