/**
 * Opens the database the service runs on: MONGODB_URI when set, else the embedded default.
 */
import { MongoClient, type Db } from 'mongodb';
import type { Config } from '../config';
import type { Logger } from '../logger';
import { startEmbeddedDatabase, type EmbeddedDatabase } from './embedded';
import { ReconnectWatchdog } from './reconnect';

export interface Database {
  client: MongoClient;
  db: Db;
  backend: 'external' | 'mongod' | 'ferretdb';
  close(): Promise<void>;
}

export function mongoClient(uri: string): MongoClient {
  return new MongoClient(uri, {
    appName: 'registry-db',
    serverSelectionTimeoutMS: 3000,
    connectTimeoutMS: 3000,
    maxPoolSize: 50,
  });
}

export async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  let embedded: EmbeddedDatabase | undefined;
  let uri = config.MONGODB_URI;
  if (uri) {
    logger.info('database: MONGODB_URI', { host: new URL(uri.replace(/^mongodb(\+srv)?:/, 'http:')).host });
  } else {
    embedded = await startEmbeddedDatabase({ dataDir: config.DATA_DIR, mode: config.EMBEDDED_DB, allowDownload: config.EMBEDDED_DB_DOWNLOAD, logger });
    uri = embedded.uri;
  }
  const client = mongoClient(uri);
  try {
    await client.connect();
  } catch (e) {
    await embedded?.stop();
    throw e;
  }
  const watchdog = new ReconnectWatchdog(client, uri, logger);
  watchdog.start();
  return {
    client,
    db: client.db(config.MONGODB_DB),
    backend: embedded ? embedded.backend : 'external',
    close: async () => {
      watchdog.stop();
      await client.close();
      await embedded?.stop();
    },
  };
}
