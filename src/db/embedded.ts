/**
 * The embedded default database (SPEC section 3), used when MONGODB_URI is unset:
 *   1. a mongod that mongodb-memory-server can use (its cache, MONGOMS_SYSTEM_BINARY, or its download);
 *   2. FerretDB v1 with its SQLite backend, built once from tools/ferretdb with the machine's Go and cached.
 * Both are real servers speaking the MongoDB wire protocol on 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { Logger } from '../logger';
import { ferretdbBinaryPath } from './ferretdb-path';

export type Backend = 'mongod' | 'ferretdb';

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
  logger: Pick<Logger, 'info' | 'warn'>;
  /** How long to give mongodb-memory-server to find or download a mongod. */
  mongodTimeoutMs?: number;
  env?: Record<string, string | undefined>;
  /** FerretDB: TCP port on 127.0.0.1 (default 0, any free port); a fixed one lets a restart keep its URI. */
  port?: number;
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
        '  2. install a mongod binary and set MONGOMS_SYSTEM_BINARY=/path/to/mongod (mongodb-memory-server uses it);',
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

async function startMongod(opts: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const { MongoMemoryServer } = await import('mongodb-memory-server-core');
  const dbPath = path.join(opts.dataDir, 'mongod');
  mkdirSync(dbPath, { recursive: true });
  // mongodb-memory-server prints its own multi-line failure to the console; our log line says it instead.
  const { warn, error } = console;
  console.warn = console.error = () => undefined;
  let server;
  try {
    server = await withTimeout(
      MongoMemoryServer.create({ instance: { dbPath, storageEngine: 'wiredTiger', ip: '127.0.0.1' } }),
      opts.mongodTimeoutMs ?? 60_000,
      'finding or downloading mongod',
    );
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
  const dataDir = path.join(opts.dataDir, 'ferretdb');
  mkdirSync(dataDir, { recursive: true });
  // stdin stays open as a lifeline: FerretDB exits when this process goes away.
  const child = spawn(bin, ['-listen', `127.0.0.1:${opts.port ?? 0}`, '-data-dir', dataDir, '-log-level', 'warn'], { stdio: ['pipe', 'pipe', 'pipe'] });
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

/** Starts the embedded default database following SPEC section 3's order, logging which backend is used. */
export async function startEmbeddedDatabase(opts: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const reasons: string[] = [];
  if (opts.mode !== 'ferretdb') {
    try {
      const db = await startMongod(opts);
      opts.logger.info('database: embedded mongod (mongodb-memory-server)', { uri: db.uri, data_dir: db.dataDir });
      return db;
    } catch (e) {
      reasons.push(`mongod via mongodb-memory-server: ${(e as Error).message.split('\n')[0]}`);
      if (opts.mode === 'mongod') throw new NoDatabaseError(reasons);
      opts.logger.info('no mongod available; falling back to FerretDB', { reason: reasons[0] });
    }
  }
  try {
    const db = await startFerretdb(opts);
    opts.logger.info('database: embedded FerretDB v1 (SQLite backend)', { uri: db.uri, data_dir: db.dataDir });
    return db;
  } catch (e) {
    reasons.push(`FerretDB: ${(e as Error).message}`);
    throw new NoDatabaseError(reasons);
  }
}
