/**
 * What the database is asked for a filter it cannot run exactly. FerretDB v1 evaluates `$elemMatch` wrongly or
 * not at all: with field criteria ({o: {$elemMatch: {x: 1}}}) it never matches, with two criteria it refuses
 * the query, `$ne`/`$not`/`$and` inside are NotImplemented. So every `$elemMatch` is left out of what the
 * database runs: the database answers a relaxed filter that matches at least the same entries (an `$elemMatch`
 * reads "true" where it counts for a match and "false" under a negation), and the exact filter is then
 * evaluated in the service on what it returns (RegistryRepository.query), with the semantics of the view.
 * Pure.
 */
type Filter = Record<string, unknown>;
/** A relaxed part: a filter or operator object, or a constant (true: always, false: never). */
type Relaxed = Filter | boolean;

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isOperatorObject = (v: unknown): v is Record<string, unknown> => isPlainObject(v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => k.startsWith('$'));

export interface DatabaseFilter {
  /** The filter for the database, or false when nothing can match. */
  filter: Filter | false;
  /** True when `filter` is the filter itself (nothing left to evaluate in the service). */
  exact: boolean;
}

export function databaseFilter(filter: Filter): DatabaseFilter {
  if (!JSON.stringify(filter).includes('"$elemMatch"')) return { filter, exact: true };
  const r = relaxFilter(filter, true);
  return { filter: r === true ? {} : r, exact: false };
}

/** `superset`: the result matches at least what `f` matches (else at most: under a negation). */
function relaxFilter(f: Filter, superset: boolean): Relaxed {
  const parts: Relaxed[] = Object.entries(f).map(([k, v]): Relaxed => {
    const items = (flip: boolean) => (v as Filter[]).map((x) => relaxFilter(x, flip ? !superset : superset));
    if (k === '$and') return wrap('$and', fold(items(false), false), false);
    if (k === '$or') return wrap('$or', fold(items(false), true), false);
    if (k === '$nor') return wrap('$nor', fold(items(true), true), true);
    if (!isOperatorObject(v)) return { [k]: v };
    const ops = relaxOperators(v, superset);
    return typeof ops === 'boolean' ? ops : { [k]: ops };
  });
  return conjunction(parts);
}

/** An operator object of one field (its operators all hold). */
function relaxOperators(ops: Filter, superset: boolean): Relaxed {
  const parts: Relaxed[] = Object.entries(ops).map(([op, v]): Relaxed => {
    if (op === '$elemMatch') return superset;
    if (op !== '$not') return { [op]: v };
    const inner = relaxOperators(v as Filter, !superset);
    return typeof inner === 'boolean' ? !inner : { $not: inner };
  });
  return conjunction(parts);
}

/** All of `parts`: false if one is false; the others merged into one object (true when none is left). */
function conjunction(parts: Relaxed[]): Relaxed {
  if (parts.includes(false)) return false;
  const kept = parts.filter((p): p is Filter => p !== true);
  return kept.length === 0 ? true : Object.assign({}, ...kept);
}

/** The items of $and (`absorbing` false) or the alternatives of $or/$nor (true), with the constants folded away. */
function fold(items: Relaxed[], absorbing: boolean): boolean | Filter[] {
  if (items.includes(absorbing)) return absorbing;
  const kept = items.filter((x): x is Filter => typeof x !== 'boolean');
  return kept.length === 0 ? !absorbing : kept;
}

/** A folded list under its operator; a constant stays one (negated for $nor). */
function wrap(key: string, folded: boolean | Filter[], negated: boolean): Relaxed {
  if (typeof folded === 'boolean') return negated ? !folded : folded;
  return { [key]: folded };
}
