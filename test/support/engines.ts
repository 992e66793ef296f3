/**
 * The database engines the tests run the service on, by name (SPEC section 20): `sqlite`, FerretDB v1 on
 * SQLite (the embedded default, one writer at a time), and `postgres`, FerretDB v1 on PostgreSQL 15 (writers
 * truly concurrent; test/support/postgres.ts). Both are the real tools/ferretdb program on a loopback port.
 * `TEST_ENGINE` names the engine of a test run (`npm run test:postgres` sets it; unset: sqlite).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startFerretdb, type EmbeddedDatabase } from '../../src/db/embedded';
import { startPostgres, type PostgresServer } from './postgres';
import { freePort } from './registries';

export type EngineName = 'sqlite' | 'postgres';
export const ENGINES: readonly EngineName[] = ['sqlite', 'postgres'];

export interface RunningEngine {
  readonly name: EngineName;
  /** The MongoDB URI; the same after a restart. */
  readonly uri: string;
  readonly dataDir: string;
  /** FerretDB's port on 127.0.0.1. */
  readonly port: number;
  /** Stops FerretDB, then PostgreSQL; the data stays. */
  stop(): Promise<void>;
  /** Starts it again after stop(), on the same data and port. */
  start(): Promise<void>;
  /** SIGKILL to FerretDB (what it was doing is cut off, as in a crash), then stop(); start() brings it back. */
  crash(): Promise<void>;
  /** SIGSTOP to FerretDB: connections stay open, nothing answers (a frozen database) until thaw(). */
  freeze(): void;
  /** SIGCONT to FerretDB. */
  thaw(): void;
}

/** The engine of this test run: TEST_ENGINE (sqlite or postgres), sqlite when unset. */
export function testEngine(env: Record<string, string | undefined> = process.env): EngineName {
  const name = env.TEST_ENGINE ?? 'sqlite';
  if (!(ENGINES as readonly string[]).includes(name)) throw new Error(`TEST_ENGINE=${name}: sqlite or postgres`);
  return name as EngineName;
}

const quiet = { info: () => undefined, warn: (m: string) => void process.stderr.write(`[ferretdb] ${m}\n`) } as unknown as Parameters<typeof startFerretdb>[0]['logger'];

/** The FerretDB process listening on 127.0.0.1:`port` (tools/ferretdb's program, started by startFerretdb). */
function ferretdbPid(port: number): number {
  const found = execFileSync('pgrep', ['-f', ` -listen 127\\.0\\.0\\.1:${port} `], { encoding: 'utf8' }).trim().split('\n');
  if (found.length !== 1) throw new Error(`expected one FerretDB on port ${port}, found ${found.length}`);
  return Number(found[0]);
}

/**
 * Starts `engine` with its data in `dataDir` and FerretDB on 127.0.0.1:`port` (a free one when omitted).
 * Calling it again with the same three, or start() after stop(), gives the same server back.
 */
export async function startEngine(engine: EngineName, dataDir: string, port?: number): Promise<RunningEngine> {
  const fixedPort = port ?? (await freePort());
  let pg: PostgresServer | undefined;
  let ferretdb: EmbeddedDatabase | undefined;
  const up = async () => {
    if (engine === 'postgres') pg = await startPostgres(path.join(dataDir, 'postgresql'));
    try {
      ferretdb = await startFerretdb({ dataDir, mode: 'ferretdb', logger: quiet, port: fixedPort, ...(pg ? { postgresqlUrl: pg.url } : {}) });
    } catch (e) {
      await pg?.stop();
      throw e;
    }
  };
  await up();
  return {
    name: engine,
    uri: ferretdb!.uri,
    dataDir,
    port: fixedPort,
    stop: async () => {
      await ferretdb?.stop();
      await pg?.stop();
      ferretdb = pg = undefined;
    },
    start: async () => {
      if (ferretdb) throw new Error('the engine is running: stop() it first');
      await up();
    },
    crash: async () => {
      process.kill(ferretdbPid(fixedPort), 'SIGKILL');
      await ferretdb?.stop();
      await pg?.stop();
      ferretdb = pg = undefined;
    },
    freeze: () => process.kill(ferretdbPid(fixedPort), 'SIGSTOP'),
    thaw: () => process.kill(ferretdbPid(fixedPort), 'SIGCONT'),
  };
}
