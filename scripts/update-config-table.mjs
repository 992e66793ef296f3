// Rewrites the configuration table of README.md from src/config.ts (npm run config:doc prints it).
// Used after adding a variable: npm run config:readme. The table sits between the config-table markers.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { configTable } = require('../dist/src/config.js');
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const table = /<!-- config-table:start -->\n[\s\S]*?\n<!-- config-table:end -->/;
if (!table.test(readme)) {
  console.error('README.md has no <!-- config-table:start --> ... <!-- config-table:end --> block to rewrite');
  process.exit(1);
}
const next = readme.replace(table, () => `<!-- config-table:start -->\n${configTable()}\n<!-- config-table:end -->`);
writeFileSync(new URL('../README.md', import.meta.url), next);
