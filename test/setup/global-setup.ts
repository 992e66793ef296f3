/**
 * Jest global setup: one throw-away database server for the whole run (SPEC section 3 order, or the
 * server named by TEST_MONGODB_URI, or the engine named by TEST_ENGINE: sqlite or postgres, see
 * test/support/engines.ts). Each test file then uses a database of its own on it.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedDatabase } from '../../src/db/embedded';
import { startEngine, testEngine } from '../support/engines';

declare global {
  // eslint-disable-next-line no-var
  var __REGISTRY_DB_TEST_SERVER__: { stop(): Promise<void>; dir: string } | undefined;
}

export default async function globalSetup(): Promise<void> {
  // Probes in tests never leave loopback (SPEC section 10).
  process.env.PROBE_ALLOWED_NETWORKS = '127.0.0.0/8,::1/128';
  // Tests send nothing off loopback: mongodb-memory-server may use a cached or system mongod, never download one.
  process.env.MONGOMS_RUNTIME_DOWNLOAD = 'false';
  if (process.env.TEST_MONGODB_URI) return;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'registry-db-test-'));
  if (process.env.TEST_ENGINE) {
    const engine = await startEngine(testEngine(), dir);
    process.stderr.write(`[test db] engine ${engine.name}: FerretDB at ${engine.uri}\n`);
    globalThis.__REGISTRY_DB_TEST_SERVER__ = { stop: () => engine.stop(), dir };
    process.env.TEST_MONGODB_URI = engine.uri;
    process.env.TEST_DB_BACKEND = 'ferretdb';
    return;
  }
  const logger = { info: (m: string, meta?: object) => process.stderr.write(`[test db] ${m} ${meta ? JSON.stringify(meta) : ''}\n`), warn: (m: string) => process.stderr.write(`[test db] ${m}\n`) };
  const mode = (process.env.EMBEDDED_DB as 'auto' | 'mongod' | 'ferretdb' | undefined) ?? 'auto';
  const server = await startEmbeddedDatabase({ dataDir: dir, mode, logger: logger as never, mongodTimeoutMs: 30_000 });
  globalThis.__REGISTRY_DB_TEST_SERVER__ = { stop: () => server.stop(), dir };
  process.env.TEST_MONGODB_URI = server.uri;
  process.env.TEST_DB_BACKEND = server.backend;
}
