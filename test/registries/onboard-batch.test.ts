/**
 * Batch onboarding (RegistryService.onboardMany, used by the seed script) gives the outcomes and the stored
 * entries that onboarding the same entries one by one gives, including entries of one batch that touch
 * each other and entries that already exist.
 */
import { randomUUID } from 'node:crypto';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';

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

/** A stored entry as onboarding writes it, with `extra` fields. */
function storedEntry(name: string, extra: Record<string, unknown> = {}) {
  const now = new Date().toISOString();
  return { _id: randomUUID(), ...entry({ container_registry_name: name }), container_registry_health: { status: 'unknown' as const, consecutive_failures: 0 }, created_at: now, updated_at: now, version: 1, ...extra };
}

/** The ids the service serves from its view, and those in the collection, of the entries named `prefix…`. */
async function visible(svc: TestService, prefix: string, until: number) {
  expect(await svc.parts.feed.waitFor(until, 5000)).toBe(true);
  const listed = await call(svc.url, 'POST', '/container_registries', { container_registry_name: { $regex: `^${prefix}` } });
  expect(listed.status).toBe(200);
  const stored = await svc.db.collection('container_registries').find({ container_registry_name: { $regex: `^${prefix}` } }).toArray();
  return { served: listed.body.map((e: { container_registry_name: string }) => e.container_registry_name).sort(), stored: stored.map((d) => d.container_registry_name).sort() };
}

test('When the database refuses one entry of a batch (over the document limit, a field name it does not store), then the others are stored and only that one is answered with an error', async () => {
  const inner = Object.fromEntries(Array.from({ length: 64 }, (_, j) => [`v${j}`, 'x'.repeat(4096)]));
  const huge = entry({ container_registry_name: 'refused-huge', container_registry_metadata: Object.fromEntries(Array.from({ length: 64 }, (_, k) => [`k${k}`, inner])) });
  // Through the service (no check of its own on the size: the write path's answer is what is seen).
  const results = await many.parts.registries.onboardMany([entry({ container_registry_name: 'refused-a' }), entry({ container_registry_name: 'refused-b' }), huge, entry({ container_registry_name: 'refused-c' })], false);
  expect(results.map(shown)).toEqual(['created', 'created', 'error 413', 'created']);
  expect(((results[2] as { error: Error }).error).message).toMatch(/would take \d+ bytes as stored \(BSON\); an entry may take at most \d+/);
  // Straight into the writer, bypassing validation: a field name starting with "$" (FerretDB refuses it in the
  // change log record, MongoDB in the collection; either way the entry is answered with an error, the others stored).
  const docs = [storedEntry('refused-d'), storedEntry('refused-e', { $bad: 1 }), storedEntry('refused-f')];
  const written = await many.parts.repository.writer.createMany(docs as never);
  expect(written.map((w) => (w instanceof Error ? 'error' : 'stored'))).toEqual(['stored', 'error', 'stored']);
  const top = Math.max(...written.filter((w): w is Exclude<typeof w, Error> => !(w instanceof Error)).map((w) => w.revision as number));
  expect(await visible(many, 'refused-', top)).toEqual({ served: ['refused-a', 'refused-b', 'refused-c', 'refused-d', 'refused-f'], stored: ['refused-a', 'refused-b', 'refused-c', 'refused-d', 'refused-f'] });
}, 120_000);
