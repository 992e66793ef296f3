/**
 * The embedded default database (SPEC section 3), used when MONGODB_URI is unset:
 *   1. a mongod already on this machine (mongodb-memory-server's cache or MONGOMS_SYSTEM_BINARY); downloaded
 *      only when the operator asks (EMBEDDED_DB=mongod with EMBEDDED_DB_DOWNLOAD=true), never otherwise;
 *   2. FerretDB v1 with its SQLite backend, built once from tools/ferretdb with the machine's Go and cached.
 * Both are real servers speaking the MongoDB wire protocol on 127.0.0.1. The backend is pinned to its
 * DATA_DIR (src/db/pin.ts): once a DATA_DIR holds a catalog, only that backend starts on it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { Logger } from '../logger';
import { ferretdbBinaryPath } from './ferretdb-path';
import { backendDir, backendsWithData, howToMove, MARKER, PinnedBackendError, readPin, writePin, type Backend } from './pin';

export type { Backend } from './pin';

export interface EmbeddedDatabase {
  uri: string;
  backend: Backend;
  /** Where its data lives. */
  dataDir: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Parent directory for the data (a backend-specific subdirectory is used). */
  dataDir: string;
  mode: 'auto' | Backend;
  /** Only with mode 'mongod': let mongodb-memory-server download a mongod when none is on this machine. */
  allowDownload?: boolean;
  logger: Pick<Logger, 'info' | 'warn'>;
  /** How long to give mongod to start. */
  mongodTimeoutMs?: number;
  env?: Record<string, string | undefined>;
  /** FerretDB: TCP port on 127.0.0.1 (default 0, any free port); a fixed one lets a restart keep its URI. */
  port?: number;
  /**
   * FerretDB only: keep the data in this PostgreSQL database (FerretDB's postgresql handler) rather than in
   * SQLite files under dataDir. Passed in the environment, so that a password stays out of the process list.
   */
  postgresqlUrl?: string;
}

const ROOT = path.resolve(__dirname, '..', '..', ...(path.basename(path.resolve(__dirname, '..', '..')) === 'dist' ? ['..'] : []));

export class NoDatabaseError extends Error {
  constructor(reasons: string[]) {
    super(
      [
        'No database is available. Tried:',
        ...reasons.map((r) => `  - ${r}`),
        'Fix it in one of three ways:',
        '  1. set MONGODB_URI to a MongoDB 5+ server (e.g. MONGODB_URI=mongodb://127.0.0.1:27017/registry_db);',
        '  2. install a mongod binary and set MONGOMS_SYSTEM_BINARY=/path/to/mongod (or let EMBEDDED_DB=mongod EMBEDDED_DB_DOWNLOAD=true download one);',
        '  3. install Go 1.24+ so that FerretDB can be built (npm run db:build), or set FERRETDB_BIN to a built binary.',
      ].join('\n'),
    );
    this.name = 'NoDatabaseError';
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The mongod binary mongodb-memory-server would use, without downloading: MONGOMS_SYSTEM_BINARY, else its
 * cache. A download happens only when `allowDownload` (EMBEDDED_DB=mongod with EMBEDDED_DB_DOWNLOAD=true).
 */
async function findMongod(allowDownload: boolean): Promise<{ binary: string; how: string }> {
  const { DryMongoBinary, MongoBinary } = await import('mongodb-memory-server-core');
  const options = await DryMongoBinary.generateOptions({});
  const found = await DryMongoBinary.locateBinary(options);
  if (found) return { binary: found, how: options.systemBinary ? `MONGOMS_SYSTEM_BINARY=${found}` : `mongodb-memory-server's cache (${found})` };
  if (!allowDownload) {
    throw new Error(`no mongod on this machine (MONGOMS_SYSTEM_BINARY is unset and mongodb-memory-server's cache has no mongod ${options.version}); nothing is downloaded unless EMBEDDED_DB=mongod and EMBEDDED_DB_DOWNLOAD=true`);
  }
  return { binary: await MongoBinary.download({ ...options, checkMD5: false }), how: `mongod ${options.version} downloaded (EMBEDDED_DB_DOWNLOAD=true)` };
}

async function startMongod(opts: EmbeddedOptions, binary: string): Promise<EmbeddedDatabase> {
  const { MongoMemoryServer } = await import('mongodb-memory-server-core');
  const dbPath = backendDir(opts.dataDir, 'mongod');
  mkdirSync(dbPath, { recursive: true });
  // mongodb-memory-server prints its own multi-line failure to the console; our log line says it instead.
  const { warn, error } = console;
  console.warn = console.error = () => undefined;
  let server;
  try {
    server = await withTimeout(
      // Its own process group, like FerretDB below (mongodb-memory-server's watchdog stops it with this process).
      MongoMemoryServer.create({ binary: { systemBinary: binary }, instance: { dbPath, storageEngine: 'wiredTiger', ip: '127.0.0.1' }, spawn: { detached: true } }),
      opts.mongodTimeoutMs ?? 60_000,
      'starting mongod',
    );
  } catch (e) {
    // A mongod that never started leaves an empty directory, which must not count as data (src/db/pin.ts).
    try {
      rmdirSync(dbPath);
    } catch {
      // not empty: it wrote files
    }
    throw e;
  } finally {
    Object.assign(console, { warn, error });
  }
  return { uri: server.getUri(), backend: 'mongod', dataDir: dbPath, stop: async () => void (await server.stop({ doCleanup: false })) };
}

/** Builds the FerretDB binary if this version of tools/ferretdb has not been built on this machine yet. */
export async function ensureFerretdbBinary(logger: Pick<Logger, 'info'>, env = process.env): Promise<string> {
  const bin = ferretdbBinaryPath(env);
  if (existsSync(bin)) return bin;
  if (env.FERRETDB_BIN) throw new Error(`FERRETDB_BIN=${env.FERRETDB_BIN} does not exist`);
  logger.info('building FerretDB once with Go (about a minute on first use; cached afterwards)', { binary: bin });
  await new Promise<void>((resolve, reject) => {
    const child = spawn('bash', [path.join(ROOT, 'scripts', 'build-ferretdb.sh'), bin], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`scripts/build-ferretdb.sh exited with ${code}`))));
  });
  return bin;
}

function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startFerretdb(opts: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const bin = await ensureFerretdbBinary(opts.logger, opts.env ?? process.env);
  const dataDir = opts.postgresqlUrl ? opts.dataDir : path.join(opts.dataDir, 'ferretdb');
  const backend = opts.postgresqlUrl ? ['-handler', 'postgresql'] : ['-data-dir', dataDir];
  if (!opts.postgresqlUrl) mkdirSync(dataDir, { recursive: true });
  // stdin stays open as a lifeline: FerretDB exits when this process goes away. Its own process group:
  // Ctrl-C in a terminal signals the whole foreground group, and the database must outlive the service's
  // stop (its writers finish first); the service stops it last (src/lifecycle.ts).
  const child = spawn(bin, ['-listen', `127.0.0.1:${opts.port ?? 0}`, ...backend, '-log-level', 'warn'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    env: opts.postgresqlUrl ? { ...process.env, FERRETDB_POSTGRESQL_URL: opts.postgresqlUrl } : process.env,
  });
  const stderr: string[] = [];
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr.push(d);
    if (stderr.length > 50) stderr.shift();
  });
  const uri = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('FerretDB did not start within 30 s')), 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`FerretDB exited with ${code}: ${stderr.join('').trim().slice(-2000)}`));
    });
    readline.createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve((JSON.parse(line) as { uri: string }).uri);
      } catch {
        reject(new Error(`unexpected FerretDB output: ${line}`));
      }
    });
  });
  child.removeAllListeners('exit');
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  return { uri, backend: 'ferretdb', dataDir, stop: () => stopChild(child) };
}

const firstLine = (e: unknown): string => (e as Error).message.split('\n')[0]!;

async function startBackend(opts: EmbeddedOptions, backend: Backend, allowDownload: boolean): Promise<{ db: EmbeddedDatabase; how?: string }> {
  if (backend === 'ferretdb') return { db: await startFerretdb(opts) };
  const { binary, how } = await findMongod(allowDownload);
  return { db: await startMongod(opts, binary), how };
}

/** Which backend a start uses on this DATA_DIR, and why; throws PinnedBackendError when it must not start. */
function pinnedChoice(opts: EmbeddedOptions): { backend: Backend; why: string; recorded: boolean } | undefined {
  const pin = readPin(opts.dataDir);
  if (!pin) return undefined;
  if ('ambiguous' in pin) {
    const dirs = pin.ambiguous.map((b) => backendDir(opts.dataDir, b)).join(' and ');
    if (opts.mode === 'auto') {
      throw new PinnedBackendError(
        [
          `DATA_DIR ${opts.dataDir} holds data of both embedded backends (${dirs}) and no ${MARKER} says which one is the catalog`,
          '(an older version started on each). Nothing was started. Start once with EMBEDDED_DB=ferretdb or EMBEDDED_DB=mongod,',
          `whichever holds the catalog; that start records the choice in ${path.join(opts.dataDir, MARKER)} and leaves the other directory alone.`,
        ].join('\n'),
      );
    }
    return { backend: opts.mode, why: `EMBEDDED_DB=${opts.mode} chose it among data of both backends (${dirs})`, recorded: false };
  }
  const where = backendDir(opts.dataDir, pin.backend);
  if (opts.mode !== 'auto' && opts.mode !== pin.backend) {
    throw new PinnedBackendError(
      [
        `DATA_DIR ${opts.dataDir} belongs to ${pin.backend}: the catalog is in ${where}` +
          (pin.source === 'marker' ? ` (recorded in ${path.join(opts.dataDir, MARKER)}).` : ` (data of an older version).`),
        `EMBEDDED_DB=${opts.mode} asks for the other backend, which would serve an empty catalog beside that data, so nothing was started.`,
        `Unset EMBEDDED_DB (or set it to ${pin.backend}) to keep using the data, or move it.`,
        howToMove(opts.dataDir, pin.backend),
      ].join('\n'),
    );
  }
  const others = backendsWithData(opts.dataDir).filter((b) => b !== pin.backend);
  if (others.length > 0) opts.logger.warn(`DATA_DIR also holds ${others.map((b) => backendDir(opts.dataDir, b)).join(', ')}, which this start leaves alone`, { pinned: pin.backend });
  const recorded = pin.source === 'marker';
  return { backend: pin.backend, why: recorded ? `pinned by ${path.join(opts.dataDir, MARKER)}` : `existing data in ${where} (older version, no ${MARKER})`, recorded };
}

const DESCRIPTION: Record<Backend, string> = { mongod: 'embedded mongod (mongodb-memory-server)', ferretdb: 'embedded FerretDB v1 (SQLite backend)' };

/**
 * Starts the embedded default database on DATA_DIR: the backend that owns it (src/db/pin.ts), else SPEC
 * section 3's order; records the pin and logs which backend is used and why.
 */
export async function startEmbeddedDatabase(opts: EmbeddedOptions): Promise<EmbeddedDatabase> {
  mkdirSync(opts.dataDir, { recursive: true });
  const allowDownload = opts.mode === 'mongod' && opts.allowDownload === true;
  const pinned = pinnedChoice(opts);
  let started: { db: EmbeddedDatabase; how?: string };
  let why: string;
  let recorded = false;
  if (pinned) {
    try {
      started = await startBackend(opts, pinned.backend, allowDownload);
    } catch (e) {
      throw new PinnedBackendError(
        [
          `DATA_DIR ${opts.dataDir} belongs to ${pinned.backend} (${pinned.why}), but ${pinned.backend} did not start: ${firstLine(e)}`,
          'Nothing else was started, so as not to serve an empty catalog beside that data.',
          pinned.backend === 'mongod'
            ? 'Make that mongod available again (MONGOMS_SYSTEM_BINARY=/path/to/mongod, or EMBEDDED_DB=mongod EMBEDDED_DB_DOWNLOAD=true to download it once), or move the data.'
            : 'Make FerretDB available again (Go 1.24+ for npm run db:build, or FERRETDB_BIN=/path/to/ferretdb-embedded), or move the data.',
          howToMove(opts.dataDir, pinned.backend),
        ].join('\n'),
      );
    }
    ({ why, recorded } = pinned);
  } else {
    const reasons: string[] = [];
    const order: Backend[] = opts.mode === 'auto' ? ['mongod', 'ferretdb'] : [opts.mode];
    let result: { db: EmbeddedDatabase; how?: string } | undefined;
    for (const backend of order) {
      try {
        result = await startBackend(opts, backend, allowDownload);
        break;
      } catch (e) {
        reasons.push(`${backend === 'mongod' ? 'mongod via mongodb-memory-server' : 'FerretDB'}: ${firstLine(e)}`);
        if (backend === 'mongod' && opts.mode === 'auto') opts.logger.info('no mongod available; falling back to FerretDB', { reason: reasons[0] });
      }
    }
    if (!result) throw new NoDatabaseError(reasons);
    started = result;
    why = opts.mode === 'auto' ? `new DATA_DIR; ${reasons.length ? 'no usable mongod on this machine' : 'a mongod is on this machine'}` : `new DATA_DIR; EMBEDDED_DB=${opts.mode}`;
  }
  const { db, how } = started;
  if (!recorded) {
    writePin(opts.dataDir, db.backend);
    why += '; pinned now';
  }
  opts.logger.info(`database: ${DESCRIPTION[db.backend]}`, { uri: db.uri, data_dir: db.dataDir, why, ...(how ? { mongod: how } : {}) });
  return db;
}
