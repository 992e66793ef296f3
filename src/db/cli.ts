/**
 * `npm run db`: starts the embedded default database alone and prints its MONGODB_URI, for benchmarks and
 * for pointing other tools at it. Stops on Ctrl-C / SIGTERM.
 */
import { loadConfig } from '../config';
import { createLogger } from '../logger';
import { startEmbeddedDatabase } from './embedded';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL, process.stderr);
  const db = await startEmbeddedDatabase({ dataDir: config.DATA_DIR, mode: config.EMBEDDED_DB, logger });
  process.stdout.write(`MONGODB_URI=${db.uri}\n`);
  const stop = async () => {
    await db.stop();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  setInterval(() => undefined, 1 << 30);
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
