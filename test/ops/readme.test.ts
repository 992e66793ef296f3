/**
 * The documentation against the code: the README's two commands, its configuration table (generated from
 * src/config.ts) and its API table (every operation the OpenAPI document describes, which test/ops/openapi.test.ts
 * checks against the routes the app serves), and the role matrix of docs/security.md (the permission of each
 * operation, the roles auth.ts gives it).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { configSpec, configTable } from '../../src/config';
import { PERMISSIONS } from '../../src/http/auth';
import { buildOpenApi } from '../../src/openapi';
import { productionNodeFlags } from '../../bench/proc';

const root = path.join(__dirname, '..', '..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
const security = readFileSync(path.join(root, 'docs', 'security.md'), 'utf8');

/** The rows of the markdown table that follows `header` in `text`, each as its cells. */
function tableAfter(text: string, header: string): string[][] {
  const start = text.indexOf(`\n${header}\n`);
  expect(start).toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  for (const line of text.slice(start + 1).split('\n').slice(2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.slice(1, -1).split(' | ').map((c) => c.trim()));
  }
  return rows;
}

/** `METHOD /path/{param}` of every backquoted route in a table cell (query strings and optional parts dropped). */
function operationsIn(cell: string): string[] {
  return [...cell.matchAll(/`(GET|POST|PUT|DELETE) ([^`?[]+)[^`]*`/g)].map(([, method, route]) => `${method} ${route!.replace(/:(\w+)/g, '{$1}')}`);
}

/** Every operation of the OpenAPI document with the permission it needs (`none` for public ones). */
function documentedOperations(): Map<string, string> {
  const paths = buildOpenApi('test').paths as Record<string, Record<string, { 'x-permission'?: string }>>;
  const out = new Map<string, string>();
  for (const [route, item] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(item)) if (method !== 'parameters') out.set(`${method.toUpperCase()} ${route}`, op['x-permission'] ?? 'none');
  }
  return out;
}

test('When the README shows the two commands, then they are exactly `npm install && npm start` and `npm install && npm test`', () => {
  const block = /## Two commands\n\n```sh\n([\s\S]*?)\n```/.exec(readme);
  expect(block).not.toBeNull();
  expect(block![1]!.split('\n').map((line) => line.split('#')[0]!.trim())).toEqual(['npm install && npm start', 'npm install && npm test']);
});

test('When the README configuration table is compared with config.ts, then it is exactly configTable() (else run npm run config:readme)', () => {
  const m = /<!-- config-table:start -->\n([\s\S]*?)\n<!-- config-table:end -->/.exec(readme);
  expect(m).not.toBeNull();
  expect(m![1]).toBe(configTable());
  for (const name of Object.keys(configSpec)) expect(m![1]).toContain(`| \`${name}\` |`);
});

test('When the README API table is compared with the OpenAPI document, then it lists every operation and no other', () => {
  const listed = tableAfter(readme, '| route | success | errors |').flatMap(([route]) => operationsIn(route!));
  expect(new Set(listed).size).toBe(listed.length);
  expect([...listed].sort()).toEqual([...documentedOperations().keys()].sort());
});

test('When the role matrix of docs/security.md is read, then every operation has the permission the code gives it, and every permission the roles auth.ts gives it', () => {
  const rows = tableAfter(security, '| route | permission | roles |');
  const permissionOf = new Map<string, string>();
  for (const [routes, permission, roles] of rows) {
    const name = permission!.replace(/`/g, '');
    if (name === 'none') expect(roles).toBe('unauthenticated');
    else expect([name, roles!.split(', ')]).toEqual([name, PERMISSIONS[name as keyof typeof PERMISSIONS]]);
    for (const op of operationsIn(routes!)) permissionOf.set(op, name);
  }
  expect(Object.fromEntries([...permissionOf].sort())).toEqual(Object.fromEntries([...documentedOperations()].sort()));
  expect(rows.map((r) => r[1]!.replace(/`/g, ''))).toEqual(expect.arrayContaining(Object.keys(PERMISSIONS)));
});

test('When the Dockerfile starts the service, then it passes the same node flags as npm start (the heap cap the benchmark measures)', () => {
  const flags = productionNodeFlags(root);
  expect(flags).toContain('--max-old-space-size=256');
  const cmd = /^CMD (\[.*\])$/m.exec(readFileSync(path.join(root, 'Dockerfile'), 'utf8'))![1]!;
  expect(JSON.parse(cmd)).toEqual(['node', ...flags, 'dist/src/main.js']);
});
