/**
 * Starts the real service (production wiring from src/compose.ts) on 127.0.0.1:0 against a database of
 * its own on the run's test server, and drives it over real HTTP.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { MongoClient, type Db } from 'mongodb';
import { loadConfig, type Config } from '../../src/config';
import { compose } from '../../src/compose';
import { createHttpServer, listen } from '../../src/http/server';
import { createLogger } from '../../src/logger';

export interface TestService {
  url: string;
  config: Config;
  db: Db;
  client: MongoClient;
  /** Every log line the service wrote so far. */
  logs(): string;
  parts: Awaited<ReturnType<typeof compose>>;
  /** keepDatabase: stop this instance only (a restart, or one replica of several, going away). */
  close(opts?: { keepDatabase?: boolean }): Promise<void>;
}

export function testDbName(): string {
  return `rdb_test_${randomBytes(6).toString('hex')}`;
}

/** One credentials key for the whole run (MONGODB_URI makes CREDENTIALS_KEY required). */
export const TEST_CREDENTIALS_KEY = (process.env.TEST_CREDENTIALS_KEY ??= randomBytes(32).toString('base64'));

/** Environment every test service starts from: loopback-only probes, no scheduler, rate-limit budgets out of the way (the limiter still runs; test/security sets real budgets). */
export function testEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    CREDENTIALS_KEY: TEST_CREDENTIALS_KEY,
    PROBE_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128',
    HEALTH_CRON: 'off',
    STORAGE_CRON: 'off',
    LOG_LEVEL: 'info',
    RATE_LIMIT_MAX: '1000000',
    PROBE_RATE_LIMIT_MAX: '1000000',
    PULL_CREDENTIALS_RATE_LIMIT_MAX: '1000000',
    AUTH_FAILURE_LIMIT: '1000000',
    ...overrides,
  };
}

/**
 * opts.dbName: several instances on one database (replicas); opts.host: listen address (default 127.0.0.1; `url`
 * is always loopback); opts.uri: another database server than the run's; opts.monitorCommands: the driver's
 * command monitoring events on `client` (a test that acts at the moment a command is sent).
 */
export async function startTestService(env: Record<string, string> = {}, opts: { dbName?: string; host?: string; uri?: string; monitorCommands?: boolean } = {}): Promise<TestService> {
  const uri = opts.uri ?? process.env.TEST_MONGODB_URI;
  if (!uri) throw new Error('TEST_MONGODB_URI is not set: run the tests through jest (global setup starts the database)');
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'registry-db-svc-'));
  const dbName = opts.dbName ?? testDbName();
  const config = loadConfig({ ...testEnv(env), MONGODB_URI: uri, MONGODB_DB: dbName, DATA_DIR: dataDir });
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000, monitorCommands: opts.monitorCommands ?? false });
  await client.connect();
  const db = client.db(dbName);
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
  const logger = createLogger(config.LOG_LEVEL, stream);
  const parts = await compose(config, db, logger);
  // The view (and the resolver's index it feeds) loads in the background; tests start from a loaded one.
  await parts.feed.waitFor(0, 30_000);
  const server: Server = await listen(createHttpServer(parts.app, config), 0, opts.host ?? '127.0.0.1');
  const { port } = server.address() as AddressInfo;
  parts.protectPort(port);
  return {
    url: `http://127.0.0.1:${port}`,
    config,
    db,
    client,
    logs: () => chunks.join(''),
    parts,
    close: async ({ keepDatabase = false } = {}) => {
      parts.lifecycle.beginStop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      // Every part is waited for (the process's stop bounds each wait; a test must not leave one running).
      await parts.lifecycle.stop(logger, 60_000, 60_000);
      if (!keepDatabase) await db.dropDatabase().catch(() => undefined);
      await client.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** `count` instances of the service on one database of their own (replicas), each with `env`. */
export async function startReplicas(count: number, env: Record<string, string> = {}): Promise<TestService[]> {
  const dbName = testDbName();
  const out: TestService[] = [];
  for (let i = 0; i < count; i++) out.push(await startTestService(env, { dbName }));
  return out;
}

/**
 * Runs `use` with replicas on one database of their own, one per env (each on top of testEnv), and closes them
 * after, the last started first (the first one drops the database).
 */
export async function withReplicas<E extends Record<string, string>[], T>(envs: [...E], use: (replicas: { [K in keyof E]: TestService }) => Promise<T>): Promise<T> {
  const dbName = testDbName();
  const replicas: TestService[] = [];
  try {
    for (const env of envs) replicas.push(await startTestService(env, { dbName }));
    return await use(replicas as { [K in keyof E]: TestService });
  } finally {
    for (let i = replicas.length - 1; i >= 0; i--) await replicas[i]!.close({ keepDatabase: i > 0 });
  }
}

/** JSON request helper over real HTTP. */
export async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: any; text: string }> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['Content-Type'] ??= 'application/json';
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

/** `r` is an RFC 9457 problem with `status`, and (when given) one of its errors names `path` (or a path `path` matches). */
export function expectProblem(r: { status: number; headers: Headers; body: any }, status: number, path?: string | RegExp): void {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toContain('application/problem+json');
  expect(r.body).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  if (path !== undefined) {
    const paths = (r.body.errors ?? []).map((e: { path: string }) => e.path);
    if (typeof path === 'string') expect(paths).toContain(path);
    else expect(paths.some((p: string) => path.test(p))).toBe(true);
  }
}
