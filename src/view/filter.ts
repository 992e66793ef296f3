/**
 * A validated, translated query filter (container_registry_id already renamed _id) compiled into a predicate
 * by mingo (the filter was validated against the allow-list before it gets here). Where mingo's semantics differ from
 * the database's, the filter is normalised first; each case says why.
 */
import { Context, Query } from 'mingo';
import { compileRegex, MAX_MATCH_COST } from '../lib/regex';
import { checkBudget, FilterBudget, SliceOver, withBudget } from './budget';

type Filter = Record<string, unknown>;

const LOGICAL = new Set(['$and', '$or', '$nor']);

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof RegExp);
const isOperatorObject = (v: unknown): v is Record<string, unknown> => isPlainObject(v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => k.startsWith('$'));

/**
 * `$regex` with `$options`, compiled by the linear-time RE2 engine (src/lib/regex.ts) in place of mingo's
 * JavaScript RegExp: a test of one value, true for a string the pattern matches. Each match first checks the
 * running time budget (./budget.ts), so no filter runs unbounded on the event loop.
 */
function regexTest(source: string, options = ''): (v: unknown) => boolean {
  const re = compileRegex(source, options);
  return (v) => {
    if (typeof v !== 'string') return false;
    checkBudget();
    if (re.size * (v.length + 1) > MAX_MATCH_COST) throw FilterBudget.matchTooCostly(re.size, v.length);
    return re.test(v);
  };
}

/**
 * The values a dotted path reaches in a document, as the database sees them: arrays met on the way are
 * walked (their object elements take the same path segment; a numeric segment also indexes the array), and
 * an array at the end is one value (its elements are tried by the operators). mingo instead gathers the
 * values reached through an array into one new array, which then wrongly equals an array literal
 * ({"list.k": [1]} matching [{k: 1}]) or passes $size / $elemMatch; the operators below use this walk.
 */
function reach(v: unknown, parts: string[], i: number, out: unknown[]): void {
  if (i === parts.length) {
    out.push(v);
    return;
  }
  const seg = parts[i]!;
  if (Array.isArray(v)) {
    if (/^\d+$/.test(seg) && v[Number(seg)] !== undefined) reach(v[Number(seg)], parts, i + 1, out);
    for (const e of v) if (isPlainObject(e)) reach(e, parts, i, out);
  } else if (isPlainObject(v) && Object.prototype.hasOwnProperty.call(v, seg)) reach(v[seg], parts, i + 1, out);
}

/** Equality of stored values as the database has it: objects equal only with the same keys in the same order. */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k, i) => k === kb[i] && same(a[k], b[k]));
  }
  return false;
}

/** An `$elemMatch` of operators on the element itself (not criteria on an object element's fields, nor $and/$or/$nor). */
const onElement = (criteria: unknown) => isOperatorObject(criteria) && !Object.keys(criteria).some((k) => LOGICAL.has(k));

type Predicate = (doc: unknown) => boolean;
const OPTIONS: { context?: Context } = {};
const scalarQuery = (selector: string, op: string, value: unknown): Predicate => {
  const q = new Query({ [selector]: { [op]: value } }, OPTIONS);
  return (doc) => q.test(doc as Record<string, unknown>);
};
/** A document's values at `selector` tested by `test` (each value, and each element of an array value when `elements`). */
const atPath = (selector: string, test: (v: unknown) => boolean, elements: boolean): Predicate => {
  const parts = selector.split('.');
  return (doc) => {
    const values: unknown[] = [];
    reach(doc, parts, 0, values);
    return values.some((v) => test(v) || (elements && Array.isArray(v) && v.some(test)));
  };
};
const isLiteralObject = (v: unknown) => v !== null && typeof v === 'object';
/**
 * Equality with null: the path reaches no value (missing, or only through array elements that lack it), or
 * a value that is null or an array holding null. mingo treats values gathered through arrays differently
 * ({"l.k": null} does not match l: [] or l: [1] there; it does in the database).
 */
const isNull = (selector: string): Predicate => {
  const parts = selector.split('.');
  return (doc) => {
    const values: unknown[] = [];
    reach(doc, parts, 0, values);
    return values.length === 0 || values.some((v) => v === null || (Array.isArray(v) && v.includes(null)));
  };
};
/**
 * Equality with null, an array or an object literal (other scalars keep mingo's $eq, which agrees with the
 * database). An object literal is compared with the value only, not with the elements of an array value:
 * FerretDB v1 does so ({a: {x: 1}} does not match a: [{x: 1}]; on MongoDB it does).
 */
const equals = (selector: string, value: unknown): Predicate =>
  value === null ? isNull(selector) : isLiteralObject(value) ? atPath(selector, (v) => same(v, value), Array.isArray(value)) : scalarQuery(selector, '$eq', value);
const anyOf = (selector: string, values: unknown[]): Predicate => {
  const tests = values.filter((v) => v === null || isLiteralObject(v)).map((v) => equals(selector, v));
  const scalars = values.filter((v) => v !== null && !isLiteralObject(v));
  if (scalars.length > 0) tests.push(scalarQuery(selector, '$in', scalars));
  return (doc) => tests.some((t) => t(doc));
};

/**
 * $all as the test database (FerretDB v1) runs it: one value at the path holds every item, an array value
 * as elements (objects compared with key order), a scalar value by equality; nothing for an empty list.
 * mingo needs an array value and compares objects without key order. (MongoDB also matches an object value
 * equal to a single object item, and items found in different elements' values ({"a.x": {$all: [1, 2]}}
 * over a: [{x: 1}, {x: 2}]); FerretDB v1 does not.)
 */
const allOf = (selector: string, items: unknown[]): Predicate =>
  items.length === 0
    ? () => false
    : atPath(selector, (v) => (Array.isArray(v) ? items.every((it) => v.some((e) => same(e, it))) : items.every((it) => !isLiteralObject(it) && same(v, it))), false);

/** Operators replacing mingo's where they differ from the database (see normaliseOperators). */
const context = Context.init({
  query: {
    $eqStored: (selector: string, value: unknown) => equals(selector, value),
    $nullStored: (selector: string) => isNull(selector),
    $neStored: (selector: string, value: unknown) => {
      const t = equals(selector, value);
      return (doc: unknown) => !t(doc);
    },
    $inStored: (selector: string, values: unknown[]) => anyOf(selector, values),
    $ninStored: (selector: string, values: unknown[]) => {
      const t = anyOf(selector, values);
      return (doc: unknown) => !t(doc);
    },
    $allStored: (selector: string, items: unknown[]) => allOf(selector, items),
    // The strings at the path, and the strings in an array there, as the database matches them.
    $regexStored: (selector: string, test: (v: unknown) => boolean) => atPath(selector, test, true),
    $sizeStored: (selector: string, n: number) => atPath(selector, (v) => Array.isArray(v) && v.length === n, false),
    $elemMatchStored: (selector: string, criteria: Record<string, unknown>) => {
      // Operators apply to the element itself; a query of fields to an object element.
      const onValue = onElement(criteria);
      const q = new Query(onValue ? { v: criteria } : criteria, OPTIONS);
      const test = onValue ? (e: unknown) => q.test({ v: e }) : (e: unknown) => isPlainObject(e) && q.test(e);
      return atPath(selector, (v) => Array.isArray(v) && v.some(test), false);
    },
  },
} as unknown as Parameters<typeof Context.init>[0]);
OPTIONS.context = context;

/** An operator object ({$gt: 1, $regex: ...}) normalised. */
function normaliseOperators(ops: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [op, v] of Object.entries(ops)) {
    if (op === '$options') continue;
    if (op === '$regex') out.$regexStored = regexTest(v as string, ops.$options as string | undefined);
    else if (op === '$not') out.$not = normaliseOperators(v as Record<string, unknown>);
    else if (op === '$elemMatch') out.$elemMatchStored = onElement(v) ? normaliseOperators(v as Record<string, unknown>) : normaliseFilter(v as Filter);
    else if (op === '$size') out.$sizeStored = v;
    else if (op === '$all') out.$allStored = v;
    else if ((op === '$eq' || op === '$ne') && (v === null || isLiteralObject(v))) out[`${op}Stored`] = v;
    // {$gte: null} and {$lte: null} match what equals null (the only value in null's type bracket).
    else if ((op === '$gte' || op === '$lte') && v === null) out.$nullStored = true;
    else if ((op === '$in' || op === '$nin') && (v as unknown[]).some((x) => x === null || isLiteralObject(x))) out[`${op}Stored`] = v;
    else out[op] = v;
  }
  return out;
}

export function normaliseFilter(filter: Filter): Filter {
  const out: Filter = {};
  for (const [k, v] of Object.entries(filter)) {
    if (LOGICAL.has(k)) out[k] = (v as Filter[]).map(normaliseFilter);
    else if (isOperatorObject(v)) out[k] = normaliseOperators(v);
    else out[k] = v === null || isLiteralObject(v) ? { $eqStored: v } : v;
  }
  return out;
}

/** A compiled filter: true when `doc` matches; with a budget, the clock is checked before the document and each regex match. */
export type FilterPredicate = (doc: object, budget?: FilterBudget) => boolean;

/** The filter as a predicate over stored documents; compiled once, used for every document of a query. */
export function compileFilter(filter: Filter): FilterPredicate {
  if (Object.keys(filter).length === 0) return (_doc, budget) => (budget?.check(), true);
  const q = new Query(normaliseFilter(filter), OPTIONS);
  return (doc, budget) => {
    if (!budget) return q.test(doc as Record<string, unknown>);
    budget.check();
    return withBudget(budget, () => q.test(doc as Record<string, unknown>));
  };
}

/**
 * The filter as an asynchronous predicate over documents read from the database (RegistryRepository's
 * exactFilter), all sharing one budget of `timeoutMs`: when a slice ends during a document, it yields to
 * other work and evaluates that document again in a fresh slice.
 */
export function yieldingFilter(filter: Filter, timeoutMs: number): (doc: object) => Promise<boolean> {
  const match = compileFilter(filter);
  const budget = new FilterBudget(timeoutMs, 'QUERY_TIMEOUT_MS');
  return async (doc) => {
    try {
      return match(doc, budget);
    } catch (e) {
      if (!(e instanceof SliceOver)) throw e;
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
    budget.startSlice();
    try {
      return match(doc, budget);
    } catch (e) {
      throw e instanceof SliceOver ? FilterBudget.entryTooSlow() : e;
    }
  };
}
