/**
 * The node-side programs as a node runs them: the built `registry-db-agent` and
 * `registry-db-credential-provider` (dist/src/bin, `npm run build` first, as `npm test` does) started as
 * child processes, their JSON log lines collected, their exit awaited.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const AGENT = path.join(ROOT, 'dist', 'src', 'bin', 'agent.js');
export const CREDENTIAL_PROVIDER = path.join(ROOT, 'dist', 'src', 'bin', 'credential-provider.js');

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

export interface RunningAgent {
  child: ChildProcess;
  lines: LogLine[];
  stdout(): string;
  stderr(): string;
  /** Resolves with the first log line at or after index `from` that `pred` accepts; rejects after `ms`. */
  until(pred: (l: LogLine) => boolean, ms?: number, from?: number): Promise<LogLine>;
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

const running = new Set<RunningAgent>();

export function startAgent(args: string[], env: Record<string, string> = {}): RunningAgent {
  const child = spawn(process.execPath, [AGENT, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let pending = '';
  let err = '';
  const lines: LogLine[] = [];
  const waiters = new Set<() => void>();
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString('utf8');
    pending += c.toString('utf8');
    let i;
    while ((i = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, i);
      pending = pending.slice(i + 1);
      try {
        lines.push(JSON.parse(text) as LogLine);
      } catch {
        lines.push({ level: 'raw', msg: text });
      }
    }
    for (const w of [...waiters]) w();
  });
  child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const agent: RunningAgent = {
    child,
    lines,
    stdout: () => out,
    stderr: () => err,
    until(pred, ms = 20_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.slice(from).find(pred);
          if (!hit) return false;
          cleanup();
          resolve(hit);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`agent: no matching log line within ${ms} ms; stdout:\n${out}\nstderr:\n${err}`));
        }, ms);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        if (!check()) waiters.add(check);
      });
    },
    exited,
    async stop() {
      running.delete(agent);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  running.add(agent);
  return agent;
}

export async function stopAllAgents(): Promise<void> {
  await Promise.all([...running].map((a) => a.stop()));
}

/** Runs a program to its end with `input` on stdin: its exit status and output. */
export function runProgram(file: string, args: string[], opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { env: { PATH: process.env.PATH ?? '', ...(opts.env ?? {}) }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(file)} did not finish within ${opts.timeoutMs ?? 20_000} ms; stderr:\n${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}
