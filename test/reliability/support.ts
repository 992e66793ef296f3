/**
 * The reliability suite's tools: the built service as a child process (`node <build>/src/main.js`), a
 * FerretDB server of its own on a fixed loopback port (on the run's engine, test/support/engines.ts), and an HTTP client where every request has a
 * client timeout and every outcome (answer, refusal, timeout) is recorded. Loopback only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEngine, testEngine, type RunningEngine } from '../support/engines';
import { testDbName, testEnv } from '../support/service';
import { freePort } from '../support/registries';

export const CLIENT_TIMEOUT_MS = 15_000;

export { freePort };

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `registry-db-${prefix}-`));
}

/** FerretDB on 127.0.0.1:`port` with its data in `dataDir`, on the run's engine (TEST_ENGINE); start it again with the same two to get the same server back. */
export function startFerretdbAt(dataDir: string, port: number): Promise<RunningEngine> {
  return startEngine(testEngine(), dataDir, port);
}

export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  /** Parsed JSON log lines of its stdout. */
  lines: Array<Record<string, unknown>>;
  stderr(): string;
  exited: Promise<number | null>;
  running(): boolean;
  /** SIGTERM, then the exit code (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<number | null>;
}

export interface ProcessOptions {
  /** Node flags before the entry point, e.g. productionNodeFlags(root): the heap cap of `npm start`. */
  nodeFlags?: string[];
  /** A file descriptor limit (`ulimit -n`) for the process. */
  fdLimit?: number;
}

/** Starts the service built by the global setup, on 127.0.0.1 and a free port, with the test environment plus `env`. */
export async function startServiceProcess(env: Record<string, string>, opts: ProcessOptions = {}): Promise<ServiceProcess> {
  const build = process.env.RELIABILITY_BUILD;
  if (!build) throw new Error('RELIABILITY_BUILD is not set: run through jest.reliability.config.js');
  const args = [...(opts.nodeFlags ?? []), path.join(build, 'src', 'main.js')];
  const [command, argv] = opts.fdLimit === undefined ? [process.execPath, args] : ['/bin/sh', ['-c', `ulimit -n ${opts.fdLimit} && exec "$0" "$@"`, process.execPath, ...args]];
  const child = spawn(command, argv, {
    env: {
      PATH: process.env.PATH,
      ...testEnv(),
      MONGODB_DB: testDbName(),
      DATA_DIR: tempDir('svc'),
      HOST: '127.0.0.1',
      PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  let err = '';
  let buffered = '';
  let onListening: ((port: number) => void) | undefined;
  child.stderr!.on('data', (c: Buffer) => (err = (err + c.toString('utf8')).slice(-20_000)));
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let i;
    while ((i = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      try {
        const line = JSON.parse(text) as Record<string, unknown>;
        if (lines.length < 50_000) lines.push(line);
        if (line.message === 'listening') onListening?.(Number(String(line.address).split(':').pop()));
      } catch {
        // not a log line
      }
    }
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve((exitCode = code))));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the service did not start within 60 s: ${err}`));
    }, 60_000);
    onListening = (p) => {
      clearTimeout(timer);
      resolve(p);
    };
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the service exited (${code}) before listening: ${err}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    lines,
    stderr: () => err,
    exited,
    running: () => exitCode === undefined,
    stop: async (graceMs = 30_000) => {
      if (exitCode !== undefined) return exitCode;
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(kill);
      return code;
    },
  };
}

export interface Outcome {
  method: string;
  path: string;
  /** HTTP status, or 0 when no answer came (see `error`). */
  status: number;
  contentType: string;
  /** The Retry-After header, when there was one. */
  retryAfter?: string;
  body: any;
  /** `timeout`, or the connection error's code (ECONNREFUSED, ECONNRESET...). */
  error?: string;
  startedAt: number;
  endedAt: number;
}

function errorCode(e: unknown): string {
  const err = e as { name?: string; code?: string; cause?: { code?: string; name?: string } };
  if (err.name === 'TimeoutError' || err.cause?.name === 'TimeoutError') return 'timeout';
  return err.cause?.code ?? err.code ?? err.name ?? String(e);
}

/** One request with a client timeout; never throws: the outcome says what happened. */
export async function send(base: string, method: string, p: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs = CLIENT_TIMEOUT_MS): Promise<Outcome> {
  const startedAt = Date.now();
  const init: RequestInit = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
  }
  try {
    const res = await fetch(base + p, init);
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    const retryAfter = res.headers.get('retry-after') ?? undefined;
    return { method, path: p, status: res.status, contentType: res.headers.get('content-type') ?? '', ...(retryAfter ? { retryAfter } : {}), body: parsed, startedAt, endedAt: Date.now() };
  } catch (e) {
    return { method, path: p, status: 0, contentType: '', body: undefined, error: errorCode(e), startedAt, endedAt: Date.now() };
  }
}

/** Counts of `key(x)` over `xs`, for readable assertion messages. */
export function tally<T>(xs: T[], key: (x: T) => string | number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[String(key(x))] = (out[String(key(x))] ?? 0) + 1;
  return out;
}

/** Polls `check` every `everyMs` until it returns true or `timeoutMs` passed; returns whether it did. */
export async function eventually(check: () => Promise<boolean>, timeoutMs: number, everyMs = 250): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return false;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
