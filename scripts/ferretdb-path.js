// Prints where the FerretDB binary for the current tools/ferretdb sources is cached (shared with src/db/embedded.ts).
const { ferretdbBinaryPath } = require('../src/db/ferretdb-path.js');
process.stdout.write(ferretdbBinaryPath() + '\n');
