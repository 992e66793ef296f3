/**
 * The database commands (logs on stderr, results on stdout):
 *   npm run db                          starts the embedded default database alone and prints its MONGODB_URI
 *                                       (for benchmarks and other tools); stops on Ctrl-C / SIGTERM.
 *   npm run db:export -- FILE           writes every collection of the service's database to FILE (src/db/dump.ts).
 *   npm run db:import -- FILE [--force] reads an export into the database, all or nothing, after checking every
 *                                       document; refuses a non-empty one unless --force.
 * Export and import work on MONGODB_URI when set, else on the embedded default of DATA_DIR (its pinned backend).
 * The import checks the catalog's collections with the catalog's own rules (src/registries/import-rules.ts):
 * this file is a composition root, like main.ts: it hands db/'s import the domain's knowledge.
 */
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { finished } from 'node:stream/promises';
import { ConfigError, loadConfig, type Config } from '../config';
import { createLogger, type Logger } from '../logger';
import { openDatabase } from '../db/connect';
import { exportDatabase, importDatabase, type CollectionCount } from '../db/dump';
import { startEmbeddedDatabase } from '../db/embedded';

const USAGE = 'usage: npm run db | npm run db:export -- FILE | npm run db:import -- FILE [--force]';

class UsageError extends Error {}

async function serve(config: Config, logger: Logger): Promise<void> {
  const db = await startEmbeddedDatabase({ dataDir: config.DATA_DIR, mode: config.EMBEDDED_DB, allowDownload: config.EMBEDDED_DB_DOWNLOAD, logger });
  process.stdout.write(`MONGODB_URI=${db.uri}\n`);
  const stop = async () => {
    await db.stop();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  setInterval(() => undefined, 1 << 30);
}

const summary = (counts: CollectionCount[]): string =>
  `${counts.map((c) => `${c.name}: ${c.count}\n`).join('')}${counts.length} collections, ${counts.reduce((n, c) => n + c.count, 0)} documents`;

async function withDatabase<T>(config: Config, logger: Logger, work: (db: Awaited<ReturnType<typeof openDatabase>>) => Promise<T>): Promise<T> {
  const database = await openDatabase(config, logger);
  try {
    return await work(database);
  } finally {
    await database.close();
  }
}

async function exportTo(config: Config, logger: Logger, file: string): Promise<void> {
  const counts = await withDatabase(config, logger, async ({ db }) => {
    // Written beside the target and renamed when complete: FILE is either a whole export or untouched.
    // Readable by its owner only: it holds the whole catalog (credentials sealed, usernames and URLs in clear).
    const partial = `${file}.partial`;
    const out = createWriteStream(partial, { flags: 'w', mode: 0o600 });
    try {
      const written = await exportDatabase(db, out);
      out.end();
      await finished(out);
      renameSync(partial, file);
      return written;
    } catch (e) {
      out.destroy();
      rmSync(partial, { force: true });
      throw e;
    }
  });
  process.stdout.write(`${summary(counts)} exported to ${file}\n`);
}

async function importFrom(config: Config, logger: Logger, file: string, force: boolean): Promise<void> {
  // Loaded here: the catalog's schemas compile at load, which `npm run db` and the export do not need.
  const { catalogImportRules } = await import('../registries/import-rules');
  const onStep = (step: string) => void logger.info(`import: ${step}`);
  const counts = await withDatabase(config, logger, ({ db }) => importDatabase(db, file, { force, rules: catalogImportRules(), onStep }));
  process.stdout.write(`${summary(counts)} imported from ${file}; counts verified\n`);
  process.stderr.write('Stored registry credentials stay sealed: the service reading this database needs the credentials key of the source (its CREDENTIALS_KEY, or DATA_DIR/credentials.key).\n');
}

async function main(argv: string[]): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL, process.stderr);
  const [command, ...rest] = argv;
  const force = rest.includes('--force');
  const files = rest.filter((a) => a !== '--force');
  const unknown = files.find((a) => a.startsWith('--'));
  if (unknown) throw new UsageError(`unknown option ${unknown}`);
  if (command === undefined) return serve(config, logger);
  if (files.length !== 1) throw new UsageError(`${command} needs exactly one FILE`);
  if (command === 'export' && !force) return exportTo(config, logger, files[0]!);
  if (command === 'import') return importFrom(config, logger, files[0]!, force);
  throw new UsageError(`unknown command or option: ${argv.join(' ')}`);
}

main(process.argv.slice(2)).then(() => {
  if (process.argv.length > 2) process.exit(0);
}, (e: Error) => {
  process.stderr.write(`${e instanceof UsageError ? `${e.message}\n${USAGE}` : e.message}\n`);
  process.exit(e instanceof UsageError || e instanceof ConfigError ? 2 : 1);
});
