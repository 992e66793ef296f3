/**
 * The schemas of schemas/ as a reader meets them through field errors: every `pattern` a field can fail says
 * what it asks for in words (`x-expected`, src/schemas.ts), so no error shows a reader a regular expression.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const DIR = join(__dirname, '..', '..', 'schemas');

/** Every object holding a string `pattern`, with its JSON pointer; those under `propertyNames` or an `if` (never reported as such) left out. */
function patterns(node: unknown, at = ''): { at: string; schema: Record<string, unknown> }[] {
  if (Array.isArray(node)) return node.flatMap((v, i) => patterns(v, `${at}/${i}`));
  if (node === null || typeof node !== 'object') return [];
  const o = node as Record<string, unknown>;
  const own = typeof o.pattern === 'string' && !/\/(propertyNames|if)$/.test(at) ? [{ at, schema: o }] : [];
  return [...own, ...Object.entries(o).flatMap(([k, v]) => patterns(v, `${at}/${k}`))];
}

test('When a schema field has a pattern, then it says in words what the pattern asks for (x-expected)', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.schema.json'));
  const found = files.flatMap((f) => patterns(JSON.parse(readFileSync(join(DIR, f), 'utf8'))).map((p) => ({ file: f, ...p })));
  expect(found.length).toBeGreaterThan(10);
  expect(found.filter((p) => typeof p.schema['x-expected'] !== 'string' || (p.schema['x-expected'] as string).length < 8).map((p) => `${p.file}#${p.at}`)).toEqual([]);
});
