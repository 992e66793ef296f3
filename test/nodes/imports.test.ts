/**
 * The node-side programs are clients of the public API only (SPEC 18, ARCHITECTURE "Where SPEC 18–20 could
 * go"): what they load at run time is Node's own modules, the agent's code and the pure renderers of
 * src/nodes with the reference grammar and prefix index of src/resolve; no server code, no package from
 * node_modules. Read from the built JavaScript (dist/, as `npm test` builds it): the modules `require`d,
 * followed from each program's entry point.
 */
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { AGENT, CREDENTIAL_PROVIDER, ROOT } from '../support/node-programs';

const DIST_SRC = path.join(ROOT, 'dist', 'src');
const ALLOWED = ['agent', 'bin', 'nodes', 'resolve'].map((d) => path.join(DIST_SRC, d) + path.sep);

/** Every file `entry` loads, and every module name it asks for that is no file of dist/. */
function closure(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(/\brequire\("([^"]+)"\)/g)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(file), spec);
        visit(existsSync(`${target}.js`) ? `${target}.js` : path.join(target, 'index.js'));
      } else packages.add(spec);
    }
  };
  visit(entry);
  return { files: [...files], packages: [...packages] };
}

test.each([
  ['registry-db-agent', AGENT],
  ['registry-db-credential-provider', CREDENTIAL_PROVIDER],
])('When %s is loaded, then it loads only Node modules, its own code, src/nodes and src/resolve', (_name, entry) => {
  const { files, packages } = closure(entry);
  const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
  expect(packages.filter((p) => !builtins.has(p))).toEqual([]);
  const outside = files.filter((f) => !ALLOWED.some((dir) => f.startsWith(dir)));
  expect(outside.map((f) => path.relative(ROOT, f))).toEqual([]);
  expect(files.some((f) => f.startsWith(path.join(DIST_SRC, 'nodes')))).toBe(entry === AGENT);
});
