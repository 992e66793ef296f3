/**
 * The catalog alone: credential cipher, repository (indexes ensured) and service. `compose` builds the whole
 * service on it; the seed script needs only this, and skips loading the HTTP, probe and scheduler modules
 * (about half a second of its start-up, measured with --cpu-prof).
 */
import type { Db } from 'mongodb';
import type { Config } from '../config';
import { finishInterruptedImport } from '../db/swap';
import type { Logger } from '../logger';
import { CredentialCipher, loadOrCreateKey } from './credentials';
import { RegistryRepository } from './repository';
import { RegistryService } from './service';

export async function createCatalog(config: Config, db: Db, logger: Logger) {
  // With MONGODB_URI, config.ts has made CREDENTIALS_KEY required: replicas share one key.
  const { key, source } = loadOrCreateKey(config.CREDENTIALS_KEY, config.DATA_DIR);
  logger.debug('credentials key', { source });
  const cipher = new CredentialCipher(key);
  // A db:import killed while it swapped its new collections in is finished before anything reads them.
  const finished = await finishInterruptedImport(db);
  if (finished) logger.warn('an interrupted db:import was finished: its new collections are in use now', { collections: finished });
  const repository = new RegistryRepository(db, config.QUERY_TIMEOUT_MS, undefined, {
    holeFillMs: config.FEED_HOLE_FILL_MS,
    compactAfterMs: config.FEED_COMPACT_AFTER_S * 1000,
  });
  await repository.ensureIndexes();
  await repository.writer.log.init();
  const registries = new RegistryService(repository, cipher);
  return { cipher, repository, registries };
}
