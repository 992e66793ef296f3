/**
 * BSON comparison order of JSON-like values, as the database sorts them: null and missing first, then
 * numbers, strings (by code point, i.e. UTF-8 byte order, not locale), objects, arrays, booleans, dates.
 */

/** BSON type order (MinKey 0 and the types JSON cannot carry left out); null and missing share a rank. */
function rank(v: unknown): number {
  if (v === undefined || v === null) return 1;
  switch (typeof v) {
    case 'number':
      return 2;
    case 'string':
      return 3;
    case 'boolean':
      return 8;
    default:
      if (Array.isArray(v)) return 5;
      if (v instanceof Date) return 9;
      return 4;
  }
}

/**
 * Code point order. JavaScript's `<` compares UTF-16 code units, which puts astral characters (surrogate
 * pairs, 0xD800-0xDFFF) before U+E000-U+FFFF; the database compares UTF-8 bytes, where they come after.
 */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      if (x <= 0xdfff) x += 0x10000;
      if (y <= 0xdfff) y += 0x10000;
    }
    return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

export function compareBson(a: unknown, b: unknown): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case 1:
      return 0;
    case 2:
      return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
    case 3:
      return compareStrings(a as string, b as string);
    case 8:
      return a === b ? 0 : a ? 1 : -1;
    case 9:
      return Math.sign((a as Date).getTime() - (b as Date).getTime());
    case 5: {
      const x = a as unknown[];
      const y = b as unknown[];
      for (let i = 0; i < Math.min(x.length, y.length); i++) {
        const c = compareBson(x[i], y[i]);
        if (c !== 0) return c;
      }
      return Math.sign(x.length - y.length);
    }
    default: {
      // Objects: field by field (type of value, name, value), then the shorter first.
      const x = Object.entries(a as object);
      const y = Object.entries(b as object);
      for (let i = 0; i < Math.min(x.length, y.length); i++) {
        const [kx, vx] = x[i]!;
        const [ky, vy] = y[i]!;
        const c = Math.sign(rank(vx) - rank(vy)) || compareStrings(kx, ky) || compareBson(vx, vy);
        if (c !== 0) return c;
      }
      return Math.sign(x.length - y.length);
    }
  }
}

/** Whether a comparison operator ($gt, $lt, ...) with operand `b` can match `a`: same BSON type bracket. */
export function sameBracket(a: unknown, b: unknown): boolean {
  return rank(a) === rank(b);
}
