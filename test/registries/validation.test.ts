/**
 * Bad input gets a 400 problem+json naming the offending path, and never reaches or changes stored data.
 */
import { entry } from '../support/entries';
import { call, expectProblem, startTestService, type TestService } from '../support/service';

let svc: TestService;
beforeAll(async () => {
  svc = await startTestService();
});
afterAll(() => svc.close());

describe('When an entry is created with bad fields', () => {
  test.each([
    ['an unknown field', { colour: 'blue' }, '/colour'],
    ['a name of the wrong type', { container_registry_name: 42 }, '/container_registry_name'],
    ['an empty name', { container_registry_name: '' }, '/container_registry_name'],
    ['a URL with another scheme', { container_registry_public_url: 'ftp://127.0.0.1/' }, '/container_registry_public_url'],
    ['a URL with user-info', { container_registry_public_url: 'http://user:pw@127.0.0.1:5000' }, '/container_registry_public_url'],
    ['a URL with a query', { container_registry_public_url: 'http://127.0.0.1:5000/?x=1' }, '/container_registry_public_url'],
    ['a URL that is not a URL', { container_registry_public_url: 'not a url' }, '/container_registry_public_url'],
    ['a URL whose host is no address (an octet over 255)', { container_registry_public_url: 'http://127.0.0.256:5000' }, '/container_registry_public_url'],
    ['duplicate tags', { container_registry_tags: ['a', 'a'] }, '/container_registry_tags'],
    ['a tag too long', { container_registry_tags: ['x'.repeat(65)] }, '/container_registry_tags/0'],
    ['a bad id', { container_registry_id: 'not-a-uuid' }, '/container_registry_id'],
    ['a storage type outside the list', { container_registry_storage_info: { storage_type: 'tape' } }, '/container_registry_storage_info/storage_type'],
    ['a storage size below -1', { container_registry_storage_info: { storage_size: -2 } }, '/container_registry_storage_info/storage_size'],
    ['a config flag of the wrong type', { container_registry_config: { auth_required: 'yes' } }, '/container_registry_config/auth_required'],
    ['a metadata key starting with $', { container_registry_metadata: { $where: 'x' } }, '/container_registry_metadata/$where'],
    ['a metadata key with a dot', { container_registry_metadata: { 'a.b': 'x' } }, '/container_registry_metadata/a.b'],
    ['metadata nested too deep', { container_registry_metadata: { a: { b: { c: { d: { e: { f: 1 } } } } } } }, /^\/container_registry_metadata/],
    ['a read-only version', { version: 7 }, '/version'],
    ['a read-only health', { container_registry_health: { status: 'healthy' } }, '/container_registry_health'],
    ['read-only timestamps', { created_at: '2020-01-01T00:00:00Z' }, '/created_at'],
    ['a read-only observed storage', { container_registry_storage_info: { observed: { repository_count: 1 } } }, '/container_registry_storage_info/observed'],
    ['credentials without a password', { container_registry_credentials: { username: 'u' } }, '/container_registry_credentials/password'],
  ])('with %s, then it is a 400 naming the path', async (_what, fields, path) => {
    const r = await call(svc.url, 'POST', '/container_registry', entry(fields));
    expectProblem(r, 400, path);
  });

  test('with a missing URL, then the 400 says it is required', async () => {
    const body = entry();
    delete body.container_registry_public_url;
    const r = await call(svc.url, 'POST', '/container_registry', body);
    expectProblem(r, 400, '/container_registry_public_url');
    expect(r.body.errors[0].message).toMatch(/required/);
  });

  test('with a read-only field, then the message says read-only', async () => {
    const r = await call(svc.url, 'POST', '/container_registry', entry({ version: 3 }));
    expect(r.body.errors).toEqual([{ path: '/version', message: 'version is read-only' }]);
  });

  test('with a field that does not have its form, then the message says the form in words, not as a regular expression', async () => {
    const r = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_credentials: { username: 'a:b', password: 'p' } }));
    expect(r.body.errors).toEqual([{ path: '/container_registry_credentials/username', message: 'must be text without control characters or a colon' }]);
    expect(r.body.detail).toBe('The registry entry is invalid: /container_registry_credentials/username must be text without control characters or a colon');
  });

  test.each([
    ['__proto__', '{"container_registry_name":"p","container_registry_public_url":"http://127.0.0.1:1","__proto__":{"x":1}}', '/__proto__'],
    ['constructor', '{"container_registry_name":"p","container_registry_public_url":"http://127.0.0.1:1","container_registry_metadata":{"constructor":{"prototype":1}}}', '/container_registry_metadata/constructor'],
  ])('with a %s key, then it is a 400 naming it', async (_k, raw, path) => {
    expectProblem(await call(svc.url, 'POST', '/container_registry', raw), 400, path);
  });

  test('with malformed JSON, then the 400 says so', async () => {
    const r = await call(svc.url, 'POST', '/container_registry', '{"container_registry_name": ');
    expectProblem(r, 400, '/');
    expect(r.body.title).toBe('Malformed JSON');
  });

  test('with a body nested thousands of levels deep, then it is a 400, not a crash', async () => {
    const deep = '['.repeat(50000) + ']'.repeat(50000);
    const r = await call(svc.url, 'POST', '/container_registries', deep);
    expect(r.status).toBe(400);
  });

  test('with a non-JSON content type, then it is a 415', async () => {
    const r = await call(svc.url, 'POST', '/container_registry', 'name=x', { 'Content-Type': 'application/x-www-form-urlencoded' });
    expectProblem(r, 415);
  });

  test('with a body over the limit, then it is a 413', async () => {
    const r = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_metadata: { big: 'x'.repeat(300_000) } }));
    expectProblem(r, 413);
  });

  test('with a JSON array instead of an object, then it is a 400', async () => {
    expectProblem(await call(svc.url, 'POST', '/container_registry', [entry()]), 400, '/');
  });
});

describe('When a query filter is hostile or wrong', () => {
  test.each([
    ['$where', { $where: 'sleep(1000)' }, '/$where'],
    ['$expr', { $expr: { $eq: ['$a', '$b'] } }, '/$expr'],
    ['$function', { container_registry_name: { $function: { body: 'x' } } }, '/container_registry_name/$function'],
    ['$accumulator', { container_registry_name: { $accumulator: {} } }, '/container_registry_name/$accumulator'],
    ['$jsonSchema', { $jsonSchema: {} }, '/$jsonSchema'],
    ['$text', { $text: { $search: 'x' } }, '/$text'],
    ['an unknown operator', { container_registry_tags: { $foo: 1 } }, '/container_registry_tags/$foo'],
    ['an unknown field', { colour: 'blue' }, '/colour'],
    ['a credentials field', { 'container_registry_credentials.password': 'x' }, '/container_registry_credentials.password'],
    ['an operator mixed with fields', { container_registry_config: { $exists: true, a: 1 } }, /^\/container_registry_config/],
    ['$in without an array', { container_registry_tags: { $in: 'ai' } }, '/container_registry_tags/$in'],
    ['a nested bad operator', { $or: [{ container_registry_name: 'a' }, { container_registry_name: { $where: 'x' } }] }, '/$or/1/container_registry_name/$where'],
    ['a regex with a backreference', { container_registry_name: { $regex: '(a)\\1' } }, '/container_registry_name/$regex'],
    ['a regex with lookahead', { container_registry_name: { $regex: 'a(?=b)' } }, '/container_registry_name/$regex'],
    ['a regex with lookbehind, in $not', { container_registry_name: { $not: { $regex: '(?<!a)b' } } }, '/container_registry_name/$not/$regex'],
    ['a regex compiling to a large program', { container_registry_name: { $regex: '(.{1,100}){1,10}y' } }, '/container_registry_name/$regex'],
    ['a regex refused only once $options x strips it', { container_registry_name: { $regex: 'a* *', $options: 'x' } }, '/container_registry_name/$regex'],
    ['too many regexes', { $or: Array.from({ length: 17 }, () => ({ container_registry_name: { $regex: 'a' } })) }, '/$or/16/container_registry_name/$regex'],
    ['an invalid regex', { container_registry_name: { $regex: '(' } }, '/container_registry_name/$regex'],
    ['a regex too long', { container_registry_name: { $regex: 'a'.repeat(300) } }, '/container_registry_name/$regex'],
    ['bad regex options', { container_registry_name: { $regex: 'a', $options: 'g' } }, '/container_registry_name/$options'],
  ])('with %s, then it is a 400 naming the path', async (_what, filter, path) => {
    expectProblem(await call(svc.url, 'POST', '/container_registries', filter), 400, path);
  });

  test('with a __proto__ key, then it is a 400 naming it', async () => {
    expectProblem(await call(svc.url, 'POST', '/container_registries', '{"__proto__": {"container_registry_name": "x"}}'), 400, '/__proto__');
  });

  test('with a filter nested too deep, then it is a 400', async () => {
    let f: Record<string, unknown> = { container_registry_name: 'x' };
    for (let i = 0; i < 10; i++) f = { $and: [f] };
    const r = await call(svc.url, 'POST', '/container_registries', f);
    expectProblem(r, 400);
    expect(r.body.errors[0].message).toMatch(/nesting/);
  });

  test.each([
    ['a bad cursor', '?cursor=garbage!', 'cursor'],
    ['a forged cursor', `?cursor=${Buffer.from('{"s":"x"}').toString('base64url')}`, 'cursor'],
    ['an unknown sort field', '?sort=container_registry_metadata.owner', 'sort'],
    ...['constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty', '-constructor'].map((k): [string, string, string] => [`sort=${k} (an Object.prototype name)`, `?sort=${k}`, 'sort']),
    ['a limit too high', '?limit=5000', 'limit'],
    ['a limit of zero', '?limit=0', 'limit'],
    ['a limit given twice', '?limit=1&limit=2', 'limit'],
    ['unknown fields', '?fields=password', 'fields'],
    ['an unknown parameter', '?colour=blue', 'colour'],
  ])('with %s, then it is a 400 naming the parameter', async (_what, qs, path) => {
    expectProblem(await call(svc.url, 'POST', `/container_registries${qs}`, {}), 400, path);
  });

  test('with a cursor from another sort, then it is a 400 naming the cursor', async () => {
    for (let i = 0; i < 3; i++) await call(svc.url, 'POST', '/container_registry', entry());
    const first = await call(svc.url, 'POST', '/container_registries?limit=1&sort=created_at', {});
    const next = /cursor=([^&>]+)/.exec(first.headers.get('link') ?? '')![1];
    expectProblem(await call(svc.url, 'POST', `/container_registries?limit=1&sort=-version&cursor=${next}`, {}), 400, 'cursor');
  });
});

describe('When an update is invalid', () => {
  test('then the stored entry is left exactly as it was', async () => {
    const created = (await call(svc.url, 'POST', '/container_registry', entry())).body;
    const attempts: unknown[] = [
      { $set: { container_registry_public_url: 'ftp://x' } },
      { $set: { container_registry_tags: 'not-an-array' } },
      { $unset: { container_registry_name: '' } },
      { $set: { version: 99 } },
      { $set: { 'container_registry_storage_info.observed': { repository_count: 3 } } },
      { $set: { container_registry_id: '0b7a3c1e-7a9a-4a3e-9b1e-000000000000' } },
      { $set: { 'container_registry_metadata.owner.x': 1 } },
      { $set: { container_registry_name: 'a' }, $unset: { container_registry_name: '' } },
      { $rename: { container_registry_name: 'x' } },
      { $set: { 'container_registry_credentials.password': 'x' } },
      { $addToSet: { container_registry_tags: 'x'.repeat(65) } },
      { $set: {} },
      {},
    ];
    for (const body of attempts) {
      const r = await call(svc.url, 'PUT', `/container_registry/${created.container_registry_id}`, body);
      expect([r.status, body]).toEqual([400, body]);
      expect(r.body.errors.length).toBeGreaterThan(0);
    }
    const after = await call(svc.url, 'GET', `/container_registry/${created.container_registry_id}`);
    expect(after.body).toEqual(created);
  });
});

describe('When a name is ill-formed or deceptive', () => {
  test.each([
    ['a lone high surrogate', 'sur\ud800x'],
    ['a lone low surrogate', 'sur\udfffx'],
    ['a right-to-left override', 'abc\u202Eexe.gpj'],
    ['a left-to-right isolate', 'a\u2066b'],
    ['a zero-width space', 'reg\u200Bistry'],
    ['a zero-width joiner', 'reg\u200Distry'],
    ['a byte order mark', '\uFEFFregistry'],
    ['a C1 control', 'reg\u0085istry'],
    ['a newline', 'reg\nistry'],
  ])('with %s, then create, update and onboarding answer 400 naming container_registry_name', async (_what, name) => {
    expectProblem(await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: name })), 400, '/container_registry_name');
    const created = (await call(svc.url, 'POST', '/container_registry', entry())).body;
    expectProblem(await call(svc.url, 'PUT', `/container_registry/${created.container_registry_id}`, { $set: { container_registry_name: name } }), 400, /container_registry_name/);
    await expect(svc.parts.registries.onboard(entry({ container_registry_name: name }), true)).rejects.toMatchObject({ errors: [expect.objectContaining({ path: '/container_registry_name' })] });
  });

  test('with a letter and an emoji outside the BMP (a surrogate pair), then it is accepted as sent', async () => {
    const name = `caf\u00e9 \u{1F433} ${Date.now()}`;
    const r = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: name }));
    expect(r.status).toBe(201);
    expect(r.body.container_registry_name).toBe(name);
  });

  test('in NFD form, then it is stored in NFC, and the same name in the other form is a 409 on create, update and onboarding', async () => {
    const stem = `Cafe\u0301-${Date.now()}`; // "Café" with a combining accent (NFD)
    const created = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: stem }));
    expect(created.status).toBe(201);
    expect(created.body.container_registry_name).toBe(stem.normalize('NFC'));
    expectProblem(await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: stem.normalize('NFC') })), 409, '/container_registry_name');
    const other = (await call(svc.url, 'POST', '/container_registry', entry())).body;
    expect((await call(svc.url, 'PUT', `/container_registry/${other.container_registry_id}`, { $set: { container_registry_name: stem } })).status).toBe(409);
    // Onboarding by name finds the stored entry whichever form the file uses.
    const onboarded = await svc.parts.registries.onboard(entry({ container_registry_name: stem, container_registry_public_url: created.body.container_registry_public_url }), true);
    expect(onboarded).toMatchObject({ id: created.body.container_registry_id });
  });

  test('in NFD form in a query filter, then it finds the name stored in NFC, from the view and from the database alike', async () => {
    const stem = `Crème-${Date.now()}`; // "Crème" with a combining accent (NFD)
    const created = (await call(svc.url, 'POST', '/container_registry', entry({ container_registry_name: stem }))).body;
    const fromDatabase = await startTestService({ QUERY_SOURCE: 'database' }, { dbName: svc.db.databaseName });
    try {
      for (const filter of [{ container_registry_name: stem }, { container_registry_name: { $in: [stem] } }, { $or: [{ container_registry_name: { $regex: `^${stem}$` } }] }]) {
        for (const s of [svc, fromDatabase]) {
          const found = await call(s.url, 'POST', '/container_registries', filter);
          expect({ filter, found: found.body.map((e: { container_registry_id: string }) => e.container_registry_id) }).toEqual({ filter, found: [created.container_registry_id] });
        }
      }
    } finally {
      await fromDatabase.close({ keepDatabase: true });
    }
  });
});
