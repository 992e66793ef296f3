/**
 * The README documents every configuration variable in one table generated from src/config.ts; docs/security.md
 * the role matrix the code enforces.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { configSpec, configTable } from '../../src/config';
import { PERMISSIONS } from '../../src/http/auth';
import { productionNodeFlags } from '../../bench/proc';

const readme = readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
const security = readFileSync(path.join(__dirname, '..', '..', 'docs', 'security.md'), 'utf8');

test('When the README configuration table is compared with config.ts, then it is exactly configTable() (else run npm run config:doc)', () => {
  const m = /<!-- config-table:start -->\n([\s\S]*?)\n<!-- config-table:end -->/.exec(readme);
  expect(m).not.toBeNull();
  expect(m![1]).toBe(configTable());
  for (const name of Object.keys(configSpec)) expect(m![1]).toContain(`| \`${name}\` |`);
});

test('When the role matrix of docs/security.md is read, then every permission it names has the roles auth.ts gives it', () => {
  const rows = [...security.matchAll(/^\| `[^`]+`[^|]* \| `(\w+)` \| (\w+(?:, \w+)*) \|$/gm)];
  expect(rows.length).toBeGreaterThanOrEqual(8);
  for (const [, permission, roles] of rows) expect([permission, roles!.split(', ')]).toEqual([permission, PERMISSIONS[permission as keyof typeof PERMISSIONS]]);
  expect(rows.map((r) => r[1])).toEqual(expect.arrayContaining(Object.keys(PERMISSIONS)));
});

test('When the Dockerfile starts the service, then it passes the same node flags as npm start (the heap cap the benchmark measures)', () => {
  const root = path.join(__dirname, '..', '..');
  const flags = productionNodeFlags(root);
  expect(flags).toContain('--max-old-space-size=256');
  const cmd = /^CMD (\[.*\])$/m.exec(readFileSync(path.join(root, 'Dockerfile'), 'utf8'))![1]!;
  expect(JSON.parse(cmd)).toEqual(['node', ...flags, 'dist/src/main.js']);
});
