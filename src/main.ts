/**
 * Entry point: config → database → service → HTTP listener, and a graceful stop on SIGTERM/SIGINT.
 */
import type { Server } from 'node:http';
import { ConfigError, loadConfig, type Config } from './config';
import { compose } from './compose';
import { openDatabase } from './db/connect';
import { PROTECTED_MODE_HINT } from './http/auth';
import { createHttpServer, listen } from './http/server';
import { stopOnSignals } from './lifecycle';
import { createLogger } from './logger';
import { LineBatcher } from './observability/line-batcher';

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
  const logger = createLogger(config.LOG_LEVEL, new LineBatcher(process.stdout));
  const database = await openDatabase(config, logger);
  const { app, access, lifecycle, health, protectPort } = await compose(config, database.db, logger);

  const server: Server = await listen(createHttpServer(app, config), config.PORT, config.HOST);
  const address = server.address();
  if (typeof address === 'object' && address) protectPort(address.port);
  logger.info('listening', { address: typeof address === 'object' && address ? `${address.address}:${address.port}` : address, backend: database.backend });

  if (access.protectedMode) {
    logger.warn(PROTECTED_MODE_HINT, { host: config.HOST });
  } else {
    const roles = config.API_KEYS.reduce<Record<string, number>>((n, k) => ({ ...n, [k.role]: (n[k.role] ?? 0) + 1 }), {});
    logger.warn('API key mode: every route except /healthz, /readyz and /openapi.json needs an API key', { keys_per_role: roles });
  }

  stopOnSignals({ server, lifecycle, closeDatabase: () => database.close(), logger, timeoutMs: config.SHUTDOWN_TIMEOUT_MS });
  // Sweeps start once the service serves; the lifecycle stops them (compose.ts) before the database closes.
  health.scheduler.start();
}

main().catch((e: Error) => {
  process.stderr.write(`registry-db: ${e.message}\n`);
  process.exit(1);
});
