/**
 * The built service as a process: compiled once into a private folder (so a concurrent `npm run build`
 * cannot change it under the test), started with `node <build>/src/main.js` against the run's database
 * server (TEST_MONGODB_URI).
 * - A slow request in flight when SIGTERM arrives still completes with 200, new connections are refused,
 *   and the process exits 0.
 * - With a follower long-polling on one keep-alive connection and an SSE watcher, SIGTERM ends the process
 *   with 0 within 5 s: the long poll is answered at once (`Connection: close`), the stream ends. The same
 *   with the embedded database started by the service, when the signal goes to the whole process group (Ctrl-C
 *   on `npm start`), and when the database is killed at the same moment.
 * - An invalid variable (PORT=abc) stops it with a non-zero status and a message naming the variable.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ferretdbBinaryPath } from '../../src/db/ferretdb-path';
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

/** The built service as a process; `detached`: in a process group of its own, as a terminal starts a job. */
async function startService(envOverrides: Record<string, string>, detached = false) {
  const child = spawn(process.execPath, [path.join(build, 'src', 'main.js')], { env: { ...env(), ...envOverrides }, stdio: ['ignore', 'pipe', 'inherit'], detached });
  const svc = watch(child);
  const listening = await svc.waitFor((l) => l.message === 'listening', 'the "listening" line');
  return { child, svc, port: Number(String(listening.address).split(':').pop()) };
}

interface Poll {
  status: number;
  connection?: string;
  reused: boolean;
  body?: { revision: number; changes: unknown[] };
  error?: string;
}

/**
 * A client like a peer's follower: long polls (wait=30) one after the other on one keep-alive connection,
 * until a request fails (the service went away). `waiting()` resolves once a long poll has been sent on the
 * reused connection.
 */
function follower(port: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const polls: Poll[] = [];
  let sent!: () => void;
  const waiting = new Promise<void>((resolve) => (sent = resolve));
  const poll = (since: number, wait: number) =>
    new Promise<Poll>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, agent, path: `/container_registries/changes?since=${since}&wait=${wait}` }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, reused: req.reusedSocket, body: JSON.parse(text) }));
      });
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: 0, reused: req.reusedSocket, error: e.code ?? e.message }));
      if (wait > 0) req.once('finish', () => setTimeout(sent, 200)); // the request is out: the service holds it
    });
  const done = (async () => {
    let since = (await poll(0, 0)).body!.revision;
    for (;;) {
      const p = await poll(since, 30);
      polls.push(p);
      if (p.status !== 200) break;
      since = p.body!.revision;
    }
    agent.destroy();
  })();
  return { polls, waiting, done };
}

/** An SSE watcher; resolves `opened` at its first bookmark, `ended` with how the stream ended. */
function watcher(port: number) {
  let opened!: () => void;
  const open = new Promise<void>((resolve) => (opened = resolve));
  const ended = new Promise<string>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, agent: false, path: '/container_registries/changes', headers: { Accept: 'text/event-stream' } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (c: string) => (c.includes('event: bookmark') ? opened() : undefined));
      res.on('end', () => resolve('end'));
      res.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
  });
  return { open, ended };
}

/** The pids of `pid`'s children (Linux /proc). */
function childPids(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts the watchers, stops the service with `signal()`, and checks the clean stop of issue 20. */
async function stopUnderWatchers(service: Awaited<ReturnType<typeof startService>>, signal: () => void): Promise<void> {
  const { svc, port } = service;
  const f = follower(port);
  const w = watcher(port);
  await within(Promise.all([f.waiting, w.open]), 'the follower waiting and the watcher streaming');

  const signalled = Date.now();
  signal();
  const code = await within(svc.exited, 'the exit of the process', 30_000);
  const tookMs = Date.now() - signalled;
  await within(f.done, 'the follower');
  const streamEnd = await within(w.ended, 'the end of the stream');
  const messages = svc.lines.map((l) => `${String(l.message)}${l.part ? `:${String(l.part)}` : ''}`);
  process.stderr.write(`[stop] exit ${code} after ${tookMs} ms; polls ${JSON.stringify(f.polls.map((p) => p.status || p.error))}; stream ${streamEnd}; log: ${messages.filter((m) => /^stop|forced/.test(m)).join(', ')}\n`);
  expect(code).toBe(0);
  expect(tookMs).toBeLessThan(5000);
  expect(messages).not.toContain('forced exit: requests still running');
  // The long poll waiting when the signal came is answered at once, on the connection it was sent on, with
  // `Connection: close`; the follower's next request finds the service gone.
  const answered = f.polls.filter((p) => p.status === 200);
  expect(answered).toHaveLength(1);
  expect(answered[0]).toMatchObject({ reused: true, connection: 'close', body: { changes: [] } });
  expect(f.polls[f.polls.length - 1]!.error).toMatch(/ECONNREFUSED|ECONNRESET/);
  expect(streamEnd).toBe('end');
}

test('When a follower long-polls on a keep-alive connection and an SSE watcher streams, then SIGTERM answers the poll, ends the stream and exits 0 within 5 s', async () => {
  const service = await startService({});
  await stopUnderWatchers(service, () => service.child.kill('SIGTERM'));
});

describe('with the embedded database the service starts (npm start)', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const embedded = () => {
    dirs.push(mkdtempSync(path.join(os.tmpdir(), 'registry-db-proc-embedded-')));
    // The private build has no tools/ferretdb to hash: the binary the run's database uses.
    return { MONGODB_URI: '', EMBEDDED_DB: 'ferretdb', FERRETDB_BIN: ferretdbBinaryPath(), DATA_DIR: dirs[dirs.length - 1]! };
  };

  test('When SIGINT goes to the whole process group (Ctrl-C), then the service still exits 0 within 5 s, the database stopped after it', async () => {
    const service = await startService(embedded(), true);
    const [database] = childPids(service.child.pid!);
    expect(database).toBeDefined();
    await stopUnderWatchers(service, () => process.kill(-service.child.pid!, 'SIGINT'));
    expect(service.svc.lines.map((l) => `${String(l.message)}${l.part ? `:${String(l.part)}` : ''}`)).toContain('stopped:database');
    // The database process is gone (reaped once its parent exited).
    await within(
      (async () => {
        while (alive(database!)) await new Promise((r) => setTimeout(r, 100));
      })(),
      'the end of the database process',
      5000,
    );
  });

  test('When the database is killed at the moment the service gets SIGTERM, then the service still exits 0 within 5 s', async () => {
    const service = await startService(embedded());
    const [database] = childPids(service.child.pid!);
    expect(database).toBeDefined();
    await stopUnderWatchers(service, () => {
      process.kill(database!, 'SIGKILL');
      service.child.kill('SIGTERM');
    });
  });
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
