/**
 * POST /container_registries: the filter (validated by schemas/container_registry_filter.schema.json) and
 * the query-string options `limit`, `cursor`, `sort` and `fields`, parsed into what the repository runs.
 * Pure functions; they throw InputError naming the offending path or parameter.
 */
import { InputError, type FieldError } from '../errors';
import { pointer } from '../lib/json-pointer';
import { integer, single } from '../lib/query-params';
import { MAX_REGEXES_PER_FILTER, regexProblem } from '../lib/regex';
import { checkJsonShape } from '../lib/json-shape';
import { entryFields, validateCursor, validateFilter } from '../schemas';

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;
export const MAX_FILTER_DEPTH = 12;

/**
 * Sort keys allowed: fields present on every entry, so key-set pagination sees every entry exactly once.
 * A Map, not an object literal: a client's `?sort=constructor` must not find Object.prototype's members.
 */
export const SORT_FIELDS: ReadonlyMap<string, { dbField: string; type: 'string' | 'number' }> = new Map([
  ['container_registry_name', { dbField: 'container_registry_name', type: 'string' }],
  ['container_registry_id', { dbField: '_id', type: 'string' }],
  ['created_at', { dbField: 'created_at', type: 'string' }],
  ['updated_at', { dbField: 'updated_at', type: 'string' }],
  ['version', { dbField: 'version', type: 'number' }],
  ['container_registry_health.status', { dbField: 'container_registry_health.status', type: 'string' }],
]);
export const DEFAULT_SORT = 'container_registry_name';

export interface SortSpec {
  spec: string;
  field: string;
  dbField: string;
  direction: 1 | -1;
}

export interface QueryPlan {
  filter: Record<string, unknown>;
  sort: SortSpec;
  limit: number;
  after?: { key: string | number; id: string };
  /** Top-level fields to return (undefined = all). */
  fields?: string[];
  /** `min_revision`: the answer must include every change up to this catalog revision (waits up to 5 s). */
  minRevision?: number;
}

const LOGICAL = new Set(['$and', '$or', '$nor']);

/** Renames the API's container_registry_id to the stored _id wherever it is a field of the filter. */
function toDbFilter(filter: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(filter)) {
    if (LOGICAL.has(k)) out[k] = (v as Record<string, unknown>[]).map(toDbFilter);
    else if (k === 'container_registry_name') out[k] = nfc(v);
    else out[k === 'container_registry_id' ? '_id' : k] = v;
  }
  return out;
}

/** Names are stored in NFC (service.ts): every string a filter compares them with is taken in NFC too. */
function nfc(v: unknown): unknown {
  if (typeof v === 'string') return v.normalize('NFC');
  if (Array.isArray(v)) return v.map(nfc);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, nfc(x)]));
  return v;
}

/**
 * Every `$regex` of a validated filter, compiled in the accepted dialect (src/lib/regex.ts) with its `$options`:
 * one error per pattern refused, naming its path, and one for a `$regex` past the most one filter may hold.
 */
function regexErrors(filter: Record<string, unknown>): FieldError[] {
  const errors: FieldError[] = [];
  let count = 0;
  const walk = (v: unknown, path: string): void => {
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, path + pointer(i)));
    if (v === null || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (typeof o.$regex === 'string') {
      count++;
      const problem = count > MAX_REGEXES_PER_FILTER ? `is one $regex too many: a filter holds at most ${MAX_REGEXES_PER_FILTER}` : regexProblem(o.$regex, typeof o.$options === 'string' ? o.$options : '');
      if (problem) errors.push({ path: `${path}/$regex`, message: problem });
    }
    for (const [k, x] of Object.entries(o)) if (k !== '$regex') walk(x, path + pointer(k));
  };
  walk(filter, '');
  return errors;
}

export function parseFilter(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new InputError('The filter must be a JSON object.', [{ path: '/', message: 'must be an object' }]);
  }
  checkJsonShape(body, MAX_FILTER_DEPTH);
  const filter = validateFilter(body);
  const errors = regexErrors(filter);
  if (errors.length > 0) throw new InputError(`The filter is invalid: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`, errors);
  return toDbFilter(filter);
}

/**
 * A filter given inside another request (a query parameter, a field of a body): its errors name where
 * it was given (`at`: a parameter name such as `filter`, or a JSON pointer such as `/filter`).
 */
export function parseFilterAt(body: unknown, at: string): Record<string, unknown> {
  try {
    return parseFilter(body);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    const errors = (e.errors ?? []).map((x) => ({ path: `${at}${x.path === '/' ? '' : x.path}`, message: x.message }));
    throw new InputError(`The filter is invalid: ${e.message}`, errors.length > 0 ? errors : [{ path: at, message: e.message }]);
  }
}

export function parseSort(raw: string | undefined): SortSpec {
  const spec = raw ?? DEFAULT_SORT;
  const direction = spec.startsWith('-') ? -1 : 1;
  const field = spec.replace(/^[-+]/, '');
  const known = SORT_FIELDS.get(field);
  if (!known) {
    throw new InputError(`Cannot sort by "${field}".`, [
      { path: 'sort', message: `unknown sort field "${field}"; use one of ${[...SORT_FIELDS.keys()].join(', ')}, with - for descending` },
    ]);
  }
  return { spec: (direction === -1 ? '-' : '') + field, field, dbField: known.dbField, direction };
}

export function encodeCursor(sort: SortSpec, key: string | number, id: string): string {
  return Buffer.from(JSON.stringify({ s: sort.spec, k: key, i: id })).toString('base64url');
}

export function decodeCursor(raw: string, sort: SortSpec): { key: string | number; id: string } {
  const bad = (message: string) => new InputError(`The cursor is invalid: ${message}.`, [{ path: 'cursor', message }]);
  if (raw.length > 2048 || !/^[A-Za-z0-9_-]+$/.test(raw)) throw bad('not a cursor issued by this service');
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw bad('not a cursor issued by this service');
  }
  let c;
  try {
    c = validateCursor(decoded);
  } catch {
    throw bad('not a cursor issued by this service');
  }
  if (c.s !== sort.spec) throw bad(`it belongs to sort "${c.s}", not "${sort.spec}"; send the same sort as the first page`);
  if (typeof c.k !== SORT_FIELDS.get(sort.field)!.type) throw bad('its sort key has the wrong type');
  return { key: c.k, id: c.i };
}

export function parseFields(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const fields = raw.split(',').map((f) => f.trim()).filter(Boolean);
  const unknown = fields.filter((f) => !entryFields.includes(f));
  if (fields.length === 0 || unknown.length > 0) {
    throw new InputError(`Unknown fields: ${unknown.join(', ') || '(none given)'}.`, [
      { path: 'fields', message: `use a comma-separated list of ${entryFields.join(', ')}` },
    ]);
  }
  return fields;
}

const OPTIONS = new Set(['limit', 'cursor', 'sort', 'fields', 'min_revision']);

/** `min_revision` (queries and reads by id): the catalog revision the answer must include, if given. */
export function parseMinRevision(query: Record<string, unknown>): number | undefined {
  const raw = single(query, 'min_revision');
  if (raw !== undefined && !/^\d{1,15}$/.test(raw)) {
    throw new InputError('min_revision must be a catalog revision (a non-negative integer).', [{ path: 'min_revision', message: 'must be a non-negative integer' }]);
  }
  return raw === undefined ? undefined : Number(raw);
}

export function parseQueryPlan(body: unknown, query: Record<string, unknown>): QueryPlan {
  const unknownParams = Object.keys(query).filter((k) => !OPTIONS.has(k));
  if (unknownParams.length > 0) {
    throw new InputError(`Unknown query parameters: ${unknownParams.join(', ')}.`, unknownParams.map((p) => ({ path: p, message: 'unknown query parameter; use limit, cursor, sort, fields or min_revision' })));
  }
  const limit = integer(query, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT);
  const sort = parseSort(single(query, 'sort'));
  const cursorRaw = single(query, 'cursor');
  return {
    minRevision: parseMinRevision(query),
    filter: parseFilter(body),
    sort,
    limit,
    after: cursorRaw === undefined ? undefined : decodeCursor(cursorRaw, sort),
    fields: parseFields(single(query, 'fields')),
  };
}
