import { rmSync } from 'node:fs';
import path from 'node:path';

export default async function globalTeardown(): Promise<void> {
  const server = globalThis.__REGISTRY_DB_TEST_SERVER__;
  if (!server) return;
  await server.stop();
  rmSync(path.dirname(server.dataDir), { recursive: true, force: true });
}
