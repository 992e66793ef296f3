/**
 * A throw-away PostgreSQL server for the tests (SPEC section 20: FerretDB's postgresql handler), from Debian's
 * postgresql-15 (scripts/install-test-deps.sh postgres), never the system's cluster or service: initdb into a
 * directory of the test's own, run as an unprivileged user (`postgres` through runuser when the tests run as
 * root), listening on a unix socket in that directory and on one loopback TCP port, trust authentication (no
 * other address can reach it). Starting it again on the same directory gives the same server back (same data,
 * same port). A lifeline keeps it from outliving the test process: the server stops when its stdin closes.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './registries';

/** Where Debian keeps PostgreSQL 15's server programs (PG_BIN overrides). */
export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
/** The database FerretDB keeps its data in. */
const DATABASE = 'ferretdb';
/** Our settings, included from postgresql.conf; the port is read back from here on a restart. */
const SETTINGS = 'registry-db-test.conf';

export interface PostgresServer {
  /** A connection URL for FerretDB: loopback TCP, superuser `postgres`, the `ferretdb` database. */
  url: string;
  dir: string;
  port: number;
  /** Fast shutdown (active connections are cut, the data is kept). */
  stop(): Promise<void>;
}

const run = promisify(execFile);

/** As root, PostgreSQL's programs run as this user (they refuse to run as root). */
const asRoot = process.getuid?.() === 0;
const PG_USER = process.env.PG_TEST_USER ?? 'postgres';

/** The command line that runs `command` as the server's user. */
function asServerUser(command: string, args: string[]): [string, string[]] {
  return asRoot ? ['runuser', ['-u', PG_USER, '--', command, ...args]] : [command, args];
}

async function pg(program: string, args: string[]): Promise<string> {
  const [cmd, argv] = asServerUser(path.join(PG_BIN, program), args);
  try {
    return (await run(cmd, argv, { env: { PATH: process.env.PATH, LANG: 'C' } })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${program} failed: ${(err.stderr || err.message).trim().slice(-2000)}`);
  }
}

/** Gives the directory to the server's user, and lets it reach the directory through its parents (search permission, not listing). */
async function ownDirectory(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!asRoot) return;
  const ids = await run('id', ['-u', PG_USER]).then(
    async (u) => [Number(u.stdout), Number((await run('id', ['-g', PG_USER])).stdout)] as const,
    () => {
      throw new Error(`no user ${PG_USER} to run PostgreSQL as (the tests run as root): install postgresql-15 (bash scripts/install-test-deps.sh postgres), or set PG_TEST_USER`);
    },
  );
  chownSync(dir, ids[0], ids[1]);
  for (let up = path.dirname(dir); up !== path.dirname(up); up = path.dirname(up)) {
    const { mode, uid } = statSync(up);
    if (uid === 0 && (mode & 0o001) === 0) chmodSync(up, (mode & 0o7777) | 0o001);
  }
}

/** initdb with our settings, then the `ferretdb` database: a new cluster in `dir`. */
async function createCluster(dir: string): Promise<void> {
  if (!existsSync(path.join(PG_BIN, 'initdb'))) {
    throw new Error(`no PostgreSQL 15 in ${PG_BIN}: bash scripts/install-test-deps.sh postgres installs Debian's postgresql-15`);
  }
  await ownDirectory(dir);
  // C locale and UTF8: what FerretDB accepts. No fsync: a throw-away cluster (a killed process loses nothing; a machine crash would).
  await pg('initdb', ['-D', dir, '--auth=trust', '--username=postgres', '--encoding=UTF8', '--no-locale', '--no-sync', '--no-instructions']);
  const port = await freePort();
  const settings = [
    `port = ${port}`,
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = '${dir}'`,
    'fsync = off',
    'synchronous_commit = off',
    'full_page_writes = off',
    'max_connections = 200',
    'logging_collector = off',
    "log_min_messages = 'warning'",
  ];
  writeFileSync(path.join(dir, SETTINGS), settings.join('\n') + '\n');
  writeFileSync(path.join(dir, 'postgresql.conf'), readFileSync(path.join(dir, 'postgresql.conf'), 'utf8') + `\ninclude = '${SETTINGS}'\n`);
}

function portOf(dir: string): number {
  const m = /^port = (\d+)$/m.exec(readFileSync(path.join(dir, SETTINGS), 'utf8'));
  if (!m) throw new Error(`no port in ${path.join(dir, SETTINGS)}`);
  return Number(m[1]);
}

/**
 * Runs the server in the foreground under a shell that stops it (fast shutdown) when its stdin closes: when
 * stop() closes it, or when this process dies in any way.
 */
function spawnServer(dir: string): ChildProcess {
  const lifeline = `"$0" -D "$1" & pid=$!; cat >/dev/null; kill -INT "$pid"; wait "$pid"`;
  const [cmd, argv] = asServerUser('/bin/sh', ['-c', lifeline, path.join(PG_BIN, 'postgres'), dir]);
  return spawn(cmd, argv, { stdio: ['pipe', 'ignore', 'pipe'], env: { PATH: process.env.PATH, LANG: 'C' } });
}

/** The last resort when a fast shutdown hangs: the postmaster's pid is the first line of postmaster.pid. */
function killPostmaster(dir: string): void {
  try {
    process.kill(Number(readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]), 'SIGQUIT');
  } catch {
    // gone already
  }
}

async function waitReady(dir: string, port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`PostgreSQL exited (${child.exitCode ?? child.signalCode}): ${stderr().slice(-2000)}`);
    const ready = await pg('pg_isready', ['-q', '-h', dir, '-p', String(port), '-d', 'postgres']).then(
      () => true,
      () => false,
    );
    if (ready) return;
    if (Date.now() > until) throw new Error(`PostgreSQL did not accept connections within 60 s: ${stderr().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** PostgreSQL on `dir`: a new cluster when the directory holds none, else the one there (same data and port). */
export async function startPostgres(dir: string): Promise<PostgresServer> {
  const fresh = !existsSync(path.join(dir, 'PG_VERSION'));
  if (fresh) await createCluster(dir);
  const port = portOf(dir);
  const child = spawnServer(dir);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitReady(dir, port, child, () => err);
    if (fresh) await pg('createdb', ['-h', dir, '-p', String(port), '-U', 'postgres', DATABASE]);
  } catch (e) {
    child.stdin!.end();
    await exited;
    throw e;
  }
  // The lifeline must not keep this process alive; stop() ends it.
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/${DATABASE}`,
    dir,
    port,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin!.end();
      const hung = setTimeout(() => killPostmaster(dir), 30_000);
      await exited;
      clearTimeout(hung);
    },
  };
}
