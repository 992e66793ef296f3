/**
 * `npm run seed -- [--dry-run] PATH...` (PATH: a .json file, a directory of them, or - for stdin).
 * Prints one line per entry and a summary; exits 1 when any entry was invalid or failed.
 */
import { loadConfig } from '../config';
import { openDatabase } from '../db/connect';
import { createLogger } from '../logger';
import { createCatalog } from '../registries/catalog';
import { formatLine, onboard, readSources, summarize } from './onboard';

const USAGE = 'usage: npm run seed -- [--dry-run] PATH... (a .json file with an object or an array, a directory of .json files, or - for stdin)';

async function main(argv: string[]): Promise<number> {
  const dryRun = argv.includes('--dry-run');
  const paths = argv.filter((a) => a !== '--dry-run');
  const unknown = paths.filter((a) => a.startsWith('--'));
  if (paths.length === 0 || unknown.length > 0) {
    process.stderr.write(`${unknown.length ? `unknown option ${unknown.join(' ')}\n` : ''}${USAGE}\n`);
    return 2;
  }
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, process.stderr);
  const entries = await readSources(paths);
  const database = await openDatabase(config, logger);
  try {
    const { registries } = await createCatalog(config, database.db, logger);
    const lines = await onboard(registries, entries, dryRun);
    for (const l of lines) process.stdout.write(formatLine(l) + '\n');
    process.stdout.write(summarize(lines, dryRun) + '\n');
    return lines.some((l) => l.outcome === 'invalid' || l.outcome === 'failed') ? 1 : 0;
  } finally {
    await database.close();
  }
}

main(process.argv.slice(2)).then(
  // Exit once stdout has taken every line: into a pipe, writes queue up and process.exit would drop the
  // rest (the summary first).
  (code) => process.stdout.write('', () => process.exit(code)),
  (e: Error) => {
    process.stderr.write(`seed: ${e.message}\n`);
    process.exit(1);
  },
);
