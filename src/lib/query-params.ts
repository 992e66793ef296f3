/**
 * Query-string parameters, read the one way every route reads them (the app's query parser is 'simple':
 * a repeated parameter arrives as an array). Errors are InputErrors naming the parameter.
 */
import { InputError } from '../errors';

/** The parameter's value; a parameter given more than once is a 400. */
export function single(query: Record<string, unknown>, name: string): string | undefined {
  const v = query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new InputError(`Give ${name} once, as a plain value.`, [{ path: name, message: 'must be given once' }]);
  return v;
}

/**
 * An integer parameter from `min` to `max` (`dflt` when absent); `max` at most Number.MAX_SAFE_INTEGER (16
 * digits). Number() of 16 digits is exact up to that bound and rounds anything above it to 2^53 or more, so
 * the comparison refuses every value over `max`.
 */
export function integer(query: Record<string, unknown>, name: string, min: number, max: number, dflt: number): number {
  const raw = single(query, name);
  if (raw === undefined) return dflt;
  if (!/^\d{1,16}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new InputError(`${name} must be an integer from ${min} to ${max}.`, [{ path: name, message: `must be an integer from ${min} to ${max}` }]);
  }
  return Number(raw);
}
