/**
 * The composition root: from config, a database handle and a logger to the running pieces. main.ts and
 * the tests both build the service through here, so tests exercise the production wiring.
 */
import type { Db } from 'mongodb';
import type { Config } from './config';
import { buildApp } from './http/app';
import type { Logger } from './logger';
import { CredentialCipher, loadOrCreateKey } from './registries/credentials';
import { RegistryRepository } from './registries/repository';
import { RegistryService } from './registries/service';

export async function compose(config: Config, db: Db, logger: Logger) {
  const { key, source } = loadOrCreateKey(config.CREDENTIALS_KEY, config.DATA_DIR);
  if (!config.CREDENTIALS_KEY && config.MONGODB_URI) {
    logger.warn('CREDENTIALS_KEY is unset: credentials are sealed with a key generated in DATA_DIR; replicas must share one key', { key_file: source });
  }
  const cipher = new CredentialCipher(key);
  const repository = new RegistryRepository(db, config.QUERY_TIMEOUT_MS);
  await repository.ensureIndexes();
  const registries = new RegistryService(repository, cipher);
  const app = buildApp({ logger, registries, bodyLimit: config.BODY_LIMIT_BYTES, trustProxy: config.TRUST_PROXY });
  return { app, repository, registries, cipher };
}
