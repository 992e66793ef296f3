/**
 * Runs the built database commands (`node dist/src/bin/db.js`, i.e. `npm run db`, `db:export`, `db:import`;
 * `npm test` builds dist/ first) as processes, and measures their peak resident memory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BSON, type Db } from 'mongodb';
import { ownedCollections } from '../../src/db/dump';
import { testEnv } from './service';

export const ROOT = path.join(__dirname, '..', '..');
export const DB_CLI = path.join(ROOT, 'dist', 'src', 'bin', 'db.js');
export const MAIN = path.join(ROOT, 'dist', 'src', 'main.js');

/** This process's environment without any database choice of its own, plus the test defaults and `overrides`. */
export function cliEnv(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['MONGODB_URI', 'MONGODB_DB', 'EMBEDDED_DB', 'EMBEDDED_DB_DOWNLOAD', 'MONGOMS_SYSTEM_BINARY', 'MONGOMS_RUNTIME_DOWNLOAD', 'CREDENTIALS_KEY', 'DATA_DIR']) delete env[k];
  return { ...env, ...testEnv(), ...overrides };
}

/** Peak resident set (VmHWM) of a live process in KiB, 0 once it is gone. */
function peakRssKb(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Highest VmHWM seen while it ran (sampled every 10 ms). */
  peakRssKb: number;
}

interface Collected {
  done: Promise<Run>;
  stdout(): string;
  stderr(): string;
}

function watch(child: ChildProcess, timeoutMs: number, what: string): Collected {
  let stdout = '';
  let stderr = '';
  let peak = 0;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const sampler = setInterval(() => (peak = Math.max(peak, peakRssKb(child.pid!))), 10);
  const done = new Promise<Run>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not finish within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearInterval(sampler);
      clearTimeout(timer);
      // let the pipes drain
      setImmediate(() => resolve({ code, stdout, stderr, peakRssKb: peak }));
    });
  });
  return { done, stdout: () => stdout, stderr: () => stderr };
}

/** `node [nodeFlags] dist/src/bin/db.js ARGS` to its end. */
export function runDbCli(args: string[], env: NodeJS.ProcessEnv, opts: { timeoutMs?: number; nodeFlags?: string[] } = {}): Promise<Run> {
  const child = spawn(process.execPath, [...(opts.nodeFlags ?? []), DB_CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  return watch(child, opts.timeoutMs ?? 120_000, `db ${args.join(' ')}`).done;
}

/** `node dist/src/main.js` (what `npm start` runs) until it exits or prints `listening`, then stopped. */
export async function runMainUntilListening(env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Run & { listened: boolean }> {
  const child = spawn(process.execPath, [MAIN], { env: { HOST: '127.0.0.1', PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let listened = false;
  child.stdout!.on('data', (d: Buffer) => {
    if (!listened && d.toString('utf8').includes('"message":"listening"')) {
      listened = true;
      child.kill('SIGTERM');
    }
  });
  return { ...(await watch(child, timeoutMs, 'main').done), listened };
}

/** `npm run db`: the embedded database alone, until `stop()`. */
export async function serveDb(env: NodeJS.ProcessEnv): Promise<{ uri: string; stderr: () => string; stop: () => Promise<Run> }> {
  const child = spawn(process.execPath, [DB_CLI], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const run = watch(child, 120_000, 'db');
  const uri = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', () => {
      const m = /^MONGODB_URI=(\S+)$/m.exec(run.stdout());
      if (m) resolve(m[1]!);
    });
    void run.done.then((r) => reject(new Error(`npm run db exited (${r.code}) before printing MONGODB_URI:\n${r.stderr}`)), reject);
  });
  return {
    uri,
    stderr: run.stderr,
    stop: () => {
      child.kill('SIGTERM');
      return run.done;
    },
  };
}

export type Contents = Record<string, { docs: string[]; count: number; indexes: string[] }>;

/**
 * Every document of every collection as canonical Extended JSON (types kept), sorted; and the indexes. A
 * collection with no document and no index but `_id`'s is the same as none (an import creates the catalog's
 * collections the file lacks empty, to replace them all together) and is left out.
 */
export async function contents(db: Db, opts: { withoutEpoch?: boolean } = {}): Promise<Contents> {
  const out: Contents = {};
  for (const name of await ownedCollections(db)) {
    const c = db.collection(name);
    // An import renews the change log's epoch (the one document it changes): compared apart when asked.
    const filter = opts.withoutEpoch && name.endsWith('_meta') ? { _id: { $ne: 'epoch' as never } } : {};
    const docs = (await c.find(filter, { promoteValues: false, promoteLongs: false, bsonRegExp: true }).toArray()).map((d) => BSON.EJSON.stringify(d, { relaxed: false })).sort();
    const indexes = (await c.listIndexes().toArray()).map((i) => JSON.stringify({ name: i.name, key: i.key, unique: i.unique ?? false })).sort();
    const count = await c.countDocuments(filter);
    if (count === 0 && indexes.every((i) => JSON.parse(i).name === '_id_')) continue;
    out[name] = { docs, count, indexes };
  }
  return out;
}
