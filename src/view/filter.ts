/**
 * A validated, translated query filter (container_registry_id already renamed _id) compiled into a predicate
 * by mingo (the filter was validated against the allow-list before it gets here). Where mingo's semantics differ from
 * the database's, the filter is normalised first; each case says why.
 */
import { Query } from 'mingo';

type Filter = Record<string, unknown>;

const LOGICAL = new Set(['$and', '$or', '$nor']);

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof RegExp);
const isOperatorObject = (v: unknown): v is Record<string, unknown> => isPlainObject(v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => k.startsWith('$'));

/**
 * `$regex` with `$options` as a RegExp. MongoDB's options are PCRE's: `x` (extended: whitespace and
 * `#` comments in the pattern are ignored) has no JavaScript flag, so the pattern is stripped here; `i`, `m`
 * and `s` are the same. The `u` flag makes `.` and classes work on code points, as the database does.
 */
export function toRegExp(source: string, options = ''): RegExp {
  let pattern = source;
  if (options.includes('x')) pattern = stripExtended(pattern);
  const flags = [...new Set(options.replace(/x/g, ''))].join('');
  try {
    return new RegExp(pattern, flags + 'u');
  } catch {
    return new RegExp(pattern, flags);
  }
}

/** PCRE extended mode: unescaped whitespace outside classes and `#` to end of line are dropped. */
function stripExtended(p: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '\\') {
      out += c + (p[i + 1] ?? '');
      i++;
    } else if (inClass) {
      if (c === ']') inClass = false;
      out += c;
    } else if (c === '[') {
      inClass = true;
      out += c;
    } else if (/\s/.test(c)) {
      continue;
    } else if (c === '#') {
      while (i < p.length && p[i] !== '\n') i++;
    } else out += c;
  }
  return out;
}

/** An operator object ({$gt: 1, $regex: ...}) normalised. */
function normaliseOperators(ops: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [op, v] of Object.entries(ops)) {
    if (op === '$options') continue;
    if (op === '$regex') out.$regex = toRegExp(v as string, ops.$options as string | undefined);
    else if (op === '$not' || op === '$elemMatch') out[op] = isOperatorObject(v) ? normaliseOperators(v) : normaliseFilter(v as Filter);
    else out[op] = v;
  }
  return out;
}

export function normaliseFilter(filter: Filter): Filter {
  const out: Filter = {};
  for (const [k, v] of Object.entries(filter)) {
    if (LOGICAL.has(k)) out[k] = (v as Filter[]).map(normaliseFilter);
    else out[k] = isOperatorObject(v) ? normaliseOperators(v) : v;
  }
  return out;
}

/** The filter as a predicate over stored documents; compiled once, used for every document of a query. */
export function compileFilter(filter: Filter): (doc: object) => boolean {
  if (Object.keys(filter).length === 0) return () => true;
  const q = new Query(normaliseFilter(filter), {});
  return (doc) => q.test(doc as Record<string, unknown>);
}
