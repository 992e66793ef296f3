/**
 * Hostile input, property-based (fast-check): filters and updates built from allowed and forbidden
 * operators, fields, dotted paths, prototype keys and catastrophic regexes. Whatever the validators
 * accept holds only allowed operators and fields and runs against the real database (through the real
 * service) without a server error; whatever they reject is an InputError naming a path.
 */
import fc from 'fast-check';
import { InputError } from '../../src/errors';
import { FORBIDDEN_KEYS } from '../../src/lib/json-shape';
import { parseFilter } from '../../src/registries/query';
import { parseUpdate } from '../../src/registries/update';
import { regexProblem } from '../../src/lib/regex';
import { readOnlyPaths, validateEntry } from '../../src/schemas';
import { entry } from '../support/entries';
import { call, startTestService, type TestService } from '../support/service';

const FIELDS = ['container_registry_id', 'container_registry_name', 'container_registry_tags', 'container_registry_public_url', 'container_registry_image_prefix', 'container_registry_metadata', 'container_registry_config', 'container_registry_storage_info', 'container_registry_health', 'created_at', 'updated_at', 'version'];
const OBJECT_FIELDS = ['container_registry_metadata', 'container_registry_config', 'container_registry_storage_info', 'container_registry_health'];
const OPERATORS = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists', '$regex', '$options', '$all', '$size', '$elemMatch', '$not'];
const LOGICAL = ['$and', '$or', '$nor'];
const HOSTILE_OPERATORS = ['$where', '$expr', '$function', '$accumulator', '$jsonSchema', '$text', '$lookup', '$merge', '$out', '$mod', '$type', '$comment', '$near', '$foo', '$'];
const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', '', '.', 'a.$b', 'container_registry_credentials', 'container_registry_credentials.password', '_id', '_seq', 'container_registry_metadata.__proto__', 'container_registry_metadata.a.constructor.b', 'container_registry_name.x', 'container_registry_metadata.a.b.c.d.e.f', 'container_registry_metadata.$where'];
const REGEXES = ['^reg', '\\u0041', '\\cA', '(?=a)b', 'a\\1', 'a.*b', '(a+)+$', '(a|aa)*c', '([a-z]+)*$', '(.*a){12}', '[', 'x'.repeat(300), '\\d{1,3}', '(?<n>a)\\k<n>'];

/** An object whose keys are own data properties, `__proto__` included (as JSON.parse makes them). */
const obj = (entries: Array<[string, unknown]>) => Object.fromEntries(entries) as Record<string, unknown>;

const scalar = fc.oneof(fc.string({ maxLength: 12 }), fc.integer({ min: -1000, max: 1000 }), fc.boolean(), fc.constant(null), fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }));
const literal = fc.oneof(
  { weight: 4, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.array(fc.tuple(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('$eq', '__proto__', 'a.b')), scalar), { maxLength: 3 }).map(obj) },
);
const dottedPath = fc.tuple(fc.constantFrom(...OBJECT_FIELDS), fc.array(fc.oneof(fc.string({ minLength: 1, maxLength: 8 }), fc.constantFrom('status', 'owner', 'storage_type', '__proto__', '$x')), { minLength: 1, maxLength: 6 })).map(([f, segs]) => [f, ...segs].join('.'));
const fieldKey = fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...FIELDS) }, { weight: 3, arbitrary: dottedPath }, { weight: 2, arbitrary: fc.constantFrom(...HOSTILE_KEYS, ...HOSTILE_OPERATORS) }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }) });

const { filter } = fc.letrec<{ filter: Record<string, unknown>; operators: Record<string, unknown>; condition: unknown }>((tie) => ({
  operators: fc
    .array(
      fc.oneof(
        { weight: 6, arbitrary: fc.tuple(fc.constantFrom('$eq', '$ne', '$gt', '$gte', '$lt', '$lte'), literal) },
        { weight: 2, arbitrary: fc.tuple(fc.constantFrom('$in', '$nin', '$all'), fc.array(literal, { maxLength: 4 })) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('$exists'), fc.oneof(fc.boolean(), scalar)) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('$size'), fc.oneof(fc.nat(10), scalar)) },
        { weight: 2, arbitrary: fc.tuple(fc.constant('$regex'), fc.oneof(fc.constantFrom(...REGEXES), fc.string({ maxLength: 8 }))) },
        { weight: 1, arbitrary: fc.tuple(fc.constant('$options'), fc.constantFrom('i', 'im', 'g', 'ix$')) },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom('$elemMatch', '$not'), tie('operators')) },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...HOSTILE_OPERATORS, '__proto__', 'constructor'), literal) },
      ),
      { minLength: 1, maxLength: 3 },
    )
    .map(obj),
  condition: fc.oneof({ weight: 2, arbitrary: literal }, { weight: 3, arbitrary: tie('operators') }),
  filter: fc
    .array(
      fc.oneof(
        { weight: 5, arbitrary: fc.tuple(fieldKey, tie('condition')) },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...LOGICAL), fc.oneof(fc.array(tie('filter'), { maxLength: 3 }), literal)) },
      ),
      { maxLength: 4 },
    )
    .map(obj),
}));

const DOTTED = /^container_registry_(metadata|config|storage_info|health)(\.[^.$]{1,128}){1,5}$/;
const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Problems with an accepted (parsed) filter: anything but allowed operators, fields and safe regexes. */
function filterProblems(f: Record<string, unknown>, at = ''): string[] {
  const out: string[] = [];
  const literalProblems = (v: unknown, p: string): string[] =>
    Array.isArray(v) ? v.flatMap((x, i) => literalProblems(x, `${p}/${i}`)) : isPlainObject(v) ? Object.entries(v).flatMap(([k, x]) => (k.startsWith('$') || FORBIDDEN_KEYS.has(k) ? [`${p}/${k}: key in a literal`] : literalProblems(x, `${p}/${k}`))) : [];
  const operatorProblems = (o: Record<string, unknown>, p: string): string[] =>
    Object.entries(o).flatMap(([op, v]) => {
      if (!OPERATORS.includes(op)) return [`${p}/${op}: operator not allowed`];
      if (op === '$elemMatch' || op === '$not') return isPlainObject(v) ? operatorProblems(v, `${p}/${op}`) : [`${p}/${op}: not an operator object`];
      if (op === '$regex') return typeof v === 'string' && regexProblem(v, typeof o.$options === 'string' ? o.$options : '') === null ? [] : [`${p}/$regex: refused dialect`];
      return literalProblems(v, `${p}/${op}`);
    });
  for (const [k, v] of Object.entries(f)) {
    const p = `${at}/${k}`;
    if (LOGICAL.includes(k)) {
      if (!Array.isArray(v)) out.push(`${p}: not a list`);
      else v.forEach((sub, i) => out.push(...filterProblems(sub as Record<string, unknown>, `${p}/${i}`)));
    } else if (!(k === '_id' || FIELDS.includes(k) || DOTTED.test(k)) || k === 'container_registry_id' || k.split('.').some((s) => FORBIDDEN_KEYS.has(s))) {
      out.push(`${p}: field not allowed`);
    } else if (isPlainObject(v) && Object.keys(v).length > 0 && Object.keys(v).every((x) => x.startsWith('$'))) {
      out.push(...operatorProblems(v, p));
    } else {
      out.push(...literalProblems(v, p));
    }
  }
  return out;
}

/** True when `e` is an InputError whose every error names a path. */
function namesPaths(e: unknown): boolean {
  return e instanceof InputError && (e.errors ?? []).length > 0 && e.errors!.every((x) => typeof x.path === 'string' && x.path.length > 0);
}

type Verdict<T> = { ok: true; value: T } | { ok: false; error: unknown };
function attempt<T>(fn: () => T): Verdict<T> {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    return { ok: false, error };
  }
}

const ENTRY_FIELDS_WRITABLE = ['container_registry_name', 'container_registry_metadata', 'container_registry_tags', 'container_registry_public_url', 'container_registry_image_prefix', 'container_registry_config', 'container_registry_storage_info', 'container_registry_credentials'];
const setValue = fc.oneof(literal, fc.constantFrom('http://127.0.0.1:5000', 'ftp://x', 'renamed', ['a', 'a'], { storage_type: 's3', storage_size: -1 }, { observed: { repository_count: 1 } }, { username: 'u', password: 'p' }));
const updatePath = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...ENTRY_FIELDS_WRITABLE) }, { weight: 3, arbitrary: dottedPath }, { weight: 2, arbitrary: fc.constantFrom(...HOSTILE_KEYS, ...readOnlyPaths, 'version', 'created_at', 'container_registry_storage_info.observed.x') });
const setDoc = fc.array(fc.tuple(updatePath, setValue), { minLength: 0, maxLength: 3 }).map(obj);
const tagsArg = fc.oneof(fc.string({ maxLength: 8 }), fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }).map((xs) => ({ $each: xs })), literal);
const update = fc.oneof(
  { weight: 2, arbitrary: setDoc },
  {
    weight: 5,
    arbitrary: fc
      .array(
        fc.oneof(
          fc.tuple(fc.constant('$set'), setDoc),
          fc.tuple(fc.constant('$unset'), fc.array(fc.tuple(updatePath, fc.constantFrom('', 1, true, 0)), { maxLength: 2 }).map(obj)),
          fc.tuple(fc.constantFrom('$addToSet', '$pull'), fc.array(fc.tuple(fc.constantFrom('container_registry_tags', 'container_registry_metadata'), tagsArg), { maxLength: 1 }).map(obj)),
          fc.tuple(fc.constantFrom(...HOSTILE_OPERATORS, '$inc', '$rename', '$push'), literal),
        ),
        { minLength: 1, maxLength: 3 },
      )
      .map(obj),
  },
  { weight: 1, arbitrary: literal },
);

const writable = (p: string) => (ENTRY_FIELDS_WRITABLE.includes(p) || /^container_registry_(metadata|config|storage_info)(\.[^.$]{1,128}){1,5}$/.test(p)) && !p.split('.').some((s) => FORBIDDEN_KEYS.has(s)) && !readOnlyPaths.some((r) => p === r || p.startsWith(r + '.'));

describe('pure validators', () => {
  test('When any filter is parsed, then an accepted one holds only allowed operators, fields and safe regexes, and a rejected one is an InputError naming a path', () => {
    let accepted = 0;
    fc.assert(
      fc.property(filter, (f) => {
        const v = attempt(() => parseFilter(f));
        if (!v.ok) return namesPaths(v.error);
        accepted++;
        const problems = filterProblems(v.value);
        if (problems.length > 0) throw new Error(`accepted ${JSON.stringify(f)} with ${problems.join('; ')}`);
        return true;
      }),
      { numRuns: 3000, seed: 6 },
    );
    expect(accepted).toBeGreaterThan(100);
  });

  test('When any update is parsed, then an accepted one writes only client-writable paths, and a rejected one is an InputError naming a path', () => {
    let accepted = 0;
    fc.assert(
      fc.property(update, (u) => {
        const v = attempt(() => parseUpdate(u));
        if (!v.ok) return namesPaths(v.error);
        accepted++;
        const bad = [...v.value.set.keys(), ...v.value.unset].filter((p) => !writable(p));
        if (bad.length > 0) throw new Error(`accepted ${JSON.stringify(u)} writing ${bad.join(', ')}`);
        return true;
      }),
      { numRuns: 3000, seed: 6 },
    );
    expect(accepted).toBeGreaterThan(100);
  });
});

describe('against the real database', () => {
  let svc: TestService;
  let ids: string[] = [];
  beforeAll(async () => {
    svc = await startTestService();
    ids = [];
    for (let i = 0; i < 5; i++) {
      const r = await call(svc.url, 'POST', '/container_registry', entry({ container_registry_metadata: { owner: 'tests', nested: { level: i } }, container_registry_config: { auth_required: i % 2 === 0 } }));
      expect(r.status).toBe(201);
      ids.push(r.body.container_registry_id);
    }
  });
  afterAll(() => svc.close());

  test('When generated filters are sent to POST /container_registries, then each is a 200 or a 400 naming a path, never a server error', async () => {
    const seen: Record<number, number> = {};
    await fc.assert(
      fc.asyncProperty(filter, async (f) => {
        const r = await call(svc.url, 'POST', '/container_registries?limit=20', JSON.stringify(f));
        seen[r.status] = (seen[r.status] ?? 0) + 1;
        if (r.status === 200) return Array.isArray(r.body);
        if (r.status === 400) return Array.isArray(r.body?.errors) && r.body.errors.every((e: { path?: string }) => typeof e.path === 'string' && e.path.length > 0);
        throw new Error(`${r.status} for ${JSON.stringify(f)}: ${r.text}`);
      }),
      { numRuns: 300, seed: 6 },
    );
    expect(seen[200]).toBeGreaterThan(20);
  });

  test('When generated updates are sent to PUT /container_registry/:id, then each is a 200 leaving a valid entry or a 4xx naming a path, never a server error', async () => {
    const seen: Record<number, number> = {};
    await fc.assert(
      fc.asyncProperty(update, fc.nat(4), async (u, which) => {
        const id = ids[which]!;
        const r = await call(svc.url, 'PUT', `/container_registry/${id}`, JSON.stringify(u));
        seen[r.status] = (seen[r.status] ?? 0) + 1;
        if (r.status >= 500) throw new Error(`${r.status} for ${JSON.stringify(u)}: ${r.text}`);
        if (r.status === 409) return true;
        if (r.status === 400) return Array.isArray(r.body?.errors) && r.body.errors.length > 0;
        if (r.status !== 200) throw new Error(`${r.status} for ${JSON.stringify(u)}: ${r.text}`);
        const stored = await call(svc.url, 'GET', `/container_registry/${id}`);
        validateEntry(stored.body);
        return true;
      }),
      { numRuns: 300, seed: 6 },
    );
    expect(seen[200]).toBeGreaterThan(10);
  });
});
