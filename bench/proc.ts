/**
 * Child processes of the benchmark: the service (as in production: `node dist/src/main.js`), the bare
 * baseline, and load generators. Every wait is bounded in time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { LoadResult, LoadSpec } from './load';

export const DIST = path.resolve(__dirname, '..');

/**
 * The node flags of `npm start` in `<root>/package.json`, which the Dockerfile's CMD repeats: the benchmark runs
 * the service with them, and test/ops/readme.test.ts checks the Dockerfile against them.
 */
export function productionNodeFlags(root: string): string[] {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const m = /\bnode((?:\s+--\S+)*)\s+dist\/src\/main\.js/.exec(pkg.scripts.start ?? '');
  if (!m) throw new Error('package.json "start" no longer runs `node [flags] dist/src/main.js`; update bench/proc.ts');
  return m[1]!.trim().split(/\s+/).filter(Boolean);
}

export interface Child {
  proc: ChildProcess;
  port: number;
  /** Resolves with the first stdout line containing `needle`, or rejects after `ms`. */
  waitForLine(needle: string, ms: number): Promise<string>;
  /** Lines of stdout seen so far. */
  lines(): number;
  stop(): Promise<number | null>;
}

/** VmRSS of a process in MB, or NaN when it is gone. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms))),
  ]);
}

/**
 * Starts `node ...args` and waits for the line that tells its port (`portOf` returns it, or undefined).
 * stdout is read line by line and otherwise dropped (drained, so the child never blocks on it).
 */
export async function startChild(args: string[], env: Record<string, string>, portOf: (line: string) => number | undefined, name: string, startMs = 60_000): Promise<Child> {
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr.push(d);
    if (stderr.length > 20) stderr.shift();
  });
  let count = 0;
  const waiters: Array<{ needle: string; resolve: (l: string) => void }> = [];
  const rl = readline.createInterface({ input: proc.stdout! });
  // BENCH_CHILD_LOG=/tmp/x keeps each child's stdout in /tmp/x.<name> (request logs, --trace-gc output...).
  const keep = process.env.BENCH_CHILD_LOG ? createWriteStream(`${process.env.BENCH_CHILD_LOG}.${name}`, { flags: 'a' }) : undefined;
  const recent: string[] = [];
  rl.on('line', (line) => {
    count++;
    keep?.write(line + '\n');
    recent.push(line);
    if (recent.length > 200) recent.shift();
    for (const w of [...waiters]) {
      if (line.includes(w.needle)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  // A line may arrive before its waiter (log lines leave in batches): waiters look at the recent ones first.
  const waitForLine = (needle: string, ms: number) =>
    withTimeout(
      new Promise<string>((resolve) => {
        const seen = recent.find((l) => l.includes(needle));
        if (seen !== undefined) resolve(seen);
        else waiters.push({ needle, resolve });
      }),
      ms,
      `${name} line "${needle}"`,
    );
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const port = await withTimeout(
    new Promise<number>((resolve, reject) => {
      rl.on('line', (line) => {
        const p = portOf(line);
        if (p !== undefined) resolve(p);
      });
      void exited.then((code) => reject(new Error(`${name} exited with ${code}: ${stderr.join('').slice(-2000)}`)));
    }),
    startMs,
    `${name} start`,
  );
  return {
    proc,
    port,
    waitForLine,
    lines: () => count,
    stop: async () => {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const kill = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(kill);
      return code;
    },
  };
}

export interface Load {
  result: Promise<LoadResult>;
  /** Ends the load now; `result` then resolves with what was measured. */
  stop(): void;
}

/** One autocannon run in its own process (dist/bench/load.js). */
export function startLoad(spec: LoadSpec): Load {
  const proc = spawn(process.execPath, [path.join(DIST, 'bench', 'load.js'), JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const result = withTimeout(
    new Promise<LoadResult>((resolve, reject) => {
      proc.once('exit', (code) => {
        if (code === 0) resolve(JSON.parse(out.trim()) as LoadResult);
        else reject(new Error(`load generator exited with ${code}`));
      });
    }),
    (spec.durationSec + 30) * 1000,
    'load generator',
  );
  return { result, stop: () => void proc.stdin!.write('stop\n') };
}

export const runLoad = (spec: LoadSpec): Promise<LoadResult> => startLoad(spec).result;
