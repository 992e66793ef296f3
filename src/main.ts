/**
 * Entry point: config → database → service → HTTP listener, and a graceful stop on SIGTERM/SIGINT.
 */
import type { Server } from 'node:http';
import { ConfigError, loadConfig, type Config } from './config';
import { compose } from './compose';
import { openDatabase } from './db/connect';
import { createLogger } from './logger';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`registry-db: invalid configuration: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const logger = createLogger(config.LOG_LEVEL);
  const database = await openDatabase(config, logger);
  const { app } = await compose(config, database.db, logger);

  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(config.PORT, config.HOST, () => resolve(s));
    s.once('error', reject);
  });
  const address = server.address();
  logger.info('listening', { address: typeof address === 'object' && address ? `${address.address}:${address.port}` : address, backend: database.backend });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal });
    server.close(async () => {
      await database.close();
      logger.info('stopped');
      process.exit(0);
    });
    server.closeIdleConnections();
    setTimeout(() => {
      logger.error('forced exit: requests still running after 25 s');
      process.exit(1);
    }, 25_000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e: Error) => {
  process.stderr.write(`registry-db: ${e.message}\n`);
  process.exit(1);
});
