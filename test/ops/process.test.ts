/**
 * The built service as a process: compiled once into a private folder (so a concurrent `npm run build`
 * cannot change it under the test), started with `node <build>/src/main.js` against the run's database
 * server (TEST_MONGODB_URI).
 * - A slow request in flight when SIGTERM arrives still completes with 200, new connections are refused,
 *   and the process exits 0.
 * - An invalid variable (PORT=abc) stops it with a non-zero status and a message naming the variable.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { onJsonLines } from '../support/json-lines';
import { testDbName, testEnv } from '../support/service';

const ROOT = path.join(__dirname, '..', '..');
let build: string;
let dataDir: string;

beforeAll(async () => {
  // node_modules/.cache does not exist in a fresh clone.
  mkdirSync(path.join(ROOT, 'node_modules', '.cache'), { recursive: true });
  build = mkdtempSync(path.join(ROOT, 'node_modules', '.cache', 'registry-db-build-'));
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'registry-db-proc-'));
  // tsc's exit status also reports type errors in files this test does not run; the emitted entry point decides.
  await promisify(execFile)(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', build]).catch(() => undefined);
}, 120_000);
afterAll(() => {
  if (build) rmSync(build, { recursive: true, force: true });
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

function env(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  const uri = process.env.TEST_MONGODB_URI;
  if (!uri) throw new Error('TEST_MONGODB_URI is not set');
  return { PATH: process.env.PATH, ...testEnv(), MONGODB_URI: uri, MONGODB_DB: testDbName(), DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: '0', ...overrides };
}

/** Fails with `what` instead of hanging when `promise` does not settle within `ms` (a bound for failing, not a measurement). */
function within<T>(promise: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Collects a child's stdout lines and resolves `waitFor` once a JSON line matches. */
function watch(child: ChildProcess) {
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  onJsonLines(child.stdout!, (line) => {
    lines.push(line);
    for (const w of waiters.splice(0)) (w.match(line) ? w.resolve(line) : waiters.push(w));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    lines,
    exited,
    waitFor: (match: (l: Record<string, unknown>) => boolean, what = 'the awaited log line') =>
      within(
        new Promise<Record<string, unknown>>((resolve, reject) => {
          const found = lines.find(match);
          if (found) return resolve(found);
          waiters.push({ match, resolve });
          void exited.then((code) => reject(new Error(`the service exited (${code}) first; log:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`)));
        }),
        `${what} (log so far: ${lines.length} lines)`,
      ),
  };
}

test('When SIGTERM arrives while a slow request is in flight, then that request completes with 200, new connections are refused and the process exits 0', async () => {
  const child = spawn(process.execPath, [path.join(build, 'src', 'main.js')], { env: env(), stdio: ['ignore', 'pipe', 'inherit'] });
  const svc = watch(child);
  const listening = await svc.waitFor((l) => l.message === 'listening', 'the "listening" line');
  const port = Number(String(listening.address).split(':').pop());
  // No API_KEYS: the startup warning says protected mode is on.
  const warning = await svc.waitFor((l) => l.level === 'warn' && /^protected mode/.test(String(l.message)), 'the protected-mode warning');
  expect(warning).toMatchObject({ level: 'warn', message: expect.stringMatching(/^protected mode: API_KEYS is unset, so only loopback clients/) });

  // The request's headers go out with `Expect: 100-continue`: the "100 Continue" answer proves the service
  // is handling it; the body (and so the end of the request) is sent only after the stop began.
  const body = JSON.stringify({ container_registry_tags: { $in: ['ai'] } });
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/container_registries', agent: false, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Expect: '100-continue' } });
  const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
  });
  await within(new Promise<void>((resolve) => req.once('continue', () => resolve())), '"100 Continue" for the slow request');

  child.kill('SIGTERM');
  await svc.waitFor((l) => l.message === 'stopping', 'the "stopping" line');
  const refused = await within(
    new Promise<string>((resolve) => {
      http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, () => resolve('served')).on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    }),
    'a new connection during the stop',
  );
  expect(refused).toBe('ECONNREFUSED');

  req.end(body);
  expect(await within(response, 'the answer to the slow request')).toEqual({ status: 200, text: '[]' });
  expect(await within(svc.exited, 'the exit of the process')).toBe(0);
  const messages = svc.lines.map((l) => `${String(l.message)}${l.part ? `:${String(l.part)}` : ''}`);
  expect(messages).toEqual(expect.arrayContaining(['stopping', 'stopped:http', 'stopped:rate limits', 'stopped:database']));
  expect(messages.indexOf('stopped:http')).toBeLessThan(messages.indexOf('stopped:database'));
});

test('When PORT=abc, then the process exits non-zero with a message naming PORT', async () => {
  const result = await promisify(execFile)(process.execPath, [path.join(build, 'src', 'main.js')], { env: env({ PORT: 'abc' }), timeout: 20_000 }).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(/\bPORT\b/);
  expect(result.stderr).toMatch(/abc/);
});

test('When API_KEYS names an unknown role, then the process exits non-zero naming API_KEYS without echoing the key', async () => {
  const secret = 'superuser-key-0123456789abcdef';
  const result = await promisify(execFile)(process.execPath, [path.join(build, 'src', 'main.js')], { env: env({ API_KEYS: `root:${secret}` }), timeout: 20_000 }).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
  expect(result.code).not.toBe(0);
  expect(result.stderr).toMatch(/API_KEYS/);
  expect(result.stderr).not.toContain(secret);
});

test('When MONGODB_URI is set and CREDENTIALS_KEY is not, then the process exits 2 with a message naming CREDENTIALS_KEY', async () => {
  const result = await promisify(execFile)(process.execPath, [path.join(build, 'src', 'main.js')], { env: env({ CREDENTIALS_KEY: '' }), timeout: 20_000 }).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
  expect(result).toEqual({ code: 2, stderr: expect.stringMatching(/invalid configuration: CREDENTIALS_KEY: is required when MONGODB_URI is set/) });
});
