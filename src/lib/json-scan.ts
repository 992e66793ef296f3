/**
 * A forward scan over a JSON text that JSON.parse accepted, token by token, each with the JSON Pointer of the
 * value (or member name) it belongs to. It names where in a body a problem lies that JSON.parse hides: an
 * integer too large to keep exactly, a byte that was not UTF-8. Linear in the text, no recursion.
 */
import { pointer } from './json-pointer';

export interface JsonToken {
  kind: 'key' | 'string' | 'number' | 'literal';
  /** Character offsets in the text: [start, end). */
  start: number;
  end: number;
  /** JSON Pointer of the value; for a key, of the member it names. */
  path: string;
}

interface Frame {
  array: boolean;
  path: string;
  index: number;
  key: string;
}

const SCALAR = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;

/** The end (exclusive) of the string token starting at `start` (a `"`). */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\') i += 2;
    else if (c === '"') return i + 1;
    else i++;
  }
  return text.length;
}

/** The first token of `text` (valid JSON) for which `test` is true, in text order. */
export function findToken(text: string, test: (t: JsonToken) => boolean): JsonToken | undefined {
  const stack: Frame[] = [];
  let expectKey = false;
  const slot = (): string => {
    const f = stack[stack.length - 1];
    return f === undefined ? '' : f.path + pointer(f.array ? f.index : f.key);
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const top = stack[stack.length - 1];
    if (c === '{' || c === '[') {
      stack.push({ array: c === '[', path: slot(), index: 0, key: '' });
      expectKey = c === '{';
      i++;
    } else if (c === '}' || c === ']') {
      stack.pop();
      expectKey = false;
      i++;
    } else if (c === ',') {
      if (top?.array) top.index++;
      else expectKey = true;
      i++;
    } else if (c === '"') {
      const end = stringEnd(text, i);
      let token: JsonToken;
      if (expectKey && top) {
        top.key = JSON.parse(text.slice(i, end)) as string;
        expectKey = false;
        token = { kind: 'key', start: i, end, path: slot() };
      } else {
        token = { kind: 'string', start: i, end, path: slot() };
      }
      if (test(token)) return token;
      i = end;
    } else {
      SCALAR.lastIndex = i;
      const m = SCALAR.exec(text);
      if (!m) {
        i++; // whitespace or ':'
        continue;
      }
      const token: JsonToken = { kind: /^[tfn]/.test(m[0]) ? 'literal' : 'number', start: i, end: i + m[0].length, path: slot() };
      if (test(token)) return token;
      i = token.end;
    }
  }
  return undefined;
}

/** The JSON Pointer of the token covering character `index` of `text` (valid JSON), `/` when none does. */
export function pathAt(text: string, index: number): string {
  return findToken(text, (t) => t.start <= index && index < t.end)?.path || '/';
}

/** An integer literal (no fraction, no exponent) beyond ±Number.MAX_SAFE_INTEGER: JSON.parse rounds it. */
export function isUnsafeIntegerLiteral(literal: string): boolean {
  const m = /^-?(\d+)$/.exec(literal);
  return m !== null && m[1]!.length >= 16 && BigInt(m[1]!) > BigInt(Number.MAX_SAFE_INTEGER);
}

/** The first integer literal of `text` (valid JSON) that JSON.parse cannot keep exactly, if any. */
export function findUnsafeInteger(text: string): { literal: string; path: string } | undefined {
  // Such a literal has 16 digits or more: most texts have no such run at all and are not scanned.
  if (!/\d{16}/.test(text)) return undefined;
  const token = findToken(text, (t) => t.kind === 'number' && isUnsafeIntegerLiteral(text.slice(t.start, t.end)));
  return token && { literal: text.slice(token.start, token.end), path: token.path || '/' };
}
