// Plain JS so that scripts/build-ferretdb.sh can use it before anything is compiled.
// The cache key is a hash of the Go sources, so a change to tools/ferretdb rebuilds the binary.
const { createHash } = require('node:crypto');
const { readdirSync, readFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const srcDir = path.join(root.endsWith('dist') ? path.dirname(root) : root, 'tools', 'ferretdb');

function ferretdbBinaryPath(env = process.env) {
  if (env.FERRETDB_BIN) return path.resolve(env.FERRETDB_BIN);
  const h = createHash('sha256');
  const goFiles = readdirSync(srcDir).filter((f) => f.endsWith('.go')).sort();
  for (const f of ['go.mod', 'go.sum', ...goFiles]) h.update(`${f}\0`).update(readFileSync(path.join(srcDir, f)));
  const cacheRoot = env.FERRETDB_CACHE_DIR || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'registry-db');
  return path.join(cacheRoot, `ferretdb-${h.digest('hex').slice(0, 16)}`, 'ferretdb-embedded');
}

module.exports = { ferretdbBinaryPath, ferretdbSourceDir: srcDir };
