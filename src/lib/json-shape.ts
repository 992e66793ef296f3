/**
 * Shape checks shared by every JSON input (API bodies, seed files): parse errors reported as "malformed
 * JSON", nesting depth bounded, prototype-pollution keys refused anywhere, and integers JSON.parse would
 * round (beyond 2^53 - 1) refused where they stand instead of being stored altered.
 */
import { InputError, MalformedJsonError } from '../errors';
import { pointer } from './json-pointer';
import { findUnsafeInteger } from './json-scan';

export const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
export const MAX_BODY_DEPTH = 32;

/** Throws an InputError at the first forbidden key or at a nesting deeper than MAX_BODY_DEPTH. */
export function checkJsonShape(value: unknown, maxDepth = MAX_BODY_DEPTH): void {
  const stack: Array<{ v: unknown; path: string; depth: number }> = [{ v: value, path: '', depth: 0 }];
  while (stack.length > 0) {
    const { v, path, depth } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= maxDepth) {
      throw new InputError(`The body is nested more than ${maxDepth} levels deep.`, [
        { path: path || '/', message: `nesting deeper than ${maxDepth} levels` },
      ]);
    }
    if (Array.isArray(v)) {
      v.forEach((item, i) => stack.push({ v: item, path: path + pointer(i), depth: depth + 1 }));
      continue;
    }
    for (const key of Object.keys(v)) {
      const p = path + pointer(key);
      if (FORBIDDEN_KEYS.has(key)) {
        throw new InputError(`The key "${key}" is not allowed anywhere in a request.`, [{ path: p, message: `key "${key}" is not allowed` }]);
      }
      // BSON stores keys as C strings: a NUL inside one cannot be stored or queried (the driver throws).
      if (key.includes('\u0000')) throw new InputError('A key contains a NUL character.', [{ path: p, message: 'keys must not contain NUL (\\u0000)' }]);
      stack.push({ v: (v as Record<string, unknown>)[key], path: p, depth: depth + 1 });
    }
  }
}

/** Parses a JSON text as the service does for request bodies (used by the seed script too). */
export function parseJsonText(text: string, what = 'The request body'): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const reason = e instanceof RangeError ? 'it is nested too deeply' : (e as Error).message;
    throw new MalformedJsonError(`${what} is not valid JSON: ${reason}.`, [{ path: '/', message: `malformed JSON: ${reason}` }]);
  }
  checkJsonShape(value);
  const unsafe = findUnsafeInteger(text);
  if (unsafe) {
    const shown = unsafe.literal.length > 40 ? `${unsafe.literal.slice(0, 40)}...` : unsafe.literal;
    throw new InputError(
      `${what} holds the integer ${shown} at ${unsafe.path}: integers beyond ±${Number.MAX_SAFE_INTEGER} (2^53 - 1) cannot be kept exactly (it would be stored as ${Number(unsafe.literal)}); send it as a string.`,
      [{ path: unsafe.path, message: `integer beyond ±${Number.MAX_SAFE_INTEGER} (2^53 - 1) cannot be stored exactly; send it as a string` }],
    );
  }
  return value;
}

