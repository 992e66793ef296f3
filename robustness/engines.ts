/**
 * The database engines a robustness run can use, behind one function: `startDatabase(engine, dir, port)`
 * answers a server on 127.0.0.1:`port` with its data in `dir`, which can be stopped and started again on the
 * same data and port (the database-restart fault).
 *
 * - sqlite: FerretDB v1 with its embedded SQLite backend (the embedded default, SPEC 3).
 * - postgres: FerretDB v1 on PostgreSQL (issue 20, item 2) is not in this build yet: asking for it is an
 *   EngineUnavailable with a message that says so. Once it lands, its start goes in the switch below.
 */
import { startFerretdb, type EmbeddedDatabase } from '../src/db/embedded';

export type Engine = 'sqlite' | 'postgres';
export const ENGINES: readonly Engine[] = ['sqlite', 'postgres'];

export interface Database {
  engine: Engine;
  uri: string;
  port: number;
  running(): boolean;
  stop(): Promise<void>;
  /** Starts it again on the same data and port. */
  start(): Promise<void>;
}

export class EngineUnavailable extends Error {}

const quiet = { info: () => undefined, warn: (m: string) => void process.stderr.write(`[ferretdb] ${m}\n`) } as unknown as Parameters<typeof startFerretdb>[0]['logger'];

async function startServer(engine: Engine, dir: string, port: number): Promise<EmbeddedDatabase> {
  switch (engine) {
    case 'sqlite':
      return startFerretdb({ dataDir: dir, mode: 'ferretdb', logger: quiet, port });
    case 'postgres':
      throw new EngineUnavailable('engine not available: FerretDB on PostgreSQL (issue 20, item 2) is not in this build yet; run with --engine sqlite');
  }
}

/** Whether `engine` can be started here (without starting it). */
export function engineAvailable(engine: Engine): boolean {
  return engine === 'sqlite';
}

export async function startDatabase(engine: Engine, dir: string, port: number): Promise<Database> {
  let server: EmbeddedDatabase | undefined = await startServer(engine, dir, port);
  const db: Database = {
    engine,
    uri: server.uri,
    port,
    running: () => server !== undefined,
    stop: async () => {
      const s = server;
      server = undefined;
      await s?.stop();
    },
    start: async () => {
      if (!server) server = await startServer(engine, dir, port);
    },
  };
  return db;
}
