/**
 * The database engines a robustness run can use: the tests' own (test/support/engines.ts), so a run and the
 * test suites start a database the same way. `startDatabase(engine, dir, port)` answers a server on
 * 127.0.0.1:`port` with its data in `dir`, which can be stopped and started again on the same data and port
 * (the database-restart fault).
 *
 * - sqlite: FerretDB v1 with its embedded SQLite backend (the embedded default, SPEC 3).
 * - postgres: FerretDB v1 on a throw-away PostgreSQL 15 (SPEC 20; Debian's postgresql-15, installed by
 *   `scripts/install-test-deps.sh postgres`): writers truly concurrent.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ENGINES as TEST_ENGINES, startEngine, type EngineName, type RunningEngine } from '../test/support/engines';
import { PG_BIN } from '../test/support/postgres';

export type Engine = EngineName;
export const ENGINES: readonly Engine[] = TEST_ENGINES;

export class EngineUnavailable extends Error {}

export interface Database {
  engine: Engine;
  uri: string;
  port: number;
  running(): boolean;
  stop(): Promise<void>;
  /** Starts it again on the same data and port. */
  start(): Promise<void>;
}

/** Why `engine` cannot be started here (undefined: it can), without starting it. */
export function engineMissing(engine: Engine): string | undefined {
  if (engine === 'postgres' && !existsSync(path.join(PG_BIN, 'postgres'))) {
    return `engine not available: PostgreSQL 15 is not installed (${PG_BIN}); run bash scripts/install-test-deps.sh postgres, or use --engine sqlite`;
  }
  return undefined;
}

export async function startDatabase(engine: Engine, dir: string, port: number): Promise<Database> {
  const server: RunningEngine = await startEngine(engine, dir, port);
  let up = true;
  return {
    engine,
    uri: server.uri,
    port,
    running: () => up,
    stop: async () => {
      if (!up) return;
      up = false;
      await server.stop();
    },
    start: async () => {
      if (up) return;
      await server.start();
      up = true;
    },
  };
}
