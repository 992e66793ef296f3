/**
 * Create, read, update and delete against the real database: status codes, headers, update operators,
 * optimistic concurrency and credentials handling.
 */
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';

let svc: TestService;
beforeAll(async () => {
  svc = await startTestService();
});
afterAll(() => svc.close());

async function create(fields: Record<string, unknown> = {}) {
  const r = await call(svc.url, 'POST', '/container_registry', entry(fields));
  expect(r.status).toBe(201);
  return r;
}

describe('When an entry is created', () => {
  test('then it gets a UUID, a Location, an ETag, version 1, unknown health and a derived image prefix', async () => {
    const r = await create({ container_registry_public_url: 'https://127.0.0.1:5443/mirror' });
    const id = r.body.container_registry_id;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r.headers.get('location')).toBe(`/container_registry/${id}`);
    expect(r.headers.get('etag')).toBe('"1"');
    expect(r.body).toMatchObject({ version: 1, container_registry_image_prefix: '127.0.0.1:5443', container_registry_health: { status: 'unknown' } });
    expect(Date.parse(r.body.created_at)).not.toBeNaN();
    const got = await call(svc.url, 'GET', r.headers.get('location')!);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(r.body);
  });

  test('with a name already used, then it is a 409 naming the name', async () => {
    const first = await create();
    const r = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: first.body.container_registry_name }));
    expect(r.status).toBe(409);
    expect(r.body.errors[0].path).toBe('/container_registry_name');
  });

  test('with an id already used, then it is a 409 naming the id', async () => {
    const first = await create();
    const r = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_id: first.body.container_registry_id }));
    expect(r.status).toBe(409);
    expect(r.body.errors[0].path).toBe('/container_registry_id');
  });

  test('with credentials, then the password is stored encrypted and never returned', async () => {
    const r = await create({ container_registry_credentials: { username: 'robot', password: 's3cr3t-pw-create' } });
    expect(r.body.container_registry_credentials).toEqual({ username: 'robot', password_set: true });
    expect(r.text).not.toContain('s3cr3t-pw-create');
    const raw = await svc.db.collection('container_registries').findOne({ _id: r.body.container_registry_id } as never);
    expect(JSON.stringify(raw)).not.toContain('s3cr3t-pw-create');
    expect(raw!.container_registry_credentials.password_enc).toMatch(/^v1\./);
    const again = await call(svc.url, 'GET', `/container_registry/${r.body.container_registry_id}`);
    expect(again.text).not.toContain('s3cr3t-pw-create');
    expect(svc.logs()).not.toContain('s3cr3t-pw-create');
  });
});

describe('When an entry is read or deleted', () => {
  test('with an unknown id, then GET, PUT and DELETE are 404 problem+json', async () => {
    for (const [m, body] of [['GET'], ['PUT', { $set: { container_registry_tags: [] } }], ['DELETE']] as const) {
      const r = await call(svc.url, m, '/container_registry/7d4c5b8e-0000-4000-8000-000000000000', body);
      expect(r.status).toBe(404);
      expect(r.headers.get('content-type')).toContain('application/problem+json');
    }
  });

  test('with a stale If-Match, then DELETE is 412 and the entry stays', async () => {
    const { body } = await create();
    const path = `/container_registry/${body.container_registry_id}`;
    await call(svc.url, 'PUT', path, { $set: { container_registry_tags: ['x'] } });
    expect((await call(svc.url, 'DELETE', path, undefined, { 'If-Match': '"1"' })).status).toBe(412);
    expect((await call(svc.url, 'GET', path)).status).toBe(200);
    expect((await call(svc.url, 'DELETE', path, undefined, { 'If-Match': '"2"' })).status).toBe(204);
    expect((await call(svc.url, 'GET', path)).status).toBe(404);
  });

  test('with an unsupported method, then it is a 405 with Allow', async () => {
    const r = await call(svc.url, 'PATCH', '/container_registry/x', {});
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toContain('PUT');
  });
});

describe('When an entry is updated', () => {
  test('with $set on dotted paths, then only those keys change and the version is bumped', async () => {
    const { body } = await create({ container_registry_config: { auth_required: true, storage_backend: 's3' } });
    const r = await call(svc.url, 'PUT', `/container_registry/${body.container_registry_id}`, {
      $set: { 'container_registry_config.storage_backend': 'fs', 'container_registry_metadata.team.name': 'infra' },
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('etag')).toBe('"2"');
    expect(r.body.container_registry_config).toEqual({ auth_required: true, storage_backend: 'fs' });
    expect(r.body.container_registry_metadata).toEqual({ owner: 'tests', team: { name: 'infra' } });
    expect(r.body.version).toBe(2);
    expect(r.body.updated_at >= body.updated_at).toBe(true);
    expect(r.body.created_at).toBe(body.created_at);
  });

  test('with a plain object, then it is treated as $set', async () => {
    const { body } = await create();
    const r = await call(svc.url, 'PUT', `/container_registry/${body.container_registry_id}`, { container_registry_tags: ['plain'] });
    expect(r.body.container_registry_tags).toEqual(['plain']);
  });

  test('with $unset, $addToSet and $pull, then each applies', async () => {
    const { body } = await create({ container_registry_tags: ['a', 'b'] });
    const path = `/container_registry/${body.container_registry_id}`;
    let r = await call(svc.url, 'PUT', path, { $addToSet: { container_registry_tags: { $each: ['b', 'c'] } }, $unset: { container_registry_metadata: '' } });
    expect(r.body.container_registry_tags).toEqual(['a', 'b', 'c']);
    expect(r.body.container_registry_metadata).toBeUndefined();
    r = await call(svc.url, 'PUT', path, { $pull: { container_registry_tags: { $in: ['a', 'c'] } } });
    expect(r.body.container_registry_tags).toEqual(['b']);
    r = await call(svc.url, 'PUT', path, { $pull: { container_registry_tags: 'b' } });
    expect(r.body.container_registry_tags).toEqual([]);
  });

  test('with a change that changes nothing, then the version stays', async () => {
    const { body } = await create({ container_registry_tags: ['same'] });
    const r = await call(svc.url, 'PUT', `/container_registry/${body.container_registry_id}`, { $addToSet: { container_registry_tags: 'same' } });
    expect(r.status).toBe(200);
    expect(r.body.version).toBe(1);
  });

  test('with If-Match, then a current version applies and a stale one is 412 without changes', async () => {
    const { body } = await create();
    const path = `/container_registry/${body.container_registry_id}`;
    expect((await call(svc.url, 'PUT', path, { $set: { container_registry_tags: ['v2'] } }, { 'If-Match': '"1"' })).status).toBe(200);
    const stale = await call(svc.url, 'PUT', path, { $set: { container_registry_tags: ['lost'] } }, { 'If-Match': '"1"' });
    expect(stale.status).toBe(412);
    expect((await call(svc.url, 'GET', path)).body.container_registry_tags).toEqual(['v2']);
    expect((await call(svc.url, 'PUT', path, { $set: { container_registry_tags: ['x'] } }, { 'If-Match': 'garbage' })).status).toBe(400);
  });

  test('with a rename onto a taken name, then it is a 409 and nothing changes', async () => {
    const a = (await create()).body;
    const b = (await create()).body;
    const r = await call(svc.url, 'PUT', `/container_registry/${b.container_registry_id}`, { $set: { container_registry_name: a.container_registry_name } });
    expect(r.status).toBe(409);
    expect((await call(svc.url, 'GET', `/container_registry/${b.container_registry_id}`)).body).toEqual(b);
  });

  test('with a new URL and no new credentials, then the stored credentials are dropped', async () => {
    const { body } = await create({ container_registry_credentials: { username: 'u', password: 'pw-follow-host' } });
    const path = `/container_registry/${body.container_registry_id}`;
    const same = await call(svc.url, 'PUT', path, { $set: { container_registry_tags: ['keep'] } });
    expect(same.body.container_registry_credentials).toEqual({ username: 'u', password_set: true });
    const moved = await call(svc.url, 'PUT', path, { $set: { container_registry_public_url: 'http://127.0.0.1:6001' } });
    expect(moved.body.container_registry_credentials).toBeUndefined();
    const raw = await svc.db.collection('container_registries').findOne({ _id: body.container_registry_id } as never);
    expect(raw!.container_registry_credentials).toBeUndefined();
  });

  test('with a new URL and new credentials together, then the new credentials are kept', async () => {
    const { body } = await create({ container_registry_credentials: { username: 'u', password: 'pw-1' } });
    const r = await call(svc.url, 'PUT', `/container_registry/${body.container_registry_id}`, {
      $set: { container_registry_public_url: 'http://127.0.0.1:6002', container_registry_credentials: { username: 'u2', password: 'pw-2' } },
    });
    expect(r.body.container_registry_credentials).toEqual({ username: 'u2', password_set: true });
  });

  test('with a new URL, then a derived image prefix follows it and an explicitly set one stays', async () => {
    const derived = (await create({ container_registry_public_url: 'http://127.0.0.1:6101' })).body;
    const moved = await call(svc.url, 'PUT', `/container_registry/${derived.container_registry_id}`, { $set: { container_registry_public_url: 'https://127.0.0.1:6102/path' } });
    expect(moved.status).toBe(200);
    expect(moved.body.container_registry_image_prefix).toBe('127.0.0.1:6102');

    const explicit = (await create({ container_registry_public_url: 'http://127.0.0.1:6103', container_registry_image_prefix: 'mirror.example.org/team' })).body;
    const kept = await call(svc.url, 'PUT', `/container_registry/${explicit.container_registry_id}`, { container_registry_public_url: 'http://127.0.0.1:6104' });
    expect(kept.body.container_registry_image_prefix).toBe('mirror.example.org/team');

    // A prefix set in the same update wins; a removed one is derived from the URL again.
    const both = await call(svc.url, 'PUT', `/container_registry/${derived.container_registry_id}`, { $set: { container_registry_public_url: 'http://127.0.0.1:6105', container_registry_image_prefix: 'set.example.org' } });
    expect(both.body.container_registry_image_prefix).toBe('set.example.org');
    const unset = await call(svc.url, 'PUT', `/container_registry/${explicit.container_registry_id}`, { $unset: { container_registry_image_prefix: '' } });
    expect(unset.body.container_registry_image_prefix).toBe('127.0.0.1:6104');
  });

  test('with operator-set storage fields, then the observed storage written by the service is kept', async () => {
    const { body } = await create({ container_registry_storage_info: { storage_type: 'fs' } });
    const observed = { catalog_supported: true, repository_count: 2, tag_count: 3, used_bytes: 100 };
    await svc.db.collection('container_registries').updateOne({ _id: body.container_registry_id } as never, { $set: { 'container_registry_storage_info.observed': observed } });
    const r = await call(svc.url, 'PUT', `/container_registry/${body.container_registry_id}`, { $set: { container_registry_storage_info: { storage_type: 's3', storage_size: 10 } } });
    expect(r.status).toBe(200);
    expect(r.body.container_registry_storage_info).toEqual({ storage_type: 's3', storage_size: 10, observed });
  });
});
